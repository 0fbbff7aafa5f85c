"""Read models: jobs, `why` trees and history, as plain values ready for JSON or text."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.logic import CalendarFacts, Value
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
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("submit_time", "start_time", "end_time", "last_end"):
            data[key] = iso(data[key])
        return data


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

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"expr": self.expr, "value": self.value}
        if self.job is not None:
            data["job"] = self.job
        if self.calendar is not None:
            data["calendar"] = self.calendar
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
    waiting = conn.execute(
        "SELECT j.catchup, j.last_end, t.now FROM jobs AS j, tick_state AS t WHERE j.id = ?",
        (job_id,),
    ).fetchone()
    if leaf_events(root):
        from engine.timeevents import calendar_facts

        # As the tick last saw them: the tick's own clock, not the caller's.
        calendars = calendar_facts(conn, job_id, waiting["catchup"], waiting["now"])
    evaluate(root, Evaluation(facts, calendars, since=waiting["last_end"], trace=trace))
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
        calendar = None
        if node.event is not None and node.event in calendars:
            cal = calendars[node.event]
            calendar = {
                "calendar": cal.label,
                "status": "deleted" if cal.gone else "active" if cal.active else "inactive",
                "unused_event": cal.owed,
                "next_start": iso(cal.next_start),
            }
        children = [build(c) for c in node.children]
        return WhyNode(node.text, trace[node.id].value, children, job, calendar)

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

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["time"] = iso(self.time)
        return data


def history(conn: sqlite3.Connection, job_id: int) -> list[HistoryEntry]:
    rows = conn.execute(
        "SELECT h.time, h.event, h.from_state, h.to_state, h.user, h.reason, h.run_id, r.run_no "
        "FROM history AS h LEFT JOIN job_runs AS r ON r.id = h.run_id "
        "WHERE h.job_id = ? ORDER BY h.id",
        (job_id,),
    )
    return [HistoryEntry(*row) for row in rows]
