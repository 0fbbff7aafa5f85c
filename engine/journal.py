"""Appending inputs to the journal. Standard library only (the job wrapper uses it).

Every input to Tock, from any process, is one journal row written in its own transaction
(or in the caller's, when the append is part of a larger accepted request). The tick is the
only reader that acts on rows; it consumes them in id order.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

# Kinds written by the CLI and the API.
SUBMIT = "submit"
MODIFY = "modify"
KILL = "kill"
DELETE = "delete"
RESUME = "resume"
CONTROL = "control"  # block, unblock, retry, complete, fail or kill a job or a work item
CALENDAR_ADD = "calendar_add"
CALENDAR_MODIFY = "calendar_modify"
CALENDAR_DELETE = "calendar_delete"
# Kinds written by the job wrapper.
RUN_STARTED = "run_started"
RUN_FINISHED = "run_finished"
# Kinds written by the daemon about the world outside the tick.
RUN_LOST = "run_lost"
DISPATCH_FAILED = "dispatch_failed"
DAEMON_START = "daemon_start"
CLOCK = "clock"
SYSTEM_CALENDARS = "system_calendars"
FILE_OBSERVED = "file_observed"
EVENT_POST = "event_post"  # also written by the CLI/API (tock event start|end|reject)
EVENT_DAEMON = "event_daemon"
CALLBACKS_LOADED = "callbacks_loaded"
CALLBACK_FINISHED = "callback_finished"

KINDS = frozenset(
    {
        SUBMIT,
        MODIFY,
        KILL,
        DELETE,
        RESUME,
        CONTROL,
        CALENDAR_ADD,
        CALENDAR_MODIFY,
        CALENDAR_DELETE,
        RUN_STARTED,
        RUN_FINISHED,
        RUN_LOST,
        DISPATCH_FAILED,
        DAEMON_START,
        CLOCK,
        SYSTEM_CALENDARS,
        FILE_OBSERVED,
        EVENT_POST,
        EVENT_DAEMON,
        CALLBACKS_LOADED,
        CALLBACK_FINISHED,
    }
)


def append(
    conn: sqlite3.Connection,
    *,
    time: float,
    kind: str,
    user: str,
    job_id: int | None = None,
    run_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> int:
    """Insert one row inside the caller's transaction and return its id."""
    if kind not in KINDS:
        raise ValueError(f"unknown journal kind {kind!r}")
    cursor = conn.execute(
        "INSERT INTO journal (time, kind, user, job_id, run_id, payload) VALUES (?, ?, ?, ?, ?, ?)",
        (time, kind, user, job_id, run_id, json.dumps(payload or {}, separators=(",", ":"))),
    )
    return int(cursor.lastrowid or 0)


def pending_count(conn: sqlite3.Connection) -> int:
    """Rows the tick has not consumed yet."""
    row = conn.execute(
        "SELECT count(*) FROM journal WHERE id > (SELECT journal_cursor FROM tick_state)"
    ).fetchone()
    return int(row[0])


class PendingRows:
    """Rows the daemon learnt from the world (a watcher's stats, a site daemon's posts, a
    callback's result), kept until the transaction that writes them commits: a locked
    database must not lose what was reported, since it will not be reported again."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        *,
        time: float,
        kind: str,
        user: str,
        payload: dict[str, Any],
        job_id: int | None = None,
    ) -> None:
        self.rows.append(
            {"time": time, "kind": kind, "user": user, "payload": payload, "job_id": job_id}
        )

    def flush(self, conn: sqlite3.Connection) -> None:
        if not self.rows:
            return
        from engine.store import write

        with write(conn):
            for row in self.rows:
                append(conn, **row)
        self.rows = []
