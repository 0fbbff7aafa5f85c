"""What each kind of journal row does to the state. Called only by the tick.

A handler reads the row, changes jobs and runs through the TickContext, and may put
actions in the outbox. Requests that no longer make sense (killing a finished job, a
late report for a cancelled run) are settled here quietly: the journal keeps them.
"""

from __future__ import annotations

import json
import signal
import sqlite3
from typing import Any

from engine import journal
from engine.calendar_handlers import CALENDAR_HANDLERS
from engine.calendar_store import CalendarDef, accept_calendar, remove_calendar
from engine.control import allowed, job_row, on_control, run_row, stop_job
from engine.file_events import (
    apply_observations,
    attach_file_events,
    detach_file_events,
    file_event_ids,
)
from engine.submission import JobSpec, accept_external_events, accept_submit
from engine.transitions import FINISHED_STATES, PENDING_STATES, Handler, TickContext
from engine.user_events import (
    apply_post,
    attach_user_events,
    detach_user_events,
    mark_stale,
    user_event_ids,
)
from engine.work import item_ended, item_started


def on_submit(ctx: TickContext, row: sqlite3.Row, payload: dict[str, Any]) -> None:
    spec = JobSpec.from_payload(payload)
    accept_submit(ctx.conn, row["id"], row["time"], spec)
    if spec.file_events:
        attach_file_events(ctx, spec.id, spec.file_events)
    if spec.user_events:
        attach_user_events(ctx, spec.id, spec.user_events)
    if spec.callbacks:
        from engine.callback_fire import fire_for
        from engine.callback_store import CallbackDef, accept_callback, attach_callbacks

        for cdef in spec.callback_defs:
            accept_callback(ctx.conn, CallbackDef.from_payload(cdef), ctx.now, row["id"])
        attach_callbacks(ctx, spec.id, spec.callbacks)
        fire_for(ctx, spec.id, "submitted", "PSUSP" if spec.hold else "PEND")
    ctx.to_evaluate.add(spec.id)


def on_modify(ctx: TickContext, row: sqlite3.Row, payload: dict[str, Any]) -> None:
    from engine.rules import calendar_events, find_cycle, referenced_jobs, store_rule

    job = job_row(ctx, row["job_id"])
    # The API created these identity rows when it accepted the request; a replay must
    # too, even when the modification is then ignored.
    owner = job["user"] if job is not None else row["user"]
    file_events, user_events = payload.get("file_events", []), payload.get("user_events", [])
    accept_external_events(ctx.conn, file_events, user_events, owner, ctx.now, row["id"])
    if job is None or not allowed(ctx, row, job):
        return
    if job["state"] not in PENDING_STATES:
        ctx.history(job["id"], "modify_ignored", user=row["user"], reason=f"job is {job['state']}")
        return
    condition = payload.get("condition")
    if condition is None:
        ctx.conn.execute("DELETE FROM rules WHERE job_id = ?", (job["id"],))
        ctx.conn.execute("DELETE FROM job_calendars WHERE job_id = ?", (job["id"],))
        detach_file_events(ctx, job["id"], set())
        detach_user_events(ctx, job["id"], set())
    else:
        if find_cycle(ctx.conn, job["id"], referenced_jobs(payload["nodes"])) is not None:
            ctx.history(
                job["id"], "modify_ignored", user=row["user"], reason="it would make a cycle"
            )
            return
        for calendar in payload.get("calendars", []):
            accept_calendar(ctx.conn, row["id"], ctx.now, CalendarDef.from_payload(calendar), "")
        store_rule(ctx.conn, job["id"], condition, payload["nodes"], ctx.now)
        detach_file_events(ctx, job["id"], file_event_ids(payload["nodes"]))
        attach_file_events(ctx, job["id"], payload.get("file_events", []))
        detach_user_events(ctx, job["id"], user_event_ids(payload["nodes"]))
        attach_user_events(ctx, job["id"], payload.get("user_events", []))
    # The job's inline calendars that the new condition no longer names go.
    kept = calendar_events(payload.get("nodes", []))
    for old in ctx.conn.execute(
        "SELECT id, event_id FROM calendars WHERE job_id = ? AND deleted = 0", (job["id"],)
    ).fetchall():
        if old["event_id"] not in kept:
            remove_calendar(ctx.conn, old["id"], ctx.now, "no longer in the job's condition")
    ctx.conn.execute(
        "UPDATE jobs SET condition = ?, invalid_since = NULL, repetitive = ? WHERE id = ?",
        (condition, int(bool(payload.get("repetitive"))), job["id"]),
    )
    reason = f"condition <{condition}>" if condition is not None else "condition removed"
    ctx.history(job["id"], "modified", user=row["user"], reason=reason)
    ctx.to_evaluate.add(job["id"])


