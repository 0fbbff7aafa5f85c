"""Firing callbacks in the tick: which transitions raise which Qube event names, latching
the terms of attached triggers, and writing a pending `callback_runs` row (the callbacks'
outbox) in the transaction of the transition that completes a trigger.

A trigger is a tree of `&&`/`||` over event terms. Each term latches (`seen`) when its
event happens, so `A && B` fires once both have happened, in either order and at different
moments; firing clears every latch of that trigger, so it can fire again for a new pair.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from engine.transitions import TickContext

# Tock's history events, as Qube's event names. `done` is Qube's "complete, failed or
# killed"; a repetitive job's run that ends back in PEND raises the same names.
_BY_EVENT: dict[str, frozenset[str]] = {
    "resumed": frozenset({"waiting"}),
    "retried": frozenset({"waiting"}),
    "blocked": frozenset({"blocked"}),
    "timeout": frozenset({"timeout"}),
    "started": frozenset({"running"}),
    "done": frozenset({"complete", "done"}),
    "exit": frozenset({"failed", "done"}),
    "orphan": frozenset({"failed", "done"}),
    "lost": frozenset({"failed", "done"}),
    "killed": frozenset({"killed", "done"}),
    "deleted": frozenset({"removed"}),
    "modified": frozenset({"modified"}),
}


def event_names(event: str, to_state: str | None) -> frozenset[str]:
    if event == "submitted":
        return frozenset({"submit", "blocked" if to_state == "PSUSP" else "waiting"})
    return _BY_EVENT.get(event, frozenset())


def holds(node: dict[str, Any], seen: set[int]) -> bool:
    """A compiled trigger: {"op": "and"|"or", "args": [...]} or {"term": index}."""
    if "term" in node:
        return int(node["term"]) in seen
    results = (holds(arg, seen) for arg in node["args"])
    return all(results) if node["op"] == "and" else any(results)


def fire_for(
    ctx: TickContext,
    job_id: int,
    event: str,
    to_state: str | None,
    *,
    work: str | None = None,
    work_id: int | None = None,
) -> None:
    """The job `job_id` (or one of its work items) had `event`: latch every term that waits
    for it, and fire the triggers that now hold."""
    names = event_names(event, to_state)
    if not names:
        return
    kind = "job" if work is None else "work"
    marks = ",".join("?" * len(names))
    rows = ctx.conn.execute(
        "SELECT job_callback_id, term, extra FROM callback_terms "
        f"WHERE context_job = ? AND name IN ({marks}) AND type = ?",
        (job_id, *sorted(names), kind),
    ).fetchall()
    touched: set[int] = set()
    for row in rows:
        if kind == "work" and row["extra"] not in ("*", work, str(work_id)):
            continue
        ctx.conn.execute(
            "UPDATE callback_terms SET seen = 1 WHERE job_callback_id = ? AND term = ?",
            (row["job_callback_id"], row["term"]),
        )
        touched.add(row["job_callback_id"])
    transition = event if to_state is None else f"{event}:{to_state}"
    for attached_id in sorted(touched):  # deterministic: transition, then callback id
        _fire_if_complete(ctx, attached_id, transition, work_id)


def _fire_if_complete(
    ctx: TickContext, attached_id: int, transition: str, work_id: int | None
) -> None:
    conn = ctx.conn
    attached = conn.execute(
        "SELECT a.job_id, a.callback_id, a.compiled, c.trigger FROM job_callbacks AS a "
        "JOIN callbacks AS c ON c.id = a.callback_id WHERE a.id = ?",
        (attached_id,),
    ).fetchone()
    seen = {
        int(row[0])
        for row in conn.execute(
            "SELECT term FROM callback_terms WHERE job_callback_id = ? AND seen = 1",
            (attached_id,),
        )
    }
    if not holds(json.loads(attached["compiled"]), seen):
        return
    conn.execute("UPDATE callback_terms SET seen = 0 WHERE job_callback_id = ?", (attached_id,))
    conn.execute("UPDATE job_callbacks SET fired = fired + 1 WHERE id = ?", (attached_id,))
    key = (
        f"{attached['callback_id']}:{attached['job_id']}:"
        f"{'-' if work_id is None else work_id}:{ctx.journal_id}:{transition}"
    )
    conn.execute(
        "INSERT OR IGNORE INTO callback_runs (key, callback_id, job_id, work_id, trigger, "
        "transition, journal_id, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            key,
            attached["callback_id"],
            attached["job_id"],
            work_id,
            attached["trigger"],
            transition,
            ctx.journal_id,
            ctx.now,
        ),
    )
    ctx.actions += 1


def pending_runs(conn: sqlite3.Connection, after: int = 0) -> list[sqlite3.Row]:
    """Runs not done yet, above `after` (what a daemon has already handed out)."""
    return conn.execute(
        "SELECT r.*, c.path, c.language FROM callback_runs AS r "
        "JOIN callbacks AS c ON c.id = r.callback_id WHERE r.status = 'pending' AND r.id > ? "
        "ORDER BY r.id",
        (after,),
    ).fetchall()
