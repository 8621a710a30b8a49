"""Each episode's two pictures: its timeline (probe status, group members, skew and alert) and the
project's dashboard replayed over its time range.

Drawing is CPU work: about 1.6 s a dashboard and a timeline on 2 cores, some 30 s for a certify
run's sixteen episodes, which the report used to spend after the last test. `Pictures` draws each
episode in a process of its own, niced like the unit tier, as soon as the episode's test has ended,
so the drawing takes the CPU that the next episode's waiting leaves. Whatever that process did not
draw (it failed, or the episode changed after it was handed over) is drawn at the end, here.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import replay
from harness.timeline import Episode

NICENESS = 10  # as the unit tier's: the stack keeps the CPU its timings are measured on
DRAW_WAIT_S = 120  # for the drawing process at the end; what it has not drawn by then is drawn here


def slug(title: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in title.lower())


def draw_timeline(
    title: str,
    moments: Sequence[dict[str, Any]],
    marks: dict[str, float],
    directory: Path,
    threshold: float,
    scale: str,
) -> str:
    """The episode's timeline PNG; returns its file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [m["t"] for m in moments]
    fig, axes = plt.subplots(3, 1, figsize=(10, 7), sharex=True)
    axes[0].step(
        t,
        [1 if m["status"] == 200 else 0 if m["status"] else -1 for m in moments],
        where="post",
        label="stack probe ready (1), not ready (0), no answer (-1)",
    )
    if any("seed_status" in m for m in moments):
        axes[0].step(
            t,
            [1 if m.get("seed_status") == 200 else 0 for m in moments],
            where="post",
            linestyle="--",
            label="seed-query probe ready",
        )
    axes[0].set_ylabel("/ready 200")
    axes[0].legend(loc="lower left", fontsize=7)
    axes[1].plot(t, [m.get("members") or 0 for m in moments], label="group members")
    axes[1].set_ylabel("members")
    if any(m.get("skew") is not None for m in moments):
        axes[2].plot(t, [m.get("skew") or 0 for m in moments], label="skew ratio")
        axes[2].axhline(threshold, color="red", linestyle=":", label=f"threshold {threshold:g}")
        firing = [float(m["t"]) for m in moments if m.get("alert") == "firing"]
        if firing:
            axes[2].axvspan(
                min(firing), max(firing), color="orange", alpha=0.2, label="alert firing"
            )
        axes[2].set_ylabel("skew")
        axes[2].legend(loc="upper right")
    for mark, at in marks.items():
        for axis in axes:
            axis.axvline(at, color="grey", linewidth=0.8)
        axes[0].annotate(mark, (at, 1.05), fontsize=7, rotation=15)
    axes[-1].set_xlabel(f"seconds (time scale {scale})")
    fig.suptitle(title)
    name = f"timeline-{slug(title)}.png"
    fig.savefig(directory / name, dpi=90)
    plt.close(fig)
    return name


def draw_dashboard(title: str, captured: dict[str, Any], directory: Path) -> str:
    """The dashboard replayed over the episode: its file name, or why there is none."""
    if "error" in captured:
        return f"Prometheus did not answer ({captured['error'][:200]})"
    name = f"dashboard-{slug(title)}.png"
    replay.draw(title, captured, directory / name)
    return name


@dataclass(frozen=True)
class _Handed:
    """What the drawing process was given of an episode: the state it drew, and its answer."""

    moments: int
    marks: int
    timeline: Future[str]
    dashboard: Future[str] | None


class Pictures:
    """The run's pictures, drawn beside it (`draw`) and collected at its end (`written`)."""

    def __init__(self, directory: Path, threshold: float, scale: object) -> None:
        self.directory = directory
        self.threshold = threshold
        self.scale = str(scale)
        self._pool: ProcessPoolExecutor | None = None
        self._handed: dict[str, _Handed] = {}

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                # Not forked: the harness has threads (probe watches, the unit tier's reader).
                mp_context=multiprocessing.get_context("spawn"),
                initializer=os.nice,
                initargs=(NICENESS,),
            )
        return self._pool

    def _timeline(self, episode: Episode, moments: list[dict[str, object]]) -> tuple[Any, ...]:
        """draw_timeline's arguments for an episode."""
        return (
            episode.title,
            moments,
            dict(episode.marks),
            self.directory,
            self.threshold,
            self.scale,
        )

    def draw(self, episode: Episode, captured: dict[str, Any] | None) -> None:
        """Hand an ended episode to the drawing process."""
        moments = episode.to_json()
        if not moments or episode.title in self._handed:
            return
        pool = self._executor()
        self._handed[episode.title] = _Handed(
            len(moments),
            len(episode.marks),
            pool.submit(draw_timeline, *self._timeline(episode, moments)),
            pool.submit(draw_dashboard, episode.title, captured, self.directory)
            if captured is not None
            else None,
        )

    def written(
        self, episodes: Sequence[Episode], captured: dict[str, dict[str, Any]]
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Every episode's timeline and dashboard (by title, in the run's order), waiting for
        the drawing process and drawing here whatever it did not."""
        deadline = time.monotonic() + DRAW_WAIT_S
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "dashboards.json").write_text(json.dumps(captured))
        timelines: dict[str, str] = {}
        dashboards: dict[str, str] = {}
        for episode in episodes:
            moments = episode.to_json()
            if not moments:
                continue
            handed = self._handed.get(episode.title)
            unchanged = handed and (handed.moments, handed.marks) == (
                len(moments),
                len(episode.marks),
            )
            timeline = _answer(handed.timeline, deadline) if handed and unchanged else None
            timelines[episode.title] = timeline or draw_timeline(*self._timeline(episode, moments))
        for title, data in captured.items():
            handed = self._handed.get(title)
            dashboard = _answer(handed.dashboard, deadline) if handed and handed.dashboard else None
            dashboards[title] = dashboard or draw_dashboard(title, data, self.directory)
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        return timelines, dashboards


def _answer(future: Future[str], deadline: float) -> str | None:
    """The drawing process's file name, or None when it failed or is past the deadline."""
    try:
        return future.result(timeout=max(0.0, deadline - time.monotonic()))
    except Exception:
        return None
