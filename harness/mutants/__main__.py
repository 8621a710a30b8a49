"""`python -m harness.mutants`: see harness/mutants/cli.py."""

import sys

from harness.mutants.cli import main

sys.exit(main())
