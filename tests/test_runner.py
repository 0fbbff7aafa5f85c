"""The launcher, driven directly: it must never block on its replies to the daemon."""

from __future__ import annotations

import fcntl
import signal
import time
from pathlib import Path
from types import FrameType

from engine.paths import layout_for
from engine.runner import Launcher

F_SETPIPE_SZ = 1031


def _deadlocked(number: int, frame: FrameType | None) -> None:
    raise TimeoutError("the launcher stopped reading our starts")


def test_thousands_of_starts_without_reading_replies_do_not_deadlock(tmp_path: Path) -> None:
    launcher = Launcher(layout_for(tmp_path / "missing" / "tock.db"), 1.0)
    # Small pipes both ways: replies fill theirs after ~150 exits, our starts ours after ~400.
    # A launcher that blocked on its replies would stop reading, and our writes would hang.
    fcntl.fcntl(launcher.fileno(), F_SETPIPE_SZ, 4096)
    assert launcher.process.stdin is not None
    fcntl.fcntl(launcher.process.stdin.fileno(), F_SETPIPE_SZ, 4096)
    starts = 3000
    previous = signal.signal(signal.SIGALRM, _deadlocked)
    signal.alarm(30)  # a deadlock would block the writes below forever
    try:
        for run_id in range(1, starts + 1):
            launcher.start(run_id)  # each wrapper fails at once: there is no database
        exits: set[int] = set()
        deadline = time.monotonic() + 60
        while len(exits) < starts and time.monotonic() < deadline:
            exits.update(gone.run_id for gone in launcher.read())
            time.sleep(0.01)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        launcher.close()
    assert exits == set(range(1, starts + 1))
