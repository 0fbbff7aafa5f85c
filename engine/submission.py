"""A submitted job as it travels in the journal, and how it becomes a jobs row.

`accept_submit` is the single way a job row comes to exist. The API calls it in the same
transaction that appends the `submit` journal row, so `tock jobs` shows the job at once
and the next submit can name it; the tick calls it again when it consumes that row (a
no-op then) and on replay (where it creates the row). Same input, same row.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.calendar_store import CalendarDef, accept_calendar
from engine.file_events import FileEventDef, accept_file_event
from engine.rules import CompiledNode, store_rule
from engine.user_events import accept_user_event

NEW_JOB_REASON = "New job is waiting for scheduling"


@dataclass(frozen=True, slots=True)
class JobSpec:
    id: int
    name: str
    user: str
    command: str
    cwd: str
    stdout: str
    stderr: str
    env: dict[str, str] = field(default_factory=dict)
    condition: str | None = None
    nodes: list[CompiledNode] = field(default_factory=list)
    hold: bool = False
    terminate_orphan: bool = False
    repetitive: bool = False
    catchup: str = "none"
    calendars: list[dict[str, Any]] = field(default_factory=list)  # anonymous calendars
    file_events: list[dict[str, Any]] = field(default_factory=list)  # FileEventDef payloads
    user_events: list[dict[str, Any]] = field(default_factory=list)  # {"id", "name"}
    callbacks: list[dict[str, Any]] = field(default_factory=list)  # attachments
    callback_defs: list[dict[str, Any]] = field(default_factory=list)  # its --callback defs
    work_spec: str | None = None  # canonical index list, "[1-100]%5" (engine/workspec.py)
    timeout: float | None = None  # seconds a run may go before `timeout` is raised

    def payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> JobSpec:
        return cls(**payload)


def accept_external_events(
    conn: sqlite3.Connection,
    file_events: list[dict[str, Any]],
    user_events: list[dict[str, Any]],
    owner: str,
    time: float,
    journal_id: int | None = None,
) -> None:
    """The identity rows of the file and user events a condition names: by the API as it
    accepts a submit or modify (journal_id None: its row does not exist yet), and by the
    tick as it applies that row, so that a replay creates them too."""
    for fdef in file_events:
        accept_file_event(conn, FileEventDef.from_payload(fdef), owner, time)
    for udef in user_events:
        if journal_id is None:
            accept_user_event(conn, udef, owner, time)
        else:
            accept_user_event(conn, udef, owner, time, journal_id)


def accept_submit(conn: sqlite3.Connection, journal_id: int, time: float, spec: JobSpec) -> bool:
    """Create the job row, its rule and its first history rows; False if it already exists."""
    import json

    state = "PSUSP" if spec.hold else "PEND"
    cursor = conn.execute(
        "INSERT OR IGNORE INTO jobs (id, name, user, command, cwd, env, stdout_path, stderr_path, "
        "condition, state, pending_reason, terminate_orphan, submit_time, journal_id, "
        "repetitive, catchup) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            spec.id,
            spec.name,
            spec.user,
            spec.command,
            spec.cwd,
            json.dumps(spec.env, separators=(",", ":")),
            spec.stdout,
            spec.stderr,
            spec.condition,
            state,
            NEW_JOB_REASON,
            int(spec.terminate_orphan),
            time,
            journal_id,
            int(spec.repetitive),
            spec.catchup,
        ),
    )
    if cursor.rowcount == 0:
        return False
    for calendar in spec.calendars:
        accept_calendar(conn, journal_id, time, CalendarDef.from_payload(calendar), spec.user)
    accept_external_events(conn, spec.file_events, spec.user_events, spec.user, time, journal_id)
    conn.execute(
        "UPDATE counters SET value = max(value, ?) WHERE name = 'job'",
        (spec.id,),
    )
    if spec.condition is not None:
        store_rule(conn, spec.id, spec.condition, spec.nodes, time)
    if spec.work_spec is not None:
        _accept_work(conn, spec)
    if spec.timeout is not None:
        conn.execute("UPDATE jobs SET timeout = ? WHERE id = ?", (spec.timeout, spec.id))
    conn.execute(
        "INSERT INTO history (time, job_id, journal_id, event, to_state, user, reason) "
        "VALUES (?, ?, ?, 'submitted', ?, ?, ?)",
        (
            time,
            spec.id,
            journal_id,
            state,
            spec.user,
            "held at submission (-H)" if spec.hold else None,
        ),
    )
    return True


def _accept_work(conn: sqlite3.Connection, spec: JobSpec) -> None:
    """The job's work items, expanded from the canonical list the API checked."""
    from engine.work import create_items
    from engine.workspec import parse_work_name

    parsed = parse_work_name(f"x{spec.work_spec}")
    if parsed.spec is None or not parsed.spec.is_array:
        raise ValueError(f"job {spec.id}: bad work list {spec.work_spec!r}: {parsed.diagnostics}")
    conn.execute(
        "UPDATE jobs SET work_spec = ?, work_limit = ? WHERE id = ?",
        (parsed.spec.text, parsed.spec.limit, spec.id),
    )
    create_items(conn, spec.id, parsed.spec.indices)
