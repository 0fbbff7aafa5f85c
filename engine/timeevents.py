"""Time events in the tick: materialising calendar instances, crossing their boundaries,
and the per-job bookkeeping that allows at most one run per instance.

A calendar's instances are rows in `calendar_instances`, kept from a week back to a rolling
horizon a day or two ahead. Each calendar row carries `next_change`, the next instance start
or end; on every journal row the tick advances the calendars whose `next_change` has come
(an index lookup, nothing when none is due), and the daemon sleeps exactly until the
earliest one. Crossing a boundary re-evaluates only the jobs linked to that calendar.

Per job and calendar, `job_calendars.used_until` is the start of the last instance the job
ran in (or gave up, as `missed`). A job may use an instance that starts after it and ends
after `since` (when the job started waiting on the calendar).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from zoneinfo import ZoneInfo

from engine.calendar_store import load_spec
from engine.calendars import iter_instances
from engine.logic import CalendarFacts
from engine.transitions import TickContext

HORIZON = 2 * 86400.0  # materialise instances this far ahead ...
EXTEND_WITHIN = 86400.0  # ... again once the horizon is closer than this
RETENTION = 7 * 86400.0  # instances that ended longer ago are pruned (and not caught up)
MAX_BATCH = 20_000  # instances written per calendar per extension
NEVER = float("inf")


def _stamp(ts: float, zone: str) -> str:
    """In the calendar's own zone, so the text is the same wherever the journal is replayed."""
    return datetime.fromtimestamp(ts, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


def _has_upcoming(conn: sqlite3.Connection, cal: sqlite3.Row, now: float) -> bool:
    row = conn.execute(
        "SELECT 1 FROM calendar_instances WHERE calendar_id = ? AND start > ? LIMIT 1",
        (cal["id"], now),
    ).fetchone()
    return row is not None


def materialise(conn: sqlite3.Connection, cal: sqlite3.Row, now: float) -> None:
    """Write the instances up to the horizon, and at least the next one to come."""
    horizon = cal["horizon"]
    if horizon == NEVER:
        return
    if horizon is not None and horizon >= now + EXTEND_WITHIN and _has_upcoming(conn, cal, now):
        return  # far enough ahead, and the next instance (a week away, say) is written
    spec = load_spec(cal["compiled"])
    if horizon is None:
        after, first = cal["modified"], float("-inf")  # a new or redefined calendar
    else:
        after, first = max(horizon, now - RETENTION), horizon
    target = now + HORIZON
    new_horizon, future = NEVER, False
    rows: list[tuple[int, float, float]] = []
    for start, end in iter_instances(spec, cal["timezone"], after):
        if start < first:
            continue
        if start >= target and future:
            new_horizon = start
            break
        rows.append((cal["id"], start, end))
        future = future or start > now
        if len(rows) >= MAX_BATCH and future:
            new_horizon = start + 1
            break
    conn.executemany(
        "INSERT OR REPLACE INTO calendar_instances (calendar_id, start, end) VALUES (?, ?, ?)",
        rows,
    )
    conn.execute(
        "DELETE FROM calendar_instances WHERE calendar_id = ? AND end < ?",
        (cal["id"], now - RETENTION),
    )
    conn.execute("UPDATE calendars SET horizon = ? WHERE id = ?", (new_horizon, cal["id"]))


def advance_calendars(ctx: TickContext) -> None:
    """Bring every calendar with a boundary due up to `now`."""
    # No ORDER BY: it would make SQLite walk the table by id instead of the calendars_due
    # index, and every journal row pays for this lookup.
    due = ctx.conn.execute(
        "SELECT * FROM calendars WHERE deleted = 0 AND next_change <= ? AND journal_id <= ?",
        (ctx.now, ctx.journal_id),
    ).fetchall()
    for cal in sorted(due, key=lambda row: int(row["id"])):
        advance(ctx, cal)


def advance(ctx: TickContext, cal: sqlite3.Row) -> None:
    conn, now = ctx.conn, ctx.now
    materialise(conn, cal, now)
    current = conn.execute(
        "SELECT start, end FROM calendar_instances WHERE calendar_id = ? AND start <= ? "
        "ORDER BY start DESC LIMIT 1",
        (cal["id"], now),
    ).fetchone()
    active = current is not None and current["end"] > now
    start, end = (current["start"], current["end"]) if active else (None, None)
    upcoming = conn.execute(
        "SELECT min(start) FROM calendar_instances WHERE calendar_id = ? AND start > ?",
        (cal["id"], now),
    ).fetchone()[0]
    changes = [t for t in (end, upcoming) if t is not None]
    conn.execute(
        "UPDATE calendars SET checked_at = ?, next_change = ?, current_start = ?, "
        "current_end = ? WHERE id = ?",
        (now, min(changes) if changes else None, start, end, cal["id"]),
    )
    status = "active" if active else "inactive"
    conn.execute(
        "UPDATE events SET status = ?, attribute = NULL, last_update = ? "
        "WHERE id = ? AND (status != ? OR attribute IS NOT NULL OR ? IS NOT ?)",
        (status, now, cal["event_id"], status, start, cal["current_start"]),
    )
    if cal["checked_at"] is not None:
        record_missed(ctx, cal, cal["checked_at"])
    waiting = conn.execute(
        "SELECT jc.job_id FROM job_calendars AS jc JOIN jobs AS j ON j.id = jc.job_id "
        "WHERE jc.event_id = ? AND j.state IN ('PEND', 'PSUSP')",
        (cal["event_id"],),
    )
    ctx.to_evaluate.update(row[0] for row in waiting)


def record_missed(ctx: TickContext, cal: sqlite3.Row, checked_at: float) -> None:
    """Instances that ended since the last check unused by a job that does not catch up
    are given up: one `missed` history row per job, however many (a long downtime).

    They are read from the table when it reaches back to the last check, and computed from
    the definition otherwise, so a downtime longer than the retention is counted right too.
    """
    links = ctx.conn.execute(
        "SELECT jc.job_id, jc.since, jc.used_until FROM job_calendars AS jc "
        "JOIN jobs AS j ON j.id = jc.job_id WHERE jc.event_id = ? AND j.catchup = 'none' "
        "AND j.state IN ('PEND', 'PSUSP', 'RUN') AND j.deleted = 0",
        (cal["event_id"],),
    ).fetchall()
    if not links:
        return
    oldest = ctx.conn.execute(
        "SELECT min(start) FROM calendar_instances WHERE calendar_id = ?", (cal["id"],)
    ).fetchone()[0]
    ended: list[tuple[float, float]] = []
    if oldest is not None and oldest <= checked_at:
        ended = [
            (row[0], row[1])
            for row in ctx.conn.execute(
                "SELECT start, end FROM calendar_instances WHERE calendar_id = ? AND end > ? "
                "AND end <= ? ORDER BY start",
                (cal["id"], checked_at, ctx.now),
            )
        ]
    else:
        spec = load_spec(cal["compiled"])
        for start, end in iter_instances(spec, cal["timezone"], checked_at):
            if start >= ctx.now:
                break
            if end <= ctx.now:
                ended.append((start, end))
    if not ended:
        return
    for link in links:
        after = float("-inf") if link["used_until"] is None else link["used_until"]
        lost = [start for start, end in ended if start > after and end > link["since"]]
        if not lost:
            continue
        ctx.conn.execute(
            "UPDATE job_calendars SET used_until = ? WHERE job_id = ? AND event_id = ?",
            (lost[-1], link["job_id"], cal["event_id"]),
        )
        zone = cal["timezone"]
        span = _stamp(lost[0], zone)
        if len(lost) > 1:
            span += f" to {_stamp(lost[-1], zone)}"
        what = "time event" if len(lost) == 1 else f"{len(lost)} time events"
        ctx.history(
            link["job_id"],
            "missed",
            reason=f"missed {what} of calendar <{_label(cal)}> ({span}): the job could not "
            "start inside the window",
        )


def _label(cal: sqlite3.Row) -> str:
    return str(cal["name"]) if cal["kind"] == "anonymous" else f"{cal['name']}@{cal['owner']}"


def next_event_note(facts: dict[int, CalendarFacts]) -> str | None:
    """Where a job waiting on calendars stands: the earliest time event to come, or that
    none will come (an expression such as Feb 30 is accepted, and would wait in silence)."""
    coming = [(f.next_start, f.label, f.zone) for f in facts.values() if f.next_start is not None]
    if coming:
        when, label, zone = min(coming)
        return f"next time event: calendar <{label}> at {_stamp(when, zone)}"
    silent = sorted(f.label for f in facts.values() if f.gone is None and not f.active)
    if silent:
        return f"no time event to come: calendar <{silent[0]}>"
    return None


_LINKS_SQL = (
    "SELECT jc.event_id, jc.since, jc.used_until, c.id AS calendar_id, c.name, c.owner, "
    "c.kind, c.deleted, c.current_start, c.current_end, c.timezone FROM job_calendars AS jc "
    "JOIN calendars AS c ON c.event_id = jc.event_id WHERE jc.job_id = ?"
)


def _owed_start(
    conn: sqlite3.Connection, link: sqlite3.Row, catchup: str, now: float
) -> float | None:
    """The start of the instance a run now would use, if the job may run for one."""
    after = float("-inf") if link["used_until"] is None else link["used_until"]
    if catchup == "none":
        start, end = link["current_start"], link["current_end"]
        if start is not None and end > now and start > after and end > link["since"]:
            return float(start)
        return None
    pick = "min" if catchup == "all" else "max"
    value = conn.execute(
        f"SELECT {pick}(start) FROM calendar_instances WHERE calendar_id = ? AND start > ? "
        "AND start <= ? AND end > ?",
        (link["calendar_id"], after, now, link["since"]),
    ).fetchone()[0]
    return None if value is None else float(value)


def calendar_facts(
    conn: sqlite3.Connection, job_id: int, catchup: str, now: float
) -> dict[int, CalendarFacts]:
    """How each calendar the job waits on looks to that job, by event id."""
    facts: dict[int, CalendarFacts] = {}
    for link in conn.execute(_LINKS_SQL, (job_id,)).fetchall():
        if link["deleted"]:
            facts[link["event_id"]] = CalendarFacts(
                False, False, gone=f"calendar deleted: <{_label(link)}>", label=_label(link)
            )
            continue
        active = link["current_start"] is not None and link["current_end"] > now
        owed = _owed_start(conn, link, catchup, now) is not None
        upcoming = conn.execute(
            "SELECT min(start) FROM calendar_instances WHERE calendar_id = ? AND start > ?",
            (link["calendar_id"], now),
        ).fetchone()[0]
        facts[link["event_id"]] = CalendarFacts(
            active, owed, None, _label(link), upcoming, link["timezone"]
        )
    return facts


def use_time_events(ctx: TickContext, job_id: int, catchup: str) -> str | None:
    """A repetitive job is dispatched: it uses the instances it was owed. A note when the
    run catches up an instance that has already ended."""
    late: list[tuple[float, str]] = []
    for link in ctx.conn.execute(_LINKS_SQL, (job_id,)).fetchall():
        if link["deleted"]:
            continue
        start = _owed_start(ctx.conn, link, catchup, ctx.now)
        if start is None:
            continue
        ctx.conn.execute(
            "UPDATE job_calendars SET used_until = ? WHERE job_id = ? AND event_id = ?",
            (start, job_id, link["event_id"]),
        )
        if not (link["current_start"] == start and link["current_end"] > ctx.now):
            late.append((start, link["timezone"]))
    if not late:
        return None
    return f"catch-up run for the time event of {_stamp(*min(late))}"


def release_anonymous(conn: sqlite3.Connection, job_id: int, time: float, why: str) -> None:
    """A job's own calendars go with it."""
    from engine.calendar_store import remove_calendar

    rows = conn.execute(
        "SELECT id FROM calendars WHERE job_id = ? AND deleted = 0", (job_id,)
    ).fetchall()
    for (calendar_id,) in rows:
        remove_calendar(conn, calendar_id, time, why)
