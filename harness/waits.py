"""Waiting on conditions: every wait has a timeout, shows progress, and says what it waited for."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console

T = TypeVar("T")

# The real stderr, past pytest's capture: people watching a long run see what it waits for.
console = Console(file=sys.__stderr__)
# Without a terminal (CI logs) a spinner shows nothing: print a line this often instead.
PLAIN_PROGRESS_EVERY_S = 10.0


class Progress:
    """A spinner on a terminal; on a plain log, a line at start and every few seconds."""

    def __init__(self, status: object | None) -> None:
        self._status = status
        self._next_line = PLAIN_PROGRESS_EVERY_S

    def update(self, text: str, elapsed: float) -> None:
        if self._status is not None:
            self._status.update(text)  # type: ignore[attr-defined]
        elif elapsed >= self._next_line:
            console.print(text, highlight=False)
            self._next_line += PLAIN_PROGRESS_EVERY_S


@contextmanager
def progress(what: str) -> Iterator[Progress]:
    if console.is_terminal:
        with console.status(what) as status:
            yield Progress(status)
    else:
        console.print(what, highlight=False)
        yield Progress(None)


class WaitTimeout(AssertionError):
    """A condition did not hold in time. An AssertionError, so pytest reports it as a failure."""


def wait_until(
    what: str,
    condition: Callable[[], T | None],
    timeout: float,
    poll: float = 0.5,
    describe: Callable[[], str] | None = None,
) -> T:
    """Poll `condition` until it returns something truthy; return that value.

    Exceptions raised by the condition count as "not yet" (a service still starting refuses
    connections). On timeout the error names what was awaited, for how long, the last value or
    error seen, and `describe()` (for example the state of the system) if given.
    """
    started = time.monotonic()
    last: object = None
    with progress(f"waiting for {what}") as status:
        while True:
            try:
                result = condition()
                if result:
                    return result
                last = result
            except Exception as error:
                last = f"{type(error).__name__}: {error}"
            elapsed = time.monotonic() - started
            if elapsed >= timeout:
                detail = f"; {describe()}" if describe else ""
                raise WaitTimeout(
                    f"gave up waiting for {what} after {elapsed:.1f}s (timeout {timeout:.1f}s); "
                    f"last seen: {last!r}{detail}"
                )
            status.update(f"waiting for {what} ({elapsed:.0f}s of {timeout:.0f}s)", elapsed)
            time.sleep(min(poll, max(0.0, timeout - elapsed)))


def hold_for(
    what: str,
    condition: Callable[[], T],
    duration: float,
    poll: float = 0.5,
    describe: Callable[[], str] | None = None,
) -> list[T]:
    """Check that `condition` stays truthy for `duration` seconds; return every value observed.

    The opposite of wait_until: it fails at the first observation that breaks the condition,
    saying what `describe` says then.
    """
    started = time.monotonic()
    seen: list[T] = []
    with progress(f"checking that {what} holds") as status:
        while True:
            value = condition()
            seen.append(value)
            elapsed = time.monotonic() - started
            if not value:
                detail = f"; {describe()}" if describe else ""
                raise AssertionError(
                    f"{what} stopped holding after {elapsed:.1f}s of {duration:.1f}s: "
                    f"{value!r}{detail}"
                )
            if elapsed >= duration:
                return seen
            status.update(
                f"checking that {what} holds ({elapsed:.0f}s of {duration:.0f}s)", elapsed
            )
            time.sleep(min(poll, max(0.0, duration - elapsed)))
