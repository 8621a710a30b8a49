"""`python -m stack.consumer`: consume crm.events until SIGTERM, then commit and leave the group."""

from __future__ import annotations

import sys

from stack.consumer.service import main

if __name__ == "__main__":
    sys.exit(main())
