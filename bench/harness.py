"""What the bench scripts share: finding the `tock` command they measure."""

from __future__ import annotations

import shutil
import sqlite3
import sys
import time
from pathlib import Path

from engine import journal
from engine.tick import DEFAULT_BATCH, run_tick


def tock_executable() -> str:
    """The `tock` of this interpreter's environment, else the first one on PATH."""
    beside = Path(sys.executable).with_name("tock")
    found = str(beside) if beside.exists() else shutil.which("tock")
    if found is None:
        sys.exit(f"{Path(sys.argv[0]).name}: cannot find the `tock` executable")
    return found


def settle(conn: sqlite3.Connection, budget: float) -> tuple[float, int, int]:
    """run_until_caught_up with a deadline: (seconds, rows consumed, rows to consume)."""
    total = journal.pending_count(conn)
    consumed = 0
    started = time.perf_counter()
    while time.perf_counter() - started < budget:
        result = run_tick(conn)
        consumed += result.consumed
        if result.consumed < DEFAULT_BATCH:
            break
    return time.perf_counter() - started, consumed, total
