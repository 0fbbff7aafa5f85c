"""File events in the store and the tick: one `file(...)` clause of one owner is one event.

A clause is defined when a job naming it is accepted (`define_file_event`, in the API: it
parses the clause, decides whether it can be watched, and takes a snapshot of its paths),
and lives while a pending or running job waits on it. What the watcher sees arrives as
`file_observed` journal rows; the tick keeps the last observation of every path in
`file_paths` and re-evaluates only the clauses that read a path that changed, or whose
age()/stable() threshold has come (`file_events.next_check`, an index lookup per row).

A clause without arrival() is a level: active while it holds. A clause with arrival()
fires: an arrival (absent, then present) arms it, and when the clause is true while armed
it fires once and is disarmed. Each firing is owed to every job waiting at that moment
until the job starts (`job_file_events.used` below `file_events.fired`); a job that starts
waiting later waits for the next firing.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Any

from engine.logic import EventFacts
from engine.transitions import TickContext

LIVE_STATES = ("PEND", "PSUSP", "RUN")


@dataclass(frozen=True, slots=True)
class FileEventDef:
    """A clause as it travels in the journal: ids allocated, text compiled, paths seen."""

    id: int
    expression: str
    compiled: dict[str, Any] | None
    reason: str | None
    paths: list[str] = field(default_factory=list)
    edge: bool = False
    snapshot: dict[str, list[Any]] = field(default_factory=dict)  # [present, size, mtime, inode]

    def payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> FileEventDef:
        return cls(**payload)


@cache
def local_host_names() -> frozenset[str]:
    name = socket.gethostname().lower()
    return frozenset({"localhost", name, name.split(".")[0]})


def _snapshot(path: str) -> list[Any]:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return [False, 0, 0.0, 0]
    return [True, st.st_size, st.st_mtime, st.st_ino]


def compile_file_event(body: str) -> tuple[str, dict[str, Any] | None, str | None, list[str], bool]:
    """(canonical text, compiled tree, reason it cannot be watched, paths, has arrival)."""
    from engine.fileexpr import (
        file_hosts,
        file_paths,
        format_file_expr,
        has_arrival,
        parse_file_expr,
        to_json,
    )

    parsed = parse_file_expr(body.strip(), "file()")
    if parsed.tree is None or parsed.diagnostics:
        first = parsed.diagnostics[0]
        reason = f"col {first.col}: {first.message}" if first.col > 1 else first.message
        return " ".join(body.split()), None, reason, [], False
    tree = parsed.tree
    canonical = format_file_expr(tree)
    remote = [host for host in file_hosts(tree) if host.lower() not in local_host_names()]
    if remote:
        return canonical, None, f"no agent for host {remote[0]}", [], has_arrival(tree)
    return canonical, to_json(tree), None, file_paths(tree), has_arrival(tree)


def define_file_event(
    conn: sqlite3.Connection, body: str, owner: str, known: dict[str, int] | None = None
) -> FileEventDef:
    """The API's half: reuse the owner's event for the same clause (in the database, or in
    `known`, the clauses met earlier in the same condition), or allocate a new id. The
    snapshot is what the paths look like as the job is accepted, so a file that is already
    there does not count as arriving."""
    from engine.calendar_store import allocate

    canonical, compiled, reason, paths, edge = compile_file_event(body)
    row = conn.execute(
        "SELECT id FROM events WHERE kind = 'file' AND canonical = ? AND owner = ?",
        (canonical, owner),
    ).fetchone()
    if row is not None:
        event_id = int(row[0])
    elif known is not None and canonical in known:
        event_id = known[canonical]
    else:
        event_id = allocate(conn, "event")
    snapshot = {path: _snapshot(path) for path in paths}
    return FileEventDef(event_id, canonical, compiled, reason, paths, edge, snapshot)


def accept_file_event(
    conn: sqlite3.Connection, fdef: FileEventDef, owner: str, time: float
) -> None:
    """The event's identity row; a no-op when it exists (the API's eager accept, a reused
    clause). Its state is the tick's: see attach_file_events."""
    status = "invalid" if fdef.reason is not None else "inactive"
    conn.execute(
        "INSERT OR IGNORE INTO events (id, kind, canonical, owner, status, attribute, "
        "last_update) VALUES (?, 'file', ?, ?, ?, ?, ?)",
        (fdef.id, fdef.expression, owner, status, fdef.reason, time),
    )
    conn.execute("UPDATE counters SET value = max(value, ?) WHERE name = 'event'", (fdef.id,))


