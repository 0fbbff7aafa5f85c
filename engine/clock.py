"""Time as an injected dependency.

Decision code never reads a clock: the tick takes `now` from the journal rows it consumes.
Only the edges (the CLI stamping a journal row, the daemon deciding when to wake) ask a
Clock, and tests give them a ManualClock.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch, UTC."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        self._now += seconds
        return self._now

    def set(self, when: float) -> None:
        self._now = when


SYSTEM_CLOCK = SystemClock()