def on_kill(ctx: TickContext, row: sqlite3.Row, payload: dict[str, Any]) -> None:
    job = job_row(ctx, row["job_id"])
    if job is not None and allowed(ctx, row, job):
        stop_job(ctx, row, job, "killed")


def on_delete(ctx: TickContext, row: sqlite3.Row, payload: dict[str, Any]) -> None:
    job = job_row(ctx, row["job_id"])
    if job is None or job["deleted"] or not allowed(ctx, row, job):
        return
    runs = payload.get("after_runs")
    if runs is not None:
        if job["repetitive"] and job["state"] not in FINISHED_STATES:
            ctx.conn.execute("UPDATE jobs SET runs_left = ? WHERE id = ?", (runs, job["id"]))
            plural = "s" if runs > 1 else ""
            ctx.history(
                job["id"],
                "delete_scheduled",
                user=row["user"],
                reason=f"after {runs} more run{plural}",
            )
        return
    stop_job(ctx, row, job, "deleted")
    ctx.conn.execute("UPDATE jobs SET deleted = 1 WHERE id = ?", (job["id"],))
    ctx.history(job["id"], "deleted", user=row["user"])


def on_resume(ctx: TickContext, row: sqlite3.Row, payload: dict[str, Any]) -> None:
    job = job_row(ctx, row["job_id"])
    if job is None or not allowed(ctx, row, job):
        return
    if payload.get("work") is not None or (job["work_total"] and job["state"] != "PSUSP"):
        on_control(ctx, row, {**payload, "action": "unblock"})
        return
    if job["state"] != "PSUSP":
        return
    ctx.transition(job["id"], "PSUSP", "PEND", "resumed", user=row["user"])
    ctx.to_evaluate.add(job["id"])


def on_run_started(ctx: TickContext, row: sqlite3.Row, payload: dict[str, Any]) -> None:
    run = run_row(ctx, row["run_id"])
    if run is None:
        return
    if run["status"] != "dispatched":
        # Killed or declared lost before the wrapper got going, which claimed the run in the
        # meantime: record where it is, so the signal can reach it, and stop it.
        ctx.conn.execute(
            "UPDATE job_runs SET pid = ?, pid_start = ? WHERE id = ?",
            (payload.get("pid"), payload.get("pid_start"), run["id"]),
        )
        ctx.history(run["job_id"], "late_start", run_id=run["id"], reason=f"run is {run['status']}")
        ctx.action("signal", run["job_id"], run["id"], {"signal": int(signal.SIGTERM)})
        return
    ctx.conn.execute(
        "UPDATE job_runs SET status = 'running', start_time = ?, pid = ?, pid_start = ?, host = ? "
        "WHERE id = ?",
        (row["time"], payload.get("pid"), payload.get("pid_start"), payload.get("host"), run["id"]),
    )
    job = job_row(ctx, run["job_id"])
    assert job is not None
    ctx.conn.execute(
        "UPDATE jobs SET start_time = coalesce(start_time, ?), last_start = ? WHERE id = ?",
        (row["time"], row["time"], run["job_id"]),
    )
    if job["timeout"] is not None:
        ctx.conn.execute(
            "UPDATE job_runs SET timeout_at = ? WHERE id = ?",
            (row["time"] + job["timeout"], run["id"]),
        )
    if run["work_index"] is not None:
        if job["start_time"] is None:
            ctx.history(run["job_id"], "started", reason="its first work item started")
        item_started(ctx, run, row["time"])
        return
    ctx.history(run["job_id"], "started", run_id=run["id"], reason=f"pid <{payload.get('pid')}>")
    ctx.changed.add(run["job_id"])


