"""Read models: jobs, `why` trees and history, as plain values ready for JSON or text."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.logic import CalendarFacts, EventFacts, Value, work_counts
from engine.rules import (
    Evaluation,
    RuleNode,
    evaluate,
    job_facts,
    leaf_events,
    leaf_jobs,
    load_rule,
)
from engine.timefmt import iso


@dataclass(frozen=True, slots=True)
class JobInfo:
    id: int
    name: str
    user: str
    state: str
    exit_code: int | None
    command: str
    condition: str | None
    pending_reason: str | None
    submit_time: float
    start_time: float | None
    end_time: float | None
    cwd: str
    stdout: str
    stderr: str
    dep_value: str | None
    exit_reason: str | None
    term_signal: int | None
    run_count: int
    terminate_orphan: bool
    deleted: bool
    repetitive: bool = False
    catchup: str = "none"
    runs_left: int | None = None
    last_end: float | None = None
    work: dict[str, Any] | None = None  # spec and counts by state of its work items

    @property
    def full_name(self) -> str:
        """The name with its index list, `render[1-100]%5`, as it was given to -J."""
        return self.name + (self.work["spec"] if self.work else "")

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> JobInfo:
        pending = row["state"] in ("PEND", "PSUSP")
        return cls(
            id=row["id"],
            name=row["name"],
            user=row["user"],
            state=row["state"],
            exit_code=row["exit_code"],
            command=row["command"],
            condition=row["condition"],
            pending_reason=row["pending_reason"] if pending else None,
            submit_time=row["submit_time"],
            start_time=row["start_time"],
            end_time=row["end_time"],
            cwd=row["cwd"],
            stdout=row["stdout_path"],
            stderr=row["stderr_path"],
            dep_value=row["dep_value"],
            exit_reason=row["exit_reason"],
            term_signal=row["term_signal"],
            run_count=row["run_count"],
            terminate_orphan=bool(row["terminate_orphan"]),
            deleted=bool(row["deleted"]),
            repetitive=bool(row["repetitive"]),
            catchup=row["catchup"],
            runs_left=row["runs_left"],
            last_end=row["last_end"],
            work=_work_counts(row),
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("submit_time", "start_time", "end_time", "last_end"):
            data[key] = iso(data[key])
        return data


def _work_counts(row: sqlite3.Row) -> dict[str, Any] | None:
    if not row["work_total"]:
        return None
    counts = {name: row[f"work_{name}"] for name in ("total", "pend", "run", "done", "exit")}
    return {"spec": row["work_spec"], "limit": row["work_limit"], **counts}


UNFINISHED = ("PEND", "PSUSP", "RUN")


def list_jobs(
    conn: sqlite3.Connection,
    *,
    ids: Sequence[int] = (),
    user: str | None = None,
    name: str | None = None,
    include_finished: bool = False,
) -> list[JobInfo]:
    where: list[str] = []
    args: list[Any] = []
    if ids:
        where.append(f"id IN ({','.join('?' * len(ids))})")
        args.extend(ids)
    else:
        where.append("deleted = 0")
        if not include_finished:
            where.append("state IN ('PEND', 'PSUSP', 'RUN')")
    if user is not None:
        where.append("user = ?")
        args.append(user)
    if name is not None:
        if name.endswith("*"):
            where.append("substr(name, 1, ?) = ?")
            args.extend([len(name) - 1, name[:-1]])
        else:
            where.append("name = ?")
            args.append(name)
    sql = "SELECT * FROM jobs WHERE " + " AND ".join(where) + " ORDER BY id"
    return [JobInfo.from_row(row) for row in conn.execute(sql, args)]


def get_job(conn: sqlite3.Connection, job_id: int) -> JobInfo | None:
    row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return None if row is None else JobInfo.from_row(row)


@dataclass(frozen=True, slots=True)
class WhyNode:
    """One node of a condition with its current value; leaves name the job behind them."""

    expr: str
    value: str
    children: list[WhyNode] = field(default_factory=list)
    job: dict[str, Any] | None = None
    calendar: dict[str, Any] | None = None
    event: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"expr": self.expr, "value": self.value}
        if self.job is not None:
            data["job"] = self.job
        if self.calendar is not None:
            data["calendar"] = self.calendar
        if self.event is not None:
            data["event"] = self.event
        data["children"] = [child.to_json() for child in self.children]
        return data


def why(conn: sqlite3.Connection, job_id: int) -> WhyNode | None:
    root = load_rule(conn, job_id)
    if root is None:
        return None
    referenced = leaf_jobs(root)
    facts = job_facts(conn, referenced)
    trace: dict[int, Value] = {}
    calendars: dict[int, CalendarFacts] = {}
    events: dict[int, EventFacts] = {}
    waiting = conn.execute(
        "SELECT j.catchup, j.last_end, t.now FROM jobs AS j, tick_state AS t WHERE j.id = ?",
        (job_id,),
    ).fetchone()
    if leaf_events(root):
        from engine.file_events import file_facts
        from engine.timeevents import calendar_facts
        from engine.user_events import user_facts

        # As the tick last saw them: the tick's own clock, not the caller's.
        calendars = calendar_facts(conn, job_id, waiting["catchup"], waiting["now"])
        events = file_facts(conn, job_id) | user_facts(conn, job_id)
    evaluate(root, Evaluation(facts, calendars, events, since=waiting["last_end"], trace=trace))
    names = {}
    if referenced:
        marks = ",".join("?" * len(referenced))
        names = {
            row[0]: (row[1], row[2])
            for row in conn.execute(
                f"SELECT id, name, user FROM jobs WHERE id IN ({marks})", list(referenced)
            )
        }

    def build(node: RuleNode) -> WhyNode:
        job = None
        if node.job is not None:
            fact = facts.get(node.job)
            name, owner = names.get(node.job, (None, None))
            job = {
                "id": node.job,
                "name": name,
                "user": owner,
                "state": fact.state if fact else None,
                "exit_code": fact.exit_code if fact else None,
            }
            if node.count_func is not None and fact is not None:
                # What the count was compared with; a plain job shows as its one item.
                job["work"] = asdict(work_counts(fact))
        calendar = None
        if node.event is not None and node.event in calendars:
            cal = calendars[node.event]
            calendar = {
                "calendar": cal.label,
                "status": "deleted" if cal.gone else "active" if cal.active else "inactive",
                "unused_event": cal.owed,
                "next_start": iso(cal.next_start),
            }
        event = None
        if node.event is not None and node.event in events:
            ext = events[node.event]
            event = {"event": ext.label, "holds": ext.holds, "invalid": ext.blocked}
        children = [build(c) for c in node.children]
        return WhyNode(node.text, trace[node.id].value, children, job, calendar, event)

    return build(root)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    time: float
    event: str
    from_state: str | None
    to_state: str | None
    user: str | None
    reason: str | None
    run_id: int | None
    run_no: int | None
    work_index: int | None = None  # the work item it is about; None: the job

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["time"] = iso(self.time)
        return data


def history(conn: sqlite3.Connection, job_id: int) -> list[HistoryEntry]:
    rows = conn.execute(
        "SELECT h.time, h.event, h.from_state, h.to_state, h.user, h.reason, h.run_id, r.run_no, "
        "h.work_index "
        "FROM history AS h LEFT JOIN job_runs AS r ON r.id = h.run_id "
        "WHERE h.job_id = ? ORDER BY h.id",
        (job_id,),
    )
    return [HistoryEntry(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class EventInfo:
    """One external event as `tock events` (LSF's bevents) shows it."""

    id: int
    event: str
    owner: str
    status: str
    source: str
    attribute: str | None
    last_update: float
    dependent_jobs: int
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self, long: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "event": self.event,
            "owner": self.owner,
            "status": self.status,
            "source": self.source,
            "attribute": self.attribute,
            "last_update": iso(self.last_update),
        }
        if long:
            data |= {"id": self.id, "dependent_jobs": self.dependent_jobs, **self.detail}
        return data


