"""The library both certification suites import: images, the stack, waits, faults and evidence."""