def file_event_ids(nodes: Iterable[dict[str, Any]]) -> set[int]:
    return {int(node["event"]) for node in nodes if node.get("file")}


# --- the tick: which jobs wait on which clauses ------------------------------------------


def _bump_generation(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE tick_state SET file_generation = file_generation + 1")


def attach_file_events(ctx: TickContext, job_id: int, defs: Iterable[dict[str, Any]]) -> None:
    """A job's submit or modify row is applied: its clauses come alive (or are revived),
    and the job starts waiting on each from the current firing count."""
    for payload in defs:
        fdef = FileEventDef.from_payload(payload)
        state = ctx.conn.execute(
            "SELECT removed FROM file_events WHERE event_id = ?", (fdef.id,)
        ).fetchone()
        if state is None or state["removed"] is not None:
            _bring_alive(ctx, fdef, exists=state is not None)
        ctx.conn.execute(
            "INSERT OR IGNORE INTO job_file_events (job_id, event_id, used) "
            "SELECT ?, event_id, fired FROM file_events WHERE event_id = ?",
            (job_id, fdef.id),
        )
        refresh_status(ctx, fdef.id)


def _bring_alive(ctx: TickContext, fdef: FileEventDef, *, exists: bool) -> None:
    conn = ctx.conn
    compiled = None if fdef.compiled is None else json.dumps(fdef.compiled, separators=(",", ":"))
    if exists:
        conn.execute(
            "UPDATE file_events SET removed = NULL, created = ?, journal_id = ?, value = 0, "
            "fired_at = NULL, next_check = NULL WHERE event_id = ?",
            (ctx.now, ctx.journal_id, fdef.id),
        )
    else:
        conn.execute(
            "INSERT INTO file_events (event_id, expression, compiled, reason, edge, created, "
            "journal_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                fdef.id,
                fdef.expression,
                compiled,
                fdef.reason,
                int(fdef.edge),
                ctx.now,
                ctx.journal_id,
            ),
        )
    for path in fdef.paths:
        conn.execute(
            "INSERT OR REPLACE INTO file_event_paths (event_id, path, armed) VALUES (?, ?, 0)",
            (fdef.id, path),
        )
        present, size, mtime, *rest = fdef.snapshot.get(path, [False, 0, 0.0])
        inode = int(rest[0]) if rest else 0
        _first_observation(ctx, path, bool(present), int(size), float(mtime), inode)
    if fdef.paths:
        _bump_generation(conn)
    evaluate_file_event(ctx, fdef.id)


def _first_observation(
    ctx: TickContext, path: str, present: bool, size: int, mtime: float, inode: int = 0
) -> None:
    """A path nobody watched yet: this is where its story starts, so no arrival. A file
    seen for the first time counts as unchanged since its mtime (for stable())."""
    changed = min(mtime, ctx.now) if present else ctx.now
    ctx.conn.execute(
        "INSERT OR IGNORE INTO file_paths (path, present, size, mtime, inode, changed, "
        "observed, journal_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            path,
            int(present),
            size,
            mtime,
            inode if present else 0,
            changed,
            ctx.now,
            ctx.journal_id,
        ),
    )


def detach_file_events(ctx: TickContext, job_id: int, keep: set[int]) -> None:
    """A modified condition no longer names some clauses: the job stops waiting on them."""
    rows = ctx.conn.execute(
        "SELECT event_id FROM job_file_events WHERE job_id = ?", (job_id,)
    ).fetchall()
    for (event_id,) in rows:
        if event_id not in keep:
            ctx.conn.execute(
                "DELETE FROM job_file_events WHERE job_id = ? AND event_id = ?", (job_id, event_id)
            )
            _release_if_unused(ctx, event_id)


def release_file_events(ctx: TickContext, job_id: int) -> None:
    """A job finished: the clauses no live job waits on any more are removed. The links
    stay, for `tock why` on the finished job."""
    rows = ctx.conn.execute(
        "SELECT event_id FROM job_file_events WHERE job_id = ?", (job_id,)
    ).fetchall()
    for (event_id,) in rows:
        _release_if_unused(ctx, event_id)


