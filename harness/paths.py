"""Where the project's files are, in a checkout and in an installed package (`pip install .`).

The packages (harness, probe, stack) sit side by side in both: the checkout's root, or
site-packages. The deployable files (stack/) are package data, so an installed package carries
the project's own stack; the operator documents (docs/) and the build cache belong to a checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

# The directory holding harness/, probe/ and stack/: the checkout, or site-packages.
PROJECT = Path(__file__).resolve().parent.parent
# A checkout has its pyproject.toml beside the packages; an installed package does not.
CHECKOUT = (PROJECT / "pyproject.toml").is_file()

# Scratch copies of the repository (mutation runs, tests/test_certificate_catches.py) point this
# at the original's build directory, so they share its binaries instead of building their own.
BUILD_DIR_ENV = "CRM_CERT_BUILD_DIR"


def _default_build_dir() -> Path:
    if CHECKOUT:
        return PROJECT / ".build"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "crm-events-cert"


BUILD_DIR = Path(os.environ.get(BUILD_DIR_ENV) or _default_build_dir())
