"""The drills: faults injected into the live stack (crm_events_cert.drills when installed)."""
