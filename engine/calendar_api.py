"""Calendar requests and queries behind `tock cal ...` (engine.api.Tock delegates here).

Requests are validated here and recorded as journal rows, like job requests. `add` is also
accepted on the spot (the next submission can name the calendar); modifications and
deletions are the tick's to apply. Queries compute status and next events from the
definition at the caller's clock, so they are right even while no daemon runs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from engine import journal
from engine.calendar_store import (
    SYSTEM_OWNER,
    CalendarDef,
    accept_calendar,
    allocate,
    compile_spec,
    find_calendar,
    load_spec,
    resolve_calendar,
)
from engine.conditions import CALENDAR_NAME, calendar_target
from engine.errors import TockError
from engine.store import write
from engine.timefmt import iso
from engine.users import may_change, recorded_admins

if TYPE_CHECKING:
    from engine.api import Tock
    from engine.timeexpr import CalendarSpec

MAX_CALENDAR_NAME = 128
MAX_SHOW = 10_000


def check_calendar_name(name: str) -> str:
    if not CALENDAR_NAME.fullmatch(name) or len(name) > MAX_CALENDAR_NAME:
        raise TockError(
            f"calendar name '{name}': use letters, digits, '_', '.' and '-', starting with a "
            f"letter or '_' (at most {MAX_CALENDAR_NAME} characters)"
        )
    return name


def split_name(text: str) -> tuple[str, str | None]:
    """`name` or `name@user`."""
    name, _, owner = text.partition("@")
    check_calendar_name(name)
    return name, owner or None


def parse_expression(text: str, source: str = "-t") -> tuple[CalendarSpec, list[str]]:
    """The compiled expression and its warnings; a TockError naming the column if bad."""
    from engine.timeexpr import parse_time_exprs

    result = parse_time_exprs(text, source)
    if result.spec is None:
        raise TockError(str(result.diagnostics[0]))
    return result.spec, list(result.warnings)


def check_zone(name: str | None) -> str:
    from engine.calendars import check_timezone, local_zone_name

    if name is None:
        return local_zone_name()
    problem = check_timezone(name)
    if problem is not None:
        raise TockError(f"--tz {name}: {problem}")
    return name


def add(
    tock: Tock, name: str, expression: str, description: str = "", timezone: str | None = None
) -> list[str]:
    """Create a calendar of the caller's; its warnings (an expression that never fires)."""
    check_calendar_name(name)
    spec, warnings = parse_expression(expression)
    zone = check_zone(timezone)
    with tock._guarded():
        conn = tock.conn
        with write(conn):
            if find_calendar(conn, name, SYSTEM_OWNER) is not None:
                raise TockError(f"Calendar <{name}>: the name is a system calendar's (reserved)")
            if find_calendar(conn, name, tock.user) is not None:
                raise TockError(f"Calendar <{name}>: already exists")
            cdef = CalendarDef(
                id=allocate(conn, "calendar"),
                event_id=allocate(conn, "event"),
                name=name,
                owner=tock.user,
                kind="user",
                expression=spec.text,
                compiled=compile_spec(spec),
                timezone=zone,
                description=description,
            )
            now = tock.clock.now()
            row_id = journal.append(
                conn, time=now, kind=journal.CALENDAR_ADD, user=tock.user, payload=cdef.payload()
            )
            accept_calendar(conn, row_id, now, cdef, tock.user)
    tock._wake()
    return warnings


def _changeable(tock: Tock, conn: sqlite3.Connection, text: str) -> sqlite3.Row:
    name, owner = split_name(text)
    row = find_calendar(conn, name, owner or tock.user)
    if row is None and owner is None and find_calendar(conn, name, SYSTEM_OWNER) is not None:
        raise TockError(f"Calendar <{name}>: system calendars are read-only")
    if row is None:
        raise TockError(f"{text}: Bad calendar name")
    if row["kind"] == "system":
        raise TockError(f"Calendar <{name}>: system calendars are read-only")
    if not may_change(tock.user, row["owner"], recorded_admins(conn)):
        raise TockError(
            f"Calendar <{name}@{row['owner']}>: user {tock.user} may not change a calendar of "
            f"user {row['owner']}"
        )
    return row


def modify(
    tock: Tock,
    name: str,
    expression: str | None = None,
    description: str | None = None,
    timezone: str | None = None,
) -> list[str]:
    if expression is None and description is None and timezone is None:
        raise TockError("nothing to change: give -t, -d or --tz")
    payload: dict[str, Any] = {"description": description}
    warnings: list[str] = []
    if expression is not None:
        spec, warnings = parse_expression(expression)
        payload.update(expression=spec.text, compiled=compile_spec(spec))
    if timezone is not None:
        payload["timezone"] = check_zone(timezone)
    _request(tock, journal.CALENDAR_MODIFY, name, payload)
    return warnings


def delete(tock: Tock, name: str) -> None:
    _request(tock, journal.CALENDAR_DELETE, name, {})


def _request(tock: Tock, kind: str, name: str, payload: dict[str, Any]) -> None:
    with tock._guarded():
        conn = tock.conn
        with write(conn):
            row = _changeable(tock, conn, name)
            journal.append(
                conn,
                time=tock.clock.now(),
                kind=kind,
                user=tock.user,
                payload=payload | {"calendar_id": row["id"]},
            )
    tock._wake()


# --- queries -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CalendarInfo:
    name: str
    owner: str
    kind: str
    status: str
    expression: str
    description: str
    timezone: str
    created: float
    modified: float
    next_start: float | None
    next_end: float | None
    last_start: float | None
    last_end: float | None
    minutes_left: int | None  # while active

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "owner": self.owner,
            "kind": self.kind,
            "status": self.status,
            "expression": self.expression,
            "description": self.description,
            "timezone": self.timezone,
            "next_start": iso(self.next_start),
            "next_end": iso(self.next_end),
            "last_start": iso(self.last_start),
            "last_end": iso(self.last_end),
            "created": iso(self.created),
            "modified": iso(self.modified),
        }


