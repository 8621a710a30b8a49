"""harness/pictures.py: each episode's pictures are drawn by a process of its own while the run
goes on, and the report still gets every picture, whatever that process did or did not draw.

matplotlib and the drawing process run for real; the episodes' moments are made up."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from harness import page_check
from harness.pictures import Pictures
from harness.timeline import JOURNAL, Episode, Moment

pytestmark = pytest.mark.claim("harness.self_test")

NO_DASHBOARD = {"error": "ConnectError: refused"}  # what a capture says when Prometheus is down


def episode(title: str, seconds: int = 5) -> Episode:
    stack = SimpleNamespace(group_members=lambda: 2, probe_ttl_s=0.25)
    made = Episode(title, stack, probe=None)  # type: ignore[arg-type]
    JOURNAL.remove(made)  # not a live episode: kept out of any report
    made.moments = [Moment(float(t), 200, (), 2.0) for t in range(seconds)]
    made.marks["fault"] = 1.0
    return made


def test_episodes_are_drawn_beside_the_run_and_all_reach_the_report(tmp_path: Path) -> None:
    pictures = Pictures(tmp_path, 4.0, "1/15")
    first, second = episode("first drill"), episode("second drill")
    pictures.draw(first, NO_DASHBOARD)
    pictures.draw(second, None)  # no dashboard data: its timeline only
    timelines, dashboards = pictures.written([first, second], {first.title: NO_DASHBOARD})
    assert timelines == {
        "first drill": "timeline-first-drill.png",
        "second drill": "timeline-second-drill.png",
    }
    assert dashboards == {"first drill": "Prometheus did not answer (ConnectError: refused)"}
    for name in timelines.values():
        assert page_check.ink_share(tmp_path / name) > 0.01  # not blank
    assert (tmp_path / "dashboards.json").is_file()


def test_an_episode_that_grew_after_it_was_handed_over_is_drawn_again(tmp_path: Path) -> None:
    pictures = Pictures(tmp_path, 4.0, "1/15")
    drill = episode("a drill")
    pictures.draw(drill, None)
    pictures.written([], {})  # lets the drawing process finish the first picture
    drawn_first = (tmp_path / "timeline-a-drill.png").stat().st_mtime_ns
    drill.moments.append(Moment(9.0, 500, ("skew",), 2.0))
    timelines, _ = pictures.written([drill], {})
    assert timelines == {"a drill": "timeline-a-drill.png"}
    assert (tmp_path / "timeline-a-drill.png").stat().st_mtime_ns > drawn_first


def test_an_episode_never_handed_over_is_drawn_at_the_end(tmp_path: Path) -> None:
    drill = episode("a drill")
    timelines, dashboards = Pictures(tmp_path, 4.0, "1/15").written([drill], {})
    assert timelines == {"a drill": "timeline-a-drill.png"} and dashboards == {}
    assert (tmp_path / "timeline-a-drill.png").is_file()


def test_an_episode_without_moments_has_no_picture(tmp_path: Path) -> None:
    quiet = episode("quiet", seconds=0)
    pictures = Pictures(tmp_path, 4.0, "1/15")
    pictures.draw(quiet, None)
    assert pictures.written([quiet], {}) == ({}, {})
