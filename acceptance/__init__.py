"""The acceptance suite: the live stack against the checklist (crm_events_cert.acceptance when
installed)."""
