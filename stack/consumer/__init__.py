"""The CRM events consumer: group crm-events-sse, at-least-once, with a settable processing delay."""
