"""Resolving what a condition names, for one user at one moment: jobs (names are your own
jobs; a duplicated name means the newest; `name*` means every such name, each at its
newest), calendars, file clauses and user events. New events and anonymous calendars get
their ids here, collected for the caller to put in its journal row.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from engine.conditions import External, calendar_target
from engine.errors import TockError


@dataclass(frozen=True, slots=True)
class ResolvedJob:
    id: int
    name: str


class Resolver:
    """Looks job and calendar references up for one user, at one moment.

    An inline time expression becomes an anonymous calendar of the job `job_id`; its
    definition, with ids allocated here, is collected in `anonymous` for the caller to put
    in the journal row.
    """

    def __init__(self, conn: sqlite3.Connection, user: str, job_id: int | None = None) -> None:
        self.conn = conn
        self.user = user
        self.job_id = job_id
        self.anonymous: list[dict[str, Any]] = []
        self.file_events: list[dict[str, Any]] = []
        self.user_events: list[dict[str, Any]] = []
        self.warnings: list[str] = []

    def user_event(self, node: External) -> int:
        """The event id of `event(name)`; a new name gets its id here."""
        from engine.user_events import define_user_event

        name = node.body.strip()
        for item in self.user_events:  # named twice in one condition: one event
            if item["name"] == name:
                return int(item["id"])
        definition = define_user_event(self.conn, name)
        self.user_events.append(definition)
        return int(definition["id"])

    def file_event(self, node: External) -> int:
        """The event id of the owner's `file(body)` clause; a clause that cannot be
        watched is still an event (invalid), and the caller is warned."""
        from engine.file_events import define_file_event

        known = {item["expression"]: int(item["id"]) for item in self.file_events}
        fdef = define_file_event(self.conn, node.body, self.user, known)
        if fdef.id not in {item["id"] for item in self.file_events}:
            self.file_events.append(fdef.payload())
            if fdef.reason is not None:
                self.warnings.append(
                    f"file({fdef.expression}): {fdef.reason}; the event is invalid and the "
                    "job will pend until its condition is modified"
                )
        return fdef.id

    def calendar(self, node: External) -> int:
        """The event id of the calendar `calendar(body)` names."""
        from engine.calendar_store import resolve_calendar

        target = calendar_target(node.body)
        if target.expression is not None:
            return self.anonymous_calendar(target.expression)
        assert target.name is not None
        row = resolve_calendar(self.conn, target.name, target.user, self.user)
        if row is None:
            shown = target.name if target.user is None else f"{target.name}@{target.user}"
            raise TockError(f"calendar <{shown}>: no such calendar")
        return int(row["event_id"])

    def anonymous_calendar(self, expression: str) -> int:
        from engine.calendar_store import CalendarDef, allocate, compile_spec
        from engine.calendars import local_zone_name
        from engine.timeexpr import parse_time_exprs

        assert self.job_id is not None, "an anonymous calendar needs its job's id"
        parsed = parse_time_exprs(expression, "-w")
        if parsed.spec is None:
            raise TockError(str(parsed.diagnostics[0]))
        cdef = CalendarDef(
            id=allocate(self.conn, "calendar"),
            event_id=allocate(self.conn, "event"),
            name=parsed.spec.text,
            owner=self.user,
            kind="anonymous",
            expression=parsed.spec.text,
            compiled=compile_spec(parsed.spec),
            timezone=local_zone_name(),
            job_id=self.job_id,
        )
        self.anonymous.append(cdef.payload())
        return cdef.event_id

    def by_id(self, job_id: int) -> ResolvedJob:
        row = None
        if 0 < job_id < 2**63:
            row = self.conn.execute(
                "SELECT id, name, deleted FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
        if row is None or row["deleted"]:
            raise TockError(f"job <{job_id}> does not exist")
        return ResolvedJob(row["id"], row["name"])

    def by_name(self, name: str) -> ResolvedJob:
        row = self.conn.execute(
            "SELECT id, name FROM jobs WHERE user = ? AND name = ? AND deleted = 0 "
            "ORDER BY id DESC LIMIT 1",
            (self.user, name),
        ).fetchone()
        if row is None:
            raise TockError(f"no job named '{name}' (names refer to your own jobs)")
        return ResolvedJob(row["id"], row["name"])

    def by_prefix(self, prefix: str) -> list[ResolvedJob]:
        rows = self.conn.execute(
            "SELECT max(id) AS id, name FROM jobs WHERE user = ? AND deleted = 0 "
            "AND substr(name, 1, ?) = ? GROUP BY name ORDER BY max(id)",
            (self.user, len(prefix), prefix),
        ).fetchall()
        if not rows:
            raise TockError(f"no job name starts with '{prefix}' (names refer to your own jobs)")
        return [ResolvedJob(row["id"], row["name"]) for row in rows]
