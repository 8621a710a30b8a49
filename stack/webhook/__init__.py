"""A webhook receiver that records what Alertmanager delivers, for tests to read back."""
