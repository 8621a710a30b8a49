"""What gets deployed: configs under test and the project's own services (consumer, webhook)."""
