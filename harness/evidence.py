"""What a test measured, kept for the report: named values, with the time scale.

A test asks for the `evidence` fixture and records what it observed. Nothing else feeds the
certification report: an item the tests did not measure is NOT RUN, never PASS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Measurement:
    name: str
    value: Any
    unit: str = ""
    # For durations: the production duration this one stands for, e.g. "5m window".
    against: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "unit": self.unit, "against": self.against}


@dataclass
class Evidence:
    """Measurements of one test (timelines are the episodes of harness/timeline.py)."""

    test: str
    time_scale: str
    started: float = field(default_factory=time.time)
    measurements: list[Measurement] = field(default_factory=list)

    def record(self, name: str, value: Any, unit: str = "", against: str = "") -> Any:
        """Keep one measured value; returns it so a test can record and assert in one line."""
        self.measurements.append(Measurement(name, value, unit, against))
        return value

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Evidence:
        """The inverse of to_json (a unit tier run in a process of its own sends its evidence)."""
        return cls(
            data["test"],
            data["time_scale"],
            data["started"],
            [Measurement(**m) for m in data["measurements"]],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "time_scale": self.time_scale,
            "started": self.started,
            "measurements": [m.to_json() for m in self.measurements],
        }