def _failure(
    job: sqlite3.Row, exit_code: int | None, term_signal: int | None, error: str | None
) -> str:
    if error is not None:
        return f"start failed: {error}"
    if job["kill_requested_by"]:
        return f"killed by user {job['kill_requested_by']}"
    if term_signal is not None:
        return f"terminated by {_signal_name(term_signal)}"
    return f"exit code {exit_code}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def on_run_finished(ctx: TickContext, row: sqlite3.Row, payload: dict[str, Any]) -> None:
    run = run_row(ctx, row["run_id"])
    if run is None or run["status"] not in ("dispatched", "running"):
        return
    exit_code = payload.get("exit_code")
    term_signal = payload.get("signal")
    error = payload.get("error")
    ok = exit_code == 0 and term_signal is None and error is None
    ctx.conn.execute(
        "UPDATE job_runs SET status = ?, end_time = ?, exit_code = ?, term_signal = ?, reason = ?, "
        "timeout_at = NULL WHERE id = ?",
        ("done" if ok else "exit", row["time"], exit_code, term_signal, error, run["id"]),
    )
    job = job_row(ctx, run["job_id"])
    if job is not None and run["work_index"] is not None:
        item_reason = None if ok else _failure(job, exit_code, term_signal, error)
        item_ended(ctx, run, ok, "done" if ok else "exit", item_reason, exit_code, term_signal)
        return
    if job is None or job["state"] != "RUN" or job["current_run"] != run["id"]:
        return
    reason = None if ok else _failure(job, exit_code, term_signal, error)
    killed = not ok and error is None and job["kill_requested_by"]
    end_run(
        ctx,
        job,
        ok,
        "done" if ok else "killed" if killed else "exit",
        reason,
        run["id"],
        row["time"],
        exit_code=exit_code,
        term_signal=term_signal,
    )


def end_run(
    ctx: TickContext,
    job: sqlite3.Row,
    ok: bool,
    event: str,
    reason: str | None,
    run_id: int,
    end: float,
    **columns: Any,
) -> None:
    """A run is over. A repetitive job goes back to PEND for its next time event (LSF),
    unless it is being deleted or `tock del -n` counted this run as its last."""
    columns.update(exit_reason=reason, last_end=end, last_ok=int(ok), end_time=end)
    runs_left = job["runs_left"]
    if runs_left is not None:
        runs_left -= 1
    if job["repetitive"] and not job["deleted"] and (runs_left is None or runs_left > 0):
        if job["kill_requested_by"]:
            reason = f"{reason}; requeued"
        ctx.transition(
            job["id"],
            "RUN",
            "PEND",
            event,
            reason=reason,
            run_id=run_id,
            ready=0,
            kill_requested_by=None,
            runs_left=runs_left,
            **columns,
        )
        ctx.to_evaluate.add(job["id"])
        return
    ctx.transition(
        job["id"], "RUN", "DONE" if ok else "EXIT", event, reason=reason, run_id=run_id, **columns
    )
    if runs_left == 0:
        ctx.conn.execute("UPDATE jobs SET deleted = 1, runs_left = 0 WHERE id = ?", (job["id"],))
        ctx.history(job["id"], "deleted", reason="its last run as requested (tock del -n)")


def _end_run_abnormally(ctx: TickContext, run: sqlite3.Row, status: str, reason: str) -> None:
    ctx.conn.execute(
        "UPDATE job_runs SET status = ?, end_time = ?, reason = ?, timeout_at = NULL WHERE id = ?",
        (status, ctx.now, reason, run["id"]),
    )
    if run["work_index"] is not None:
        item_ended(ctx, run, False, "lost" if status == "lost" else "exit", reason)
        return
    job = job_row(ctx, run["job_id"])
    if job is not None and job["state"] == "RUN" and job["current_run"] == run["id"]:
        end_run(ctx, job, False, status, reason, run["id"], ctx.now)


