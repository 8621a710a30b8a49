"""stack/mutants-equivalent.yml: the reviewed equivalent mutants, each with its reason.

An equivalent mutant cannot change behaviour in this topology (`max` and `sum` over the one series
a single exporter gives, say). It is reported apart from the score, with its reason, never dropped
silently; an entry that matches no generated mutant is reported as stale.
"""

from __future__ import annotations

from pathlib import Path

import yaml

FILE = "stack/mutants-equivalent.yml"


class EquivalentsError(ValueError):
    """The equivalents file is malformed: names the entry."""


def load(path: Path) -> dict[str, str]:
    """Mutant id -> reason."""
    if not path.is_file():
        return {}
    document = yaml.safe_load(path.read_text()) or {}
    entries = document.get("equivalents") or []
    found: dict[str, str] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != {"id", "reason"}:
            raise EquivalentsError(f"{path} entry {i}: must have exactly `id` and `reason`")
        mutant, reason = str(entry["id"]), str(entry["reason"]).strip()
        if not reason:
            raise EquivalentsError(f"{path} entry {i} ({mutant}): no reason")
        if mutant in found:
            raise EquivalentsError(f"{path}: {mutant} listed twice")
        found[mutant] = reason
    return found