def _release_if_unused(ctx: TickContext, event_id: int) -> None:
    conn = ctx.conn
    live = conn.execute(
        "SELECT 1 FROM job_file_events AS l JOIN jobs AS j ON j.id = l.job_id "
        f"WHERE l.event_id = ? AND j.state IN {LIVE_STATES} LIMIT 1",
        (event_id,),
    ).fetchone()
    if live is not None:
        refresh_status(ctx, event_id)  # the job that went may have been the one owed
        return
    updated = conn.execute(
        "UPDATE file_events SET removed = ?, next_check = NULL WHERE event_id = ? "
        "AND removed IS NULL",
        (ctx.now, event_id),
    ).rowcount
    if not updated:
        return
    paths = [
        row[0]
        for row in conn.execute(
            "SELECT path FROM file_event_paths WHERE event_id = ?", (event_id,)
        ).fetchall()
    ]
    conn.execute("DELETE FROM file_event_paths WHERE event_id = ?", (event_id,))
    for path in paths:
        conn.execute(
            "DELETE FROM file_paths WHERE path = ? AND NOT EXISTS "
            "(SELECT 1 FROM file_event_paths WHERE path = ?)",
            (path, path),
        )
    if paths:
        _bump_generation(conn)
    conn.execute(
        "UPDATE events SET status = CASE WHEN status = 'invalid' THEN status ELSE 'inactive' END, "
        "last_update = ? WHERE id = ?",
        (ctx.now, event_id),
    )


def use_file_events(ctx: TickContext, job_id: int) -> None:
    """A job is dispatched: every firing it was owed is used."""
    owed = ctx.conn.execute(
        "SELECT l.event_id, f.fired FROM job_file_events AS l JOIN file_events AS f "
        "ON f.event_id = l.event_id WHERE l.job_id = ? AND l.used < f.fired",
        (job_id,),
    ).fetchall()
    for event_id, fired in owed:
        ctx.conn.execute(
            "UPDATE job_file_events SET used = ? WHERE job_id = ? AND event_id = ?",
            (fired, job_id, event_id),
        )
        refresh_status(ctx, event_id)


# --- the tick: observations and evaluation --------------------------------------------


def apply_observations(ctx: TickContext, observations: Iterable[dict[str, Any]]) -> None:
    """What the watcher saw. A change of presence, size or mtime re-evaluates the clauses
    reading that path; absent -> present arms their arrival()s, present -> absent disarms."""
    conn = ctx.conn
    touched: set[int] = set()
    for obs in observations:
        path = str(obs["path"])
        present, size, mtime = bool(obs["exists"]), int(obs["size"]), float(obs["mtime"])
        inode = int(obs.get("inode", 0))
        if not present:
            size, mtime, inode = 0, 0.0, 0
        old = conn.execute("SELECT * FROM file_paths WHERE path = ?", (path,)).fetchone()
        if old is None:
            watched = conn.execute(
                "SELECT 1 FROM file_event_paths WHERE path = ? LIMIT 1", (path,)
            ).fetchone()
            if watched is not None:
                _first_observation(ctx, path, present, size, mtime, inode)
                touched.update(_readers(conn, path))
            continue
        before = (bool(old["present"]), old["size"], old["mtime"], old["inode"])
        if before == (present, size, mtime, inode):
            continue
        conn.execute(
            "UPDATE file_paths SET present = ?, size = ?, mtime = ?, inode = ?, changed = ?, "
            "observed = ?, journal_id = ? WHERE path = ?",
            (int(present), size, mtime, inode, ctx.now, ctx.now, ctx.journal_id, path),
        )
        # Another inode under the name (deleted and created again between two looks,
        # or replaced by a rename) is a new file: it arrives.
        replaced = present and before[0] and 0 not in (inode, before[3]) and inode != before[3]
        if present != before[0] or replaced:
            conn.execute(
                "UPDATE file_event_paths SET armed = ? WHERE path = ? AND EXISTS (SELECT 1 "
                "FROM file_events AS f WHERE f.event_id = file_event_paths.event_id "
                "AND f.edge = 1 AND f.removed IS NULL)",
                (int(present), path),
            )
        touched.update(_readers(conn, path))
    for event_id in sorted(touched):
        evaluate_file_event(ctx, event_id)


def _readers(conn: sqlite3.Connection, path: str) -> list[int]:
    rows = conn.execute("SELECT event_id FROM file_event_paths WHERE path = ?", (path,))
    return [row[0] for row in rows]


def advance_file_events(ctx: TickContext) -> None:
    """Re-evaluate the clauses whose age() or stable() threshold has come."""
    due = ctx.conn.execute(
        "SELECT event_id FROM file_events WHERE removed IS NULL AND next_check <= ?",
        (ctx.now,),
    ).fetchall()
    for (event_id,) in sorted(due):
        evaluate_file_event(ctx, event_id)


