"""Requests on a job's course and its work items, behind `tock block|retry|complete|fail`
and `tock work` (engine.api.Tock delegates here). The API checks what it can see (the
job, its owner, the item); the tick checks the owner again and settles the rest, since
the state may change before the request is applied."""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from engine import journal
from engine.errors import TockError
from engine.store import write
from engine.timefmt import iso

if TYPE_CHECKING:
    from engine.api import Tock

ACTIONS = ("block", "unblock", "retry", "complete", "fail", "kill")


@dataclass(frozen=True, slots=True)
class WorkInfo:
    job_id: int
    index: int
    state: str
    runs: int
    exit_code: int | None
    reason: str | None
    start_time: float | None
    end_time: float | None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["start_time"], data["end_time"] = iso(self.start_time), iso(self.end_time)
        return data


def control(api: Tock, job_id: int, action: str, work: int | None, via: str | None) -> None:
    if action not in ACTIONS:
        raise TockError(f"{action}: choose one of {', '.join(ACTIONS)}")
    with api._guarded():
        conn = api.conn
        with write(conn):
            job = api._owned_job(conn, job_id)
            if work is not None:
                _check_item(conn, job, work)
            payload: dict[str, object] = {"action": action, "work": work}
            if via is not None:
                payload["via"] = via
            journal.append(
                conn,
                time=api.clock.now(),
                kind=journal.CONTROL,
                user=api.user,
                job_id=job_id,
                payload=payload,
            )
    api._wake()


def _check_item(conn: sqlite3.Connection, job: sqlite3.Row, work: int) -> None:
    if not job["work_total"]:
        raise TockError(f"Job <{job['id']}>: it has no work items (submit with -J 'name[1-10]')")
    found = conn.execute(
        "SELECT 1 FROM work_items WHERE job_id = ? AND idx = ?", (job["id"], work)
    ).fetchone()
    if found is None:
        raise TockError(f"Job <{job['id']}[{work}]>: No matching work item found")


def items(api: Tock, job_id: int, states: tuple[str, ...] = ()) -> list[WorkInfo]:
    api.job(job_id)
    where, args = "job_id = ?", [job_id]
    if states:
        where += f" AND state IN ({','.join('?' * len(states))})"
        args.extend(states)  # type: ignore[arg-type]
    with api._guarded():
        rows = api.conn.execute(
            "SELECT job_id, idx, state, run_count, exit_code, reason, start_time, end_time "
            f"FROM work_items WHERE {where} ORDER BY idx",
            args,
        ).fetchall()
    return [WorkInfo(*row) for row in rows]
