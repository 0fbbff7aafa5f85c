"""Requests that change a job's course, in the tick: kill, block, unblock, retry, complete
and fail, of a whole job or of one work item. They come from users (`tock kill`, `tock
retry`, ...) and from callbacks (`qb.retry(id)`, `retry-work-self`), as journal rows
checked against the job's owner here as in the API.

What each does to a plain job:
- block: PEND -> PSUSP (held); unblock: PSUSP -> PEND.
- retry: a finished (DONE or EXIT) job goes back to PEND and runs again when its
  condition holds. A repetitive job is never finished, so it is not retried.
- complete: a pending job ends DONE without running; fail: it ends EXIT without running,
  and a running one is killed.
- kill: see stop_job.
For a job with work items they act on the items they apply to (engine/work.py): block the
pending ones, unblock the held ones, retry the failed ones (all of them when the job ended
DONE), complete or fail those not started (fail also stops the running ones).
"""

from __future__ import annotations

import signal
import sqlite3
from typing import Any

from engine.transitions import FINISHED_STATES, PENDING_STATES, TickContext
from engine.users import may_change
from engine.work import control_item, control_job_items, reopen_job, stop_job_items

ACTIONS = ("block", "unblock", "retry", "complete", "fail", "kill")


def job_row(ctx: TickContext, job_id: int | None) -> sqlite3.Row | None:
    if job_id is None:
        return None
    row: sqlite3.Row | None = ctx.conn.execute(
        "SELECT * FROM jobs WHERE id = ?", (job_id,)
    ).fetchone()
    return row


def run_row(ctx: TickContext, run_id: int | None) -> sqlite3.Row | None:
    if run_id is None:
        return None
    row: sqlite3.Row | None = ctx.conn.execute(
        "SELECT * FROM job_runs WHERE id = ?", (run_id,)
    ).fetchone()
    return row


def allowed(ctx: TickContext, row: sqlite3.Row, job: sqlite3.Row) -> bool:
    """The API refuses other users' jobs before writing; this is the tick's own check."""
    if may_change(row["user"], job["user"], ctx.admins):
        return True
    ctx.history(
        job["id"], "refused", user=row["user"], reason=f"{row['kind']} of a job of {job['user']}"
    )
    return False


def stop_job(ctx: TickContext, row: sqlite3.Row, job: sqlite3.Row, verb: str) -> None:
    """Kill a job, whatever its state: pending ends at once, running gets a signal."""
    user = row["user"]
    state = job["state"]
    if job["work_total"]:
        stop_job_items(ctx, job, user, verb)
        return
    if state in PENDING_STATES and verb == "killed" and job["repetitive"]:
        # LSF: killing a repetitive job kills its current run; there is none.
        ctx.history(job["id"], "kill_ignored", user=user, reason="repetitive job is not running")
        return
    if state in PENDING_STATES:
        reason = f"{verb} by user {user} while pending"
        ctx.transition(
            job["id"], state, "EXIT", "killed", user=user, reason=reason, exit_reason=reason
        )
        return
    if state != "RUN":
        return
    run = run_row(ctx, job["current_run"])
    assert run is not None
    if run["status"] == "dispatched":
        # The wrapper has not claimed the run yet; its claim will now fail.
        reason = f"{verb} by user {user} before it started"
        ctx.conn.execute(
            "UPDATE job_runs SET status = 'cancelled', end_time = ?, reason = ? WHERE id = ?",
            (ctx.now, reason, run["id"]),
        )
        if job["repetitive"] and verb == "killed":
            # As for a running one: this run is gone, the job waits for its next event.
            ctx.transition(
                job["id"],
                "RUN",
                "PEND",
                "killed",
                user=user,
                reason=f"{reason}; requeued",
                run_id=run["id"],
                ready=0,
            )
            ctx.to_evaluate.add(job["id"])
            return
        ctx.transition(
            job["id"],
            "RUN",
            "EXIT",
            "killed",
            user=user,
            reason=reason,
            exit_reason=reason,
            run_id=run["id"],
        )
        return
    ctx.conn.execute("UPDATE jobs SET kill_requested_by = ? WHERE id = ?", (user, job["id"]))
    ctx.history(job["id"], "kill_requested", user=user, run_id=run["id"])
    ctx.action("signal", job["id"], run["id"], {"signal": int(signal.SIGTERM)})


def on_control(ctx: TickContext, row: sqlite3.Row, payload: dict[str, Any]) -> None:
    job = job_row(ctx, row["job_id"])
    if job is None or job["deleted"] or not allowed(ctx, row, job):
        return
    action, work = str(payload.get("action")), payload.get("work")
    user = row["user"]
    via = str(payload.get("via") or f"user {user}")
    if work is not None:
        problem = (
            control_item(ctx, job, int(work), action, user, via)
            if job["work_total"]
            else "job has no work items"
        )
    elif job["work_total"]:
        problem = _control_array(ctx, row, job, action, via)
    else:
        problem = _control_plain(ctx, row, job, action, via)
    if problem is not None:
        item = "" if work is None else f" of work item {work}"
        ctx.history(
            job["id"], f"{action}_ignored", user=user, reason=f"{action}{item} by {via}: {problem}"
        )


def _control_plain(
    ctx: TickContext, row: sqlite3.Row, job: sqlite3.Row, action: str, via: str
) -> str | None:
    state, user, job_id = job["state"], row["user"], job["id"]
    reason = f"{action} by {via}"
    if action == "block":
        if state != "PEND":
            return f"job is {state}"
        ctx.transition(job_id, "PEND", "PSUSP", "blocked", user=user, reason=reason)
        ctx.to_evaluate.add(job_id)
    elif action == "unblock":
        if state != "PSUSP":
            return f"job is {state}"
        ctx.transition(job_id, "PSUSP", "PEND", "resumed", user=user, reason=reason)
        ctx.to_evaluate.add(job_id)
    elif action == "retry":
        if state not in FINISHED_STATES:
            return f"job is {state}"
        reopen_job(ctx, job, user, reason)
    elif action in ("complete", "fail"):
        if state == "RUN" and action == "fail":
            stop_job(ctx, row, job, "failed")
            return None
        if state not in PENDING_STATES:
            return f"job is {state}"
        to, event = ("DONE", "done") if action == "complete" else ("EXIT", "exit")
        why = f"{reason} without running"
        ended = None if to == "DONE" else why
        ctx.transition(job_id, state, to, event, user=user, reason=why, exit_reason=ended)
    elif action == "kill":
        stop_job(ctx, row, job, "killed")
    else:
        return f"unknown action {action!r}"
    return None


def _control_array(
    ctx: TickContext, row: sqlite3.Row, job: sqlite3.Row, action: str, via: str
) -> str | None:
    state, user = job["state"], row["user"]
    if (action == "block" and state == "PEND") or (action == "unblock" and state == "PSUSP"):
        return _control_plain(ctx, row, job, action, via)
    if action == "kill":
        stop_job(ctx, row, job, "killed")
        return None
    if action not in ("block", "unblock", "retry", "complete", "fail"):
        return f"unknown action {action!r}"
    if action != "retry" and state in FINISHED_STATES:
        return f"job is {state}"
    count = control_job_items(ctx, job, action, user, via)
    if action == "fail":
        for item in ctx.conn.execute(
            "SELECT idx FROM work_items WHERE job_id = ? AND state = 'RUN' ORDER BY idx",
            (job["id"],),
        ).fetchall():
            control_item(ctx, job, item["idx"], "fail", user, via)
            count += 1
    return None if count else "no work item it applies to"
