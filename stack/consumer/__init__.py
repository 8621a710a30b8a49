"""The CRM events consumer: group crm-events-sse, at-least-once, settable processing delay."""
