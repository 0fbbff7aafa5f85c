"""Calendar definitions as rows: how a calendar comes to exist, changes and goes.

A definition travels in the journal with its expression already compiled to JSON (the
tick never runs the textX parser) and with its ids allocated by whoever wrote the row, so a
replay creates the same rows with the same ids. `accept_calendar` is the single way a
calendar row is created: the API calls it in the transaction that appends the row (so the
next submission can name the calendar at once), the tick again when it consumes the row.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the parser's module pulls in textX; the CLI's listings do not need it
    from engine.timeexpr import CalendarSpec

SYSTEM_OWNER = "SYS"


def compile_spec(spec: CalendarSpec) -> str:
    """The parsed expression list as JSON: sets become sorted lists."""

    def field(values: frozenset[int] | None) -> list[int] | None:
        return None if values is None else sorted(values)

    exprs = [
        {
            "text": expr.text,
            "years": field(expr.years),
            "months": field(expr.months),
            "days": None if expr.days is None else [[d.kind, d.value, d.n] for d in expr.days],
            "hours": field(expr.hours),
            "minutes": sorted(expr.minutes),
            "duration_minutes": expr.duration_minutes,
            "duration_days": expr.duration_days,
            "cron": expr.cron,
            "interval": expr.interval,
        }
        for expr in spec.exprs
    ]
    return json.dumps(exprs, separators=(",", ":"))


def load_spec(compiled: str) -> CalendarSpec:
    from engine.timeexpr import CalendarSpec, DaySpec, TimeExpr

    def field(values: list[int] | None) -> frozenset[int] | None:
        return None if values is None else frozenset(values)

    exprs = []
    for item in json.loads(compiled):
        days = item["days"]
        exprs.append(
            TimeExpr(
                text=item["text"],
                years=field(item["years"]),
                months=field(item["months"]),
                days=None if days is None else tuple(DaySpec(k, v, n) for k, v, n in days),
                hours=field(item["hours"]),
                minutes=frozenset(item["minutes"]),
                duration_minutes=item["duration_minutes"],
                duration_days=item["duration_days"],
                cron=item["cron"],
                interval=item["interval"],
            )
        )
    return CalendarSpec(tuple(exprs))


@dataclass(frozen=True, slots=True)
class CalendarDef:
    id: int
    event_id: int
    name: str
    owner: str
    kind: str  # user, system or anonymous
    expression: str
    compiled: str
    timezone: str
    description: str = ""
    job_id: int | None = None

    def payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> CalendarDef:
        return cls(**payload)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> CalendarDef:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    @property
    def canonical(self) -> str:
        """How the calendar's event is named in `events`."""
        if self.kind == "anonymous":
            return f"{self.expression} [job {self.job_id}]"
        return f"{self.name}@{self.owner}"


def allocate(conn: sqlite3.Connection, counter: str) -> int:
    return int(
        conn.execute(
            "UPDATE counters SET value = value + 1 WHERE name = ? RETURNING value", (counter,)
        ).fetchone()[0]
    )


def accept_calendar(
    conn: sqlite3.Connection, journal_id: int, time: float, cdef: CalendarDef, user: str
) -> bool:
    """Create the calendar and its event row; False if they already exist (a replayed or
    re-consumed row). The tick materialises its instances on its next pass."""
    conn.execute(
        "INSERT OR IGNORE INTO events (id, kind, canonical, owner, status, last_update) "
        "VALUES (?, 'calendar', ?, ?, 'inactive', ?)",
        (cdef.event_id, cdef.canonical, cdef.owner, time),
    )
    cursor = conn.execute(
        "INSERT OR IGNORE INTO calendars (id, name, owner, kind, job_id, event_id, description, "
        "expression, compiled, timezone, created, modified, journal_id, next_change) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            cdef.id,
            cdef.name,
            cdef.owner,
            cdef.kind,
            cdef.job_id,
            cdef.event_id,
            cdef.description,
            cdef.expression,
            cdef.compiled,
            cdef.timezone,
            time,
            time,
            journal_id,
            time,
        ),
    )
    if cursor.rowcount == 0:
        return False
    for counter, value in (("calendar", cdef.id), ("event", cdef.event_id)):
        conn.execute("UPDATE counters SET value = max(value, ?) WHERE name = ?", (value, counter))
    if cdef.kind == "user":
        record(conn, time, cdef.id, journal_id, "created", user, cdef)
    return True


def record(
    conn: sqlite3.Connection,
    time: float,
    calendar_id: int,
    journal_id: int,
    action: str,
    user: str,
    cdef: CalendarDef | None = None,
    reason: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO calendar_history (time, calendar_id, journal_id, action, user, expression, "
        "description, timezone, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            time,
            calendar_id,
            journal_id,
            action,
            user,
            None if cdef is None else cdef.expression,
            None if cdef is None else cdef.description,
            None if cdef is None else cdef.timezone,
            reason,
        ),
    )


def find_calendar(conn: sqlite3.Connection, name: str, owner: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM calendars WHERE owner = ? AND name = ? AND deleted = 0 "
        "AND kind != 'anonymous'",
        (owner, name),
    ).fetchone()
    return row


def resolve_calendar(
    conn: sqlite3.Connection, name: str, owner: str | None, user: str
) -> sqlite3.Row | None:
    """`name@owner` is that owner's; a bare name is the user's own, else the system's."""
    if owner is not None:
        return find_calendar(conn, name, owner)
    return find_calendar(conn, name, user) or find_calendar(conn, name, SYSTEM_OWNER)


def remove_calendar(conn: sqlite3.Connection, calendar_id: int, time: float, why: str) -> int:
    """Soft-delete: the row stays for history and for the rules that still name its event,
    whose jobs then pend with the reason in the event's attribute. The event id."""
    conn.execute(
        "UPDATE calendars SET deleted = 1, next_change = NULL, current_start = NULL, "
        "current_end = NULL WHERE id = ?",
        (calendar_id,),
    )
    conn.execute("DELETE FROM calendar_instances WHERE calendar_id = ?", (calendar_id,))
    event_id = int(
        conn.execute("SELECT event_id FROM calendars WHERE id = ?", (calendar_id,)).fetchone()[0]
    )
    # The event keeps its id (rules still name it) but gives up its name, which a new
    # calendar of the same name may take.
    conn.execute(
        "UPDATE events SET status = 'invalid', attribute = ?, last_update = ?, "
        "canonical = canonical || ' [deleted, calendar ' || ? || ']' WHERE id = ?",
        (why, time, calendar_id, event_id),
    )
    return event_id