def _event_info(row: sqlite3.Row, detail: dict[str, Any]) -> EventInfo:
    return EventInfo(
        row["id"],
        row["canonical"],
        row["owner"],
        row["status"],
        row["kind"],
        row["attribute"],
        row["last_update"],
        row["dependents"],
        detail,
    )


def events(
    conn: sqlite3.Connection, *, owner: str | None = None, include_calendars: bool = False
) -> list[EventInfo]:
    """Live external events (file clauses some job waits on; one accepted but not yet
    seen by the tick has no state yet), oldest first; with
    `include_calendars`, the time events of live calendars too."""
    sql = (
        "SELECT e.id, e.canonical, e.owner, e.status, e.kind, e.attribute, e.last_update, "
        "f.edge, f.fired, f.fired_at, f.next_check, "
        "(SELECT json_group_array(p.path) FROM file_event_paths AS p "
        "  WHERE p.event_id = e.id) AS paths, "
        "(SELECT count(*) FROM job_file_events AS l JOIN jobs AS j ON j.id = l.job_id "
        "  WHERE l.event_id = e.id AND j.state IN ('PEND', 'PSUSP', 'RUN')) AS dependents "
        "FROM events AS e LEFT JOIN file_events AS f ON f.event_id = e.id "
        "WHERE e.kind = 'file' AND f.removed IS NULL AND (f.event_id IS NOT NULL "
        "  OR EXISTS (SELECT 1 FROM rule_nodes AS n JOIN rules AS r ON r.id = n.rule_id "
        "  JOIN jobs AS j ON j.id = r.job_id WHERE n.event_id = e.id "
        "  AND j.state IN ('PEND', 'PSUSP', 'RUN')))"
    )
    args: list[Any] = []
    if owner is not None:
        sql += " AND e.owner = ?"
        args.append(owner)
    found = [
        _event_info(
            row,
            {
                "kind": None if row["edge"] is None else "arrival" if row["edge"] else "level",
                "fired": row["fired"] or 0,
                "fired_at": iso(row["fired_at"]),
                "next_check": iso(row["next_check"]),
                "paths": json.loads(row["paths"]),
            },
        )
        for row in conn.execute(sql, args)
    ]
    sql = (
        "SELECT e.id, e.canonical, e.owner, e.status, e.kind, e.attribute, e.last_update, "
        "u.type, u.pulses, u.fired, u.holder, u.source, u.stale, u.subscribed, "
        "(SELECT count(*) FROM job_user_events AS l JOIN jobs AS j ON j.id = l.job_id "
        "  WHERE l.event_id = e.id AND j.state IN ('PEND', 'PSUSP', 'RUN')) AS dependents "
        "FROM events AS e JOIN user_events AS u ON u.event_id = e.id "
        "WHERE (u.subscribed = 1 OR e.status != 'inactive' OR EXISTS (SELECT 1 "
        "  FROM rule_nodes AS n JOIN rules AS r ON r.id = n.rule_id "
        "  JOIN jobs AS j ON j.id = r.job_id WHERE n.event_id = e.id "
        "  AND j.state IN ('PEND', 'PSUSP', 'RUN')))"
    )
    args = []
    if owner is not None:
        sql += " AND e.owner = ?"
        args.append(owner)
    found += [
        _event_info(
            row,
            {
                "type": row["type"],
                "pulses": row["pulses"],
                "fired": row["fired"],
                "holder": row["holder"],
                "posted_by": row["source"],
                "stale": bool(row["stale"]),
                "subscribed": bool(row["subscribed"]),
            },
        )
        for row in conn.execute(sql, args)
    ]
    if include_calendars:
        sql = (
            "SELECT e.id, e.canonical, e.owner, e.status, e.kind, e.attribute, e.last_update, "
            "c.name, c.expression, (SELECT count(DISTINCT jc.job_id) FROM job_calendars AS jc "
            "JOIN jobs AS j ON j.id = jc.job_id WHERE jc.event_id = e.id "
            "AND j.state IN ('PEND', 'PSUSP', 'RUN')) AS dependents "
            "FROM events AS e JOIN calendars AS c ON c.event_id = e.id WHERE c.deleted = 0"
        )
        args = []
        if owner is not None:
            sql += " AND e.owner = ?"
            args.append(owner)
        found += [
            _event_info(row, {"calendar": row["name"], "expression": row["expression"]})
            for row in conn.execute(sql, args)
        ]
    return sorted(found, key=lambda info: info.id)
