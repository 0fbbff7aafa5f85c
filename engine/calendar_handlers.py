"""What the calendar journal rows do to the state. Called only by the tick (engine/apply.py).

A definition change only rewrites the calendar row and drops the instances still to come;
the tick's next pass over due calendars (engine/timeevents.py) materialises the new ones
and re-evaluates the jobs that wait on the calendar, so they follow the new events at once.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from engine import journal
from engine.calendar_store import (
    SYSTEM_OWNER,
    CalendarDef,
    accept_calendar,
    record,
    remove_calendar,
)
from engine.timeevents import advance
from engine.transitions import Handler, TickContext
from engine.users import may_change


def _calendar(ctx: TickContext, calendar_id: int) -> sqlite3.Row | None:
    row: sqlite3.Row | None = ctx.conn.execute(
        "SELECT * FROM calendars WHERE id = ?", (calendar_id,)
    ).fetchone()
    return row


def _allowed(ctx: TickContext, row: sqlite3.Row, cal: sqlite3.Row | None) -> bool:
    """The API refuses first; this is the tick's own check, recorded when it fails."""
    if cal is None or cal["deleted"]:
        return False
    if cal["kind"] == "user" and may_change(row["user"], cal["owner"], ctx.admins):
        return True
    record(
        ctx.conn,
        ctx.now,
        cal["id"],
        row["id"],
        "refused",
        row["user"],
        reason=f"{row['kind']} of a calendar of {cal['owner']}",
    )
    return False


def _waiting_jobs(ctx: TickContext, event_id: int) -> None:
    rows = ctx.conn.execute(
        "SELECT job_id FROM job_calendars WHERE event_id = ?", (event_id,)
    ).fetchall()
    ctx.to_evaluate.update(row[0] for row in rows)


def redefine(ctx: TickContext, cal: sqlite3.Row, changes: dict[str, Any]) -> None:
    """New expression, zone or description. Instances already over stay (a job's `missed`
    and catch-up bookkeeping refer to them); the current and future ones are recomputed."""
    timing = any(
        name in changes and changes[name] != cal[name] for name in ("compiled", "timezone")
    )
    sets = dict(changes, modified=ctx.now)
    if timing:
        # Settle the old definition up to now first (its missed instances are recorded by
        # it), so the new one starts from a clean slate.
        advance(ctx, cal)
        sets.update(horizon=None, next_change=ctx.now)
        ctx.conn.execute(
            "DELETE FROM calendar_instances WHERE calendar_id = ? AND end > ?",
            (cal["id"], ctx.now),
        )
    assignments = ", ".join(f"{name} = ?" for name in sets)
    ctx.conn.execute(
        f"UPDATE calendars SET {assignments} WHERE id = ?", (*sets.values(), cal["id"])
    )


def on_calendar_add(ctx: TickContext, row: sqlite3.Row, payload: dict[str, Any]) -> None:
    accept_calendar(
        ctx.conn, row["id"], row["time"], CalendarDef.from_payload(payload), row["user"]
    )


def on_calendar_modify(ctx: TickContext, row: sqlite3.Row, payload: dict[str, Any]) -> None:
    cal = _calendar(ctx, payload["calendar_id"])
    if not _allowed(ctx, row, cal):
        return
    assert cal is not None
    changes = {
        name: payload[name]
        for name in ("expression", "compiled", "description", "timezone")
        if payload.get(name) is not None
    }
    redefine(ctx, cal, changes)
    updated = _calendar(ctx, cal["id"])
    assert updated is not None
    cdef = CalendarDef.from_row(updated)
    record(ctx.conn, ctx.now, cal["id"], row["id"], "modified", row["user"], cdef)


def on_calendar_delete(ctx: TickContext, row: sqlite3.Row, payload: dict[str, Any]) -> None:
    cal = _calendar(ctx, payload["calendar_id"])
    if not _allowed(ctx, row, cal):
        return
    assert cal is not None
    event_id = remove_calendar(ctx.conn, cal["id"], ctx.now, "calendar deleted")
    record(ctx.conn, ctx.now, cal["id"], row["id"], "deleted", row["user"])
    _waiting_jobs(ctx, event_id)


def on_system_calendars(ctx: TickContext, row: sqlite3.Row, payload: dict[str, Any]) -> None:
    """The daemon read its calendars file: SYS calendars become exactly what it holds."""
    wanted = [CalendarDef.from_payload(item) for item in payload.get("calendars", [])]
    for cdef in wanted:
        cal = _calendar(ctx, cdef.id)
        if cal is None:
            accept_calendar(ctx.conn, row["id"], row["time"], cdef, row["user"])
        elif not cal["deleted"]:
            changes = {
                "expression": cdef.expression,
                "compiled": cdef.compiled,
                "description": cdef.description,
                "timezone": cdef.timezone,
            }
            if any(cal[name] != value for name, value in changes.items()):
                redefine(ctx, cal, changes)
    keep = {cdef.id for cdef in wanted}
    gone = ctx.conn.execute(
        "SELECT id FROM calendars WHERE owner = ? AND kind = 'system' AND deleted = 0",
        (SYSTEM_OWNER,),
    ).fetchall()
    for (calendar_id,) in gone:
        if calendar_id not in keep:
            source = payload.get("source", "the calendars file")
            event_id = remove_calendar(ctx.conn, calendar_id, ctx.now, f"not in {source} any more")
            _waiting_jobs(ctx, event_id)


CALENDAR_HANDLERS: dict[str, Handler] = {
    journal.CALENDAR_ADD: on_calendar_add,
    journal.CALENDAR_MODIFY: on_calendar_modify,
    journal.CALENDAR_DELETE: on_calendar_delete,
    journal.SYSTEM_CALENDARS: on_system_calendars,
}