def evaluate_file_event(ctx: TickContext, event_id: int) -> None:
    from engine.fileeval import PathState, evaluate_file_expr, next_change
    from engine.fileexpr import from_json

    conn = ctx.conn
    event = conn.execute(
        "SELECT * FROM file_events WHERE event_id = ? AND removed IS NULL", (event_id,)
    ).fetchone()
    if event is None or event["compiled"] is None:
        return
    tree = from_json(json.loads(event["compiled"]))
    rows = conn.execute(
        "SELECT p.path, p.armed, s.present, s.size, s.mtime, s.changed FROM file_event_paths "
        "AS p LEFT JOIN file_paths AS s ON s.path = p.path WHERE p.event_id = ?",
        (event_id,),
    ).fetchall()
    states = {
        row["path"]: PathState(bool(row["present"]), row["size"], row["mtime"], row["changed"])
        for row in rows
        if row["present"] is not None
    }
    armed = {row["path"] for row in rows if row["armed"]}
    value = evaluate_file_expr(tree, states, armed, ctx.now)
    fired, fired_at = event["fired"], event["fired_at"]
    if event["edge"] and value and armed:
        fired, fired_at = fired + 1, ctx.now
        conn.execute("UPDATE file_event_paths SET armed = 0 WHERE event_id = ?", (event_id,))
        value = evaluate_file_expr(tree, states, (), ctx.now)
    upcoming = next_change(tree, states, ctx.now)
    conn.execute(
        "UPDATE file_events SET value = ?, fired = ?, fired_at = ?, next_check = ? "
        "WHERE event_id = ?",
        (int(value), fired, fired_at, upcoming, event_id),
    )
    if fired != event["fired"] or bool(value) != bool(event["value"]):
        _wake_waiting(ctx, event_id)
    refresh_status(ctx, event_id)


def _wake_waiting(ctx: TickContext, event_id: int) -> None:
    rows = ctx.conn.execute(
        "SELECT l.job_id FROM job_file_events AS l JOIN jobs AS j ON j.id = l.job_id "
        "WHERE l.event_id = ? AND j.state IN ('PEND', 'PSUSP')",
        (event_id,),
    )
    ctx.to_evaluate.update(row[0] for row in rows)


def refresh_status(ctx: TickContext, event_id: int) -> None:
    """The events row: a level clause is active while it holds; an arrival clause while a
    firing is still owed to some waiting job (a running repetitive job will wait again)."""
    event = ctx.conn.execute(
        "SELECT edge, value, fired, reason, removed FROM file_events WHERE event_id = ?",
        (event_id,),
    ).fetchone()
    if event is None or event["removed"] is not None:
        return
    if event["reason"] is not None:
        status = "invalid"
    elif event["edge"]:
        owed = ctx.conn.execute(
            "SELECT 1 FROM job_file_events AS l JOIN jobs AS j ON j.id = l.job_id "
            "WHERE l.event_id = ? AND l.used < ? AND (j.state IN ('PEND', 'PSUSP') "
            "OR (j.state = 'RUN' AND j.repetitive = 1)) LIMIT 1",
            (event_id, event["fired"]),
        ).fetchone()
        status = "active" if owed is not None else "inactive"
    else:
        status = "active" if event["value"] else "inactive"
    ctx.conn.execute(
        "UPDATE events SET status = ?, last_update = ? WHERE id = ? AND status != ?",
        (status, ctx.now, event_id, status),
    )


def file_facts(conn: sqlite3.Connection, job_id: int) -> dict[int, EventFacts]:
    """How each clause the job waits on looks to that job, by event id."""
    facts: dict[int, EventFacts] = {}
    rows = conn.execute(
        "SELECT l.event_id, l.used, f.edge, f.value, f.fired, f.reason, f.expression "
        "FROM job_file_events AS l JOIN file_events AS f ON f.event_id = l.event_id "
        "WHERE l.job_id = ?",
        (job_id,),
    ).fetchall()
    for row in rows:
        label = f"file({row['expression']})"
        if row["reason"] is not None:
            facts[row["event_id"]] = EventFacts(
                False, blocked=f"event invalid: {label}: {row['reason']}", label=label
            )
        elif row["edge"]:
            facts[row["event_id"]] = EventFacts(row["used"] < row["fired"], fresh=True, label=label)
        else:
            facts[row["event_id"]] = EventFacts(bool(row["value"]), label=label)
    return facts
