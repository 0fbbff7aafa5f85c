"""Knowing when a wrapper has gone, and what that means for its run.

Every wrapper's end is observed (the launcher reports its children; a pidfd watches each
claimed run's wrapper, including those a previous daemon started). An end is harmless if
the run was reported finished, or if another wrapper holds the claim. Otherwise the run is
lost, which is an input like any other: a `run_lost` journal row for the tick to apply.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3

from engine import journal, procs
from engine.store import write


class Watch:
    """A pidfd on one claimed run's wrapper; readable once the wrapper has exited."""

    def __init__(self, run_id: int, pid: int, fd: int) -> None:
        self.run_id = run_id
        self.pid = pid
        self.fd = fd

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def watch_wrapper(run_id: int, pid: int, started: int | None) -> Watch | None:
    """A pidfd for that very wrapper, or None if it has already gone.

    Raises OSError when it cannot tell (no file descriptor left): the caller tries again
    later rather than declaring a live wrapper lost.
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    # The pid may have been reused since the wrapper recorded it: checking the start time
    # after opening proves the pidfd refers to the wrapper.
    try:
        alive = procs.is_alive(pid, started)
    except OSError:
        os.close(fd)
        raise
    if not alive:
        os.close(fd)
        return None
    return Watch(run_id, pid, fd)


def wrapper_ended(conn: sqlite3.Connection, now: float, user: str, run_id: int, pid: int) -> None:
    """A wrapper has ended: if it claimed the run and never reported, the run is lost."""
    with write(conn):
        rows = conn.execute(
            "SELECT kind, payload FROM journal WHERE run_id = ?", (run_id,)
        ).fetchall()
        kinds = {row["kind"]: row for row in rows}
        if "run_finished" in kinds or "run_lost" in kinds:
            return
        started = kinds.get("run_started")
        if started is not None and json.loads(started["payload"]).get("pid") != pid:
            return  # a second wrapper for a run another one had claimed
        job = conn.execute("SELECT job_id FROM job_runs WHERE id = ?", (run_id,)).fetchone()
        journal.append(
            conn,
            time=now,
            kind=journal.RUN_LOST,
            user=user,
            job_id=None if job is None else job[0],
            run_id=run_id,
            payload={"pid": pid, "reason": "the job wrapper ended without reporting"},
        )


def requeue_unclaimed(conn: sqlite3.Connection) -> int:
    """Send again every start that no wrapper has claimed (after a restart of the daemon or
    of the launcher, a start may have been lost); the claim makes a second wrapper harmless."""
    with write(conn):
        cursor = conn.execute(
            "UPDATE actions SET status = 'pending' WHERE kind = 'start' AND status = 'done' "
            "AND run_id IN (SELECT id FROM job_runs WHERE status = 'dispatched') "
            "AND NOT EXISTS (SELECT 1 FROM journal AS j WHERE j.run_id = actions.run_id "
            "AND j.kind = 'run_started')"
        )
    return cursor.rowcount