def describe(row: sqlite3.Row, now: float) -> CalendarInfo:
    from engine.calendars import iter_instances, previous_instance

    spec = load_spec(row["compiled"])
    zone = row["timezone"]
    last = previous_instance(spec, zone, now)
    upcoming = next((i for i in iter_instances(spec, zone, now) if i[0] > now), None)
    active = last is not None and last[1] > now
    return CalendarInfo(
        name=row["name"],
        owner=row["owner"],
        kind=row["kind"],
        status="active" if active else "inactive",
        expression=row["expression"],
        description=row["description"],
        timezone=zone,
        created=row["created"],
        modified=row["modified"],
        next_start=None if upcoming is None else upcoming[0],
        next_end=None if upcoming is None else upcoming[1],
        last_start=None if last is None else last[0],
        last_end=None if last is None else last[1],
        minutes_left=int((last[1] - now + 59) // 60) if active and last is not None else None,
    )


def listing(tock: Tock, names: tuple[str, ...] = (), user: str | None = None) -> list[CalendarInfo]:
    """Named calendars: the caller's and the system's, a user's, or everyone's ('all')."""
    where, args = ["deleted = 0", "kind != 'anonymous'"], []
    if user == "all":
        pass
    elif user is not None:
        where.append("owner = ?")
        args.append(user)
    else:
        where.append("owner IN (?, ?)")
        args.extend([tock.user, SYSTEM_OWNER])
    with tock._guarded():
        rows = tock.conn.execute(
            f"SELECT * FROM calendars WHERE {' AND '.join(where)} ORDER BY owner, name", args
        ).fetchall()
        if names:
            wanted: list[sqlite3.Row] = []
            for text in names:
                name, owner = split_name(text)
                found = [r for r in rows if r["name"] == name and (owner in (None, r["owner"]))]
                if not found:
                    found = [
                        r
                        for r in [resolve_calendar(tock.conn, name, owner, tock.user)]
                        if r is not None
                    ]
                if not found:
                    raise TockError(f"{text}: Bad calendar name")
                wanted.extend(r for r in found if r not in wanted)
            rows = wanted
    now = tock.clock.now()
    return [describe(row, now) for row in rows]


@dataclass(frozen=True, slots=True)
class CalendarHistoryEntry:
    time: float
    calendar: str
    action: str
    user: str
    expression: str | None
    description: str | None
    timezone: str | None
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "time": iso(self.time),
            "calendar": self.calendar,
            "action": self.action,
            "user": self.user,
            "expression": self.expression,
            "description": self.description,
            "timezone": self.timezone,
            "reason": self.reason,
        }


def history(tock: Tock, name: str | None = None) -> list[CalendarHistoryEntry]:
    """The caller's calendars' history, or one calendar's (`name@user` for another's),
    including calendars since deleted."""
    where, args = ["c.kind = 'user'"], []
    if name is None:
        where.append("c.owner = ?")
        args.append(tock.user)
    else:
        short, owner = split_name(name)
        where.extend(["c.name = ?", "c.owner = ?"])
        args.extend([short, owner or tock.user])
    with tock._guarded():
        rows = tock.conn.execute(
            "SELECT h.*, c.name, c.owner FROM calendar_history AS h "
            "JOIN calendars AS c ON c.id = h.calendar_id "
            f"WHERE {' AND '.join(where)} ORDER BY h.id",
            args,
        ).fetchall()
    if name is not None and not rows:
        raise TockError(f"{name}: No history (no such calendar of yours, or a system calendar)")
    return [
        CalendarHistoryEntry(
            row["time"],
            f"{row['name']}@{row['owner']}",
            row["action"],
            row["user"],
            row["expression"],
            row["description"],
            row["timezone"],
            row["reason"],
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class Instance:
    start: float
    end: float
    zone: str

    def to_json(self) -> dict[str, str]:
        tz = ZoneInfo(self.zone)
        return {
            "start": datetime.fromtimestamp(self.start, tz).isoformat(),
            "end": datetime.fromtimestamp(self.end, tz).isoformat(),
        }


def parse_from(text: str, zone: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise TockError(f"--from {text}: not an ISO date and time (2026-11-21T08:00)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(zone))
    return moment.timestamp()


def show(
    tock: Tock,
    target: str,
    count: int = 5,
    start: str | None = None,
    timezone: str | None = None,
) -> list[Instance]:
    """The next `count` time events of a calendar or of a time expression."""
    from engine.calendars import iter_instances

    if not 1 <= count <= MAX_SHOW:
        raise TockError(f"--next {count}: give 1 to {MAX_SHOW}")
    text = target.strip()
    if calendar_target(text).expression is None:
        name, owner = split_name(text)
        with tock._guarded():
            row = resolve_calendar(tock.conn, name, owner, tock.user)
        if row is None:
            raise TockError(f"{target}: Bad calendar name")
        spec = load_spec(row["compiled"])
        zone = row["timezone"]  # a calendar keeps its zone; --tz only changes the display
        shown = check_zone(timezone) if timezone is not None else zone
    else:
        spec, _ = parse_expression(text, "expression")
        zone = shown = check_zone(timezone)
    after = parse_from(start, shown) if start is not None else tock.clock.now()
    found: Iterator[tuple[int, int]] = iter_instances(spec, zone, after)
    return [Instance(s, e, shown) for s, e in islice(found, count)]