def on_run_lost(ctx: TickContext, row: sqlite3.Row, payload: dict[str, Any]) -> None:
    run = run_row(ctx, row["run_id"])
    if run is None:
        return
    claimed_by_other = run["pid"] is not None and run["pid"] != payload.get("pid")
    if run["status"] == "dispatched" or (run["status"] == "running" and not claimed_by_other):
        _end_run_abnormally(ctx, run, "lost", f"lost: {payload.get('reason', 'wrapper vanished')}")


def on_dispatch_failed(ctx: TickContext, row: sqlite3.Row, payload: dict[str, Any]) -> None:
    run = run_row(ctx, row["run_id"])
    if run is not None and run["status"] == "dispatched":
        _end_run_abnormally(ctx, run, "exit", f"start failed: {payload.get('error')}")


def on_daemon_start(ctx: TickContext, row: sqlite3.Row, payload: dict[str, Any]) -> None:
    ctx.max_running = int(payload.get("max_running") or ctx.max_running)
    grace = payload.get("orphan_grace_period")
    ctx.orphan_grace = None if grace is None else float(grace)
    ctx.admins = frozenset(payload.get("admins") or [])
    ctx.conn.execute(
        "UPDATE tick_state SET public_events = ?",
        (json.dumps(list(payload.get("public_events") or [])),),
    )
    # The policy of the daemon's configuration, recorded so the API can read it from the
    # database rather than from whatever configuration a requester points at.
    ctx.conn.execute(
        "UPDATE tick_state SET max_running = ?, orphan_grace = ?, admins = ?",
        (ctx.max_running, ctx.orphan_grace, json.dumps(list(payload.get("admins") or []))),
    )


def on_file_observed(ctx: TickContext, row: sqlite3.Row, payload: dict[str, Any]) -> None:
    """What the daemon's watcher saw; the file system itself is never read here."""
    apply_observations(ctx, payload.get("observations", []))


def on_event_post(ctx: TickContext, row: sqlite3.Row, payload: dict[str, Any]) -> None:
    apply_post(ctx, row, payload)


def on_event_daemon(ctx: TickContext, row: sqlite3.Row, payload: dict[str, Any]) -> None:
    """A site event daemon exited: the events it posted keep their status, marked stale."""
    if payload.get("state") == "exited":
        mark_stale(ctx, str(payload.get("daemon")))


def on_callbacks_loaded(ctx: TickContext, row: sqlite3.Row, payload: dict[str, Any]) -> None:
    from engine.callback_store import load_universal

    load_universal(ctx, payload.get("callbacks", []))


def on_callback_finished(ctx: TickContext, row: sqlite3.Row, payload: dict[str, Any]) -> None:
    from engine.callback_store import record_result

    record_result(ctx, payload)


def on_clock(ctx: TickContext, row: sqlite3.Row, payload: dict[str, Any]) -> None:
    """Time passing is an input too: nothing to apply, `now` has already moved."""


HANDLERS: dict[str, Handler] = {
    journal.SUBMIT: on_submit,
    journal.MODIFY: on_modify,
    journal.KILL: on_kill,
    journal.DELETE: on_delete,
    journal.RESUME: on_resume,
    journal.RUN_STARTED: on_run_started,
    journal.RUN_FINISHED: on_run_finished,
    journal.RUN_LOST: on_run_lost,
    journal.DISPATCH_FAILED: on_dispatch_failed,
    journal.DAEMON_START: on_daemon_start,
    journal.CLOCK: on_clock,
    journal.FILE_OBSERVED: on_file_observed,
    journal.EVENT_POST: on_event_post,
    journal.EVENT_DAEMON: on_event_daemon,
    journal.CALLBACKS_LOADED: on_callbacks_loaded,
    journal.CALLBACK_FINISHED: on_callback_finished,
    journal.CONTROL: on_control,
    **CALENDAR_HANDLERS,
}


def apply_row(ctx: TickContext, row: sqlite3.Row) -> None:
    handler = HANDLERS.get(row["kind"])
    if handler is None:
        raise ValueError(f"journal row {row['id']} has unknown kind {row['kind']!r}")
    handler(ctx, row, json.loads(row["payload"]))
