"""Work items in the tick: dispatching a job's items, their ends, and the job that follows.

A job submitted with an index list (`-J 'name[1-100]%5'`, engine/workspec.py) has one
`work_items` row per index. Its condition is the job's: once it holds, the job goes PEND
-> RUN and its items start lowest index first, as job slots (`max_running`) and the job's
own `%N` allow; each item is a run of the job's command with its index in the
environment. The job's state follows its items: RUN while any is unfinished, then DONE if
every item is DONE, else EXIT (its exit code the highest of its failed items).

Every item change is a history row with `work_index`, which fires the work callbacks
(`done-work-self-*` once per item end), and marks the job changed, so conditions on it
(`numdone(job, > 10)`) are re-evaluated.
"""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Iterable

from engine.transitions import PENDING_STATES, TickContext

ITEM_ENDED = ("DONE", "EXIT")


def create_items(conn: sqlite3.Connection, job_id: int, indices: Iterable[int]) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO work_items (job_id, idx) VALUES (?, ?)",
        ((job_id, index) for index in indices),
    )


def room(job: sqlite3.Row) -> int:
    """How many more of the job's items its own `%N` lets run now."""
    limit = job["work_limit"]
    total, running = int(job["work_total"]), int(job["work_run"])
    return total if limit is None else max(0, int(limit) - running)


def first_attribute(conn: sqlite3.Connection, job_id: int) -> str | None:
    """The event attribute the job was last released with, for the rest of its items."""
    row = conn.execute(
        "SELECT event_attrib FROM job_runs WHERE job_id = ? ORDER BY id DESC LIMIT 1", (job_id,)
    ).fetchone()
    return None if row is None else row[0]


def dispatch_items(ctx: TickContext, job_id: int, count: int, attribute: str | None) -> int:
    """Start up to `count` of the job's pending items, lowest index first; how many."""
    job = ctx.conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    count = min(count, room(job))
    if count <= 0:
        return 0
    items = ctx.conn.execute(
        "SELECT idx FROM work_items WHERE job_id = ? AND state = 'PEND' ORDER BY idx LIMIT ?",
        (job_id, count),
    ).fetchall()
    run_no = job["run_count"]
    for item in items:
        run_no += 1
        run_id = ctx.conn.execute(
            "INSERT INTO job_runs (job_id, run_no, status, dispatch_time, event_attrib, "
            "work_index) VALUES (?, ?, 'dispatched', ?, ?, ?)",
            (job_id, run_no, ctx.now, attribute, item["idx"]),
        ).lastrowid
        assert run_id is not None
        ctx.conn.execute(
            "UPDATE work_items SET state = 'RUN', current_run = ?, run_count = run_count + 1, "
            "forced = NULL, exit_code = NULL, term_signal = NULL, reason = NULL, "
            "end_time = NULL WHERE job_id = ? AND idx = ?",
            (run_id, job_id, item["idx"]),
        )
        ctx.action("start", job_id, run_id, {})
    ctx.conn.execute("UPDATE jobs SET run_count = ? WHERE id = ?", (run_no, job_id))
    if items:
        ctx.changed.add(job_id)
    return len(items)


def item_started(ctx: TickContext, run: sqlite3.Row, time: float) -> None:
    index = run["work_index"]
    ctx.conn.execute(
        "UPDATE work_items SET started = 1, start_time = ? WHERE job_id = ? AND idx = ?",
        (time, run["job_id"], index),
    )
    ctx.history(run["job_id"], "started", run_id=run["id"], to_state="RUN", work_index=index)
    ctx.changed.add(run["job_id"])


def item_ended(
    ctx: TickContext,
    run: sqlite3.Row,
    ok: bool,
    event: str,
    reason: str | None,
    exit_code: int | None = None,
    term_signal: int | None = None,
) -> None:
    """The run of an item is over (finished, lost or never started): the item ends, and the
    job with it when it was the last."""
    job_id, index = run["job_id"], run["work_index"]
    item = ctx.conn.execute(
        "SELECT * FROM work_items WHERE job_id = ? AND idx = ?", (job_id, index)
    ).fetchone()
    if item is None or item["state"] != "RUN" or item["current_run"] != run["id"]:
        return
    job = ctx.conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    state = "DONE" if ok else "EXIT"
    if item["forced"] is not None:
        state, reason = item["forced"], item["reason"]
        event = "done" if state == "DONE" else "killed" if reason.startswith("kill") else "exit"
    elif not ok and job["kill_requested_by"]:
        event, reason = "killed", f"killed by user {job['kill_requested_by']}"
    ctx.conn.execute(
        "UPDATE work_items SET state = ?, exit_code = ?, term_signal = ?, reason = ?, "
        "end_time = ?, forced = NULL WHERE job_id = ? AND idx = ?",
        (state, exit_code, term_signal, reason, ctx.now, job_id, index),
    )
    ctx.history(
        job_id,
        event,
        from_state="RUN",
        to_state=state,
        reason=reason,
        run_id=run["id"],
        work_index=index,
    )
    ctx.changed.add(job_id)
    finish_if_ended(ctx, job_id)


def finish_if_ended(ctx: TickContext, job_id: int) -> None:
    """A job whose items have all ended ends too (a pending one when a request completed or
    failed every item before any ran)."""
    job = ctx.conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if job is None or job["state"] in ITEM_ENDED or job["work_pend"] or job["work_run"]:
        return
    failed, state = job["work_exit"], job["state"]
    if failed == 0:
        ctx.transition(job_id, state, "DONE", "done", exit_code=0, exit_reason=None)
        return
    worst = ctx.conn.execute(
        "SELECT max(exit_code) FROM work_items WHERE job_id = ? AND state = 'EXIT'", (job_id,)
    ).fetchone()[0]
    reason = f"{failed} of {job['work_total']} work items failed"
    event = "exit"
    if job["kill_requested_by"]:
        event, reason = "killed", f"killed by user {job['kill_requested_by']}; {reason}"
    ctx.transition(job_id, state, "EXIT", event, reason=reason, exit_code=worst, exit_reason=reason)


def _end_unstarted(
    ctx: TickContext, job_id: int, states: tuple[str, ...], to: str, why: str
) -> int:
    """Items in `states` that never got a run end at once, without history rows each."""
    marks = ",".join("?" * len(states))
    cursor = ctx.conn.execute(
        f"UPDATE work_items SET state = ?, reason = ?, end_time = ? "
        f"WHERE job_id = ? AND state IN ({marks})",
        (to, why, ctx.now, job_id, *states),
    )
    if cursor.rowcount:
        ctx.changed.add(job_id)
    return cursor.rowcount


def stop_job_items(ctx: TickContext, job: sqlite3.Row, user: str, verb: str) -> None:
    """Kill (or delete) a job with work items: items not started never will, started ones
    are signalled, and the job ends with the last of them."""
    job_id, state = job["id"], job["state"]
    if state in PENDING_STATES:
        reason = f"{verb} by user {user} while pending"
        _end_unstarted(ctx, job_id, ("PEND", "PSUSP"), "EXIT", reason)
        ctx.transition(
            job_id, state, "EXIT", "killed", user=user, reason=reason, exit_reason=reason
        )
        return
    if state != "RUN":
        return
    ended = _end_unstarted(ctx, job_id, ("PEND", "PSUSP"), "EXIT", f"{verb} by user {user}")
    ctx.conn.execute("UPDATE jobs SET kill_requested_by = ? WHERE id = ?", (user, job_id))
    ctx.history(job_id, "kill_requested", user=user, reason=f"{ended} items had not started")
    for item in ctx.conn.execute(
        "SELECT idx, current_run FROM work_items WHERE job_id = ? AND state = 'RUN' ORDER BY idx",
        (job_id,),
    ).fetchall():
        _stop_item_run(ctx, job_id, item["idx"], item["current_run"], f"{verb} by user {user}")
    finish_if_ended(ctx, job_id)


def _stop_item_run(ctx: TickContext, job_id: int, index: int, run_id: int, reason: str) -> None:
    run = ctx.conn.execute("SELECT * FROM job_runs WHERE id = ?", (run_id,)).fetchone()
    if run["status"] == "dispatched":
        # Not claimed by a wrapper yet: its claim will now fail.
        ctx.conn.execute(
            "UPDATE job_runs SET status = 'cancelled', end_time = ?, reason = ? WHERE id = ?",
            (ctx.now, f"{reason} before it started", run_id),
        )
        item_ended(ctx, run, False, "killed", f"{reason} before it started")
        return
    ctx.action("signal", job_id, run_id, {"signal": int(signal.SIGTERM)})


def work_item(ctx: TickContext, job_id: int, index: int) -> sqlite3.Row | None:
    row: sqlite3.Row | None = ctx.conn.execute(
        "SELECT * FROM work_items WHERE job_id = ? AND idx = ?", (job_id, index)
    ).fetchone()
    return row


def control_item(
    ctx: TickContext, job: sqlite3.Row, index: int, action: str, user: str, via: str
) -> str | None:
    """block, unblock, retry, complete, fail or kill one item; why not, or None if done."""
    job_id = job["id"]
    item = work_item(ctx, job_id, index)
    if item is None:
        return f"job has no work item {index}"
    state = item["state"]
    reason = f"{action} by {via}"
    if action == "block":
        if state != "PEND":
            return f"work item {index} is {state}"
        _set_item(ctx, job_id, index, "PSUSP", "blocked", user, reason, state)
    elif action == "unblock":
        if state != "PSUSP":
            return f"work item {index} is {state}"
        _set_item(ctx, job_id, index, "PEND", "resumed", user, reason, state)
    elif action == "retry":
        if state not in ITEM_ENDED:
            return f"work item {index} is {state}"
        _set_item(ctx, job_id, index, "PEND", "retried", user, reason, state, started=0)
        _clear_kill(ctx, job_id)
        reopen_job(ctx, job, user, f"work item {index} retried")
    elif action in ("complete", "fail", "kill"):
        to = "DONE" if action == "complete" else "EXIT"
        if state in ITEM_ENDED:
            return f"work item {index} is {state}"
        if state == "RUN":
            ctx.conn.execute(
                "UPDATE work_items SET forced = ?, reason = ? WHERE job_id = ? AND idx = ?",
                (to, reason, job_id, index),
            )
            ctx.history(job_id, f"{action}_requested", user=user, reason=reason, work_index=index)
            _stop_item_run(ctx, job_id, index, item["current_run"], reason)
            return None
        event = {"complete": "done", "fail": "exit", "kill": "killed"}[action]
        _set_item(ctx, job_id, index, to, event, user, reason, state)
        finish_if_ended(ctx, job_id)
    else:
        return f"unknown work action {action!r}"
    return None


def _set_item(
    ctx: TickContext,
    job_id: int,
    index: int,
    to: str,
    event: str,
    user: str,
    reason: str,
    from_state: str,
    **columns: object,
) -> None:
    columns["state"] = to
    if to in ITEM_ENDED:
        columns["end_time"] = ctx.now
    sets = ", ".join(f"{name} = ?" for name in columns)
    ctx.conn.execute(
        f"UPDATE work_items SET {sets} WHERE job_id = ? AND idx = ?",
        (*columns.values(), job_id, index),
    )
    ctx.history(
        job_id,
        event,
        from_state=from_state,
        to_state=to,
        user=user,
        reason=reason,
        work_index=index,
    )
    ctx.changed.add(job_id)


def _retry_items(ctx: TickContext, job: sqlite3.Row, user: str, via: str) -> int:
    """The failed items run again, in one history row; every item when the job ended DONE."""
    reason = f"retry by {via}"
    again = "DONE" if job["state"] == "DONE" else "EXIT"
    count = ctx.conn.execute(
        "UPDATE work_items SET state = 'PEND', started = 0, reason = ?, end_time = NULL "
        "WHERE job_id = ? AND state = ?",
        (reason, job["id"], again),
    ).rowcount
    if count:
        plural = "s" if count > 1 else ""
        ctx.history(job["id"], "items_retried", user=user, reason=f"{count} item{plural}: {reason}")
        ctx.changed.add(job["id"])
        _clear_kill(ctx, job["id"])
        reopen_job(ctx, job, user, reason)
    return count


def _clear_kill(ctx: TickContext, job_id: int) -> None:
    """Items given another run are no longer under an earlier kill of their job."""
    ctx.conn.execute("UPDATE jobs SET kill_requested_by = NULL WHERE id = ?", (job_id,))


def reopen_job(ctx: TickContext, job: sqlite3.Row, user: str, reason: str) -> None:
    """A finished job given work again goes back to PEND: its condition is evaluated anew
    and its pending items start when it holds."""
    if job["state"] not in ITEM_ENDED:
        return
    ctx.transition(
        job["id"],
        job["state"],
        "PEND",
        "retried",
        user=user,
        reason=reason,
        ready=0,
        exit_code=None,
        exit_reason=None,
        end_time=None,
        kill_requested_by=None,
    )
    ctx.to_evaluate.add(job["id"])


def control_job_items(ctx: TickContext, job: sqlite3.Row, action: str, user: str, via: str) -> int:
    """block/unblock/retry/complete/fail every item it applies to; how many."""
    if action == "retry":
        return _retry_items(ctx, job, user, via)
    wanted = {
        "block": ("PEND",),
        "unblock": ("PSUSP",),
        "complete": ("PEND", "PSUSP"),
        "fail": ("PEND", "PSUSP"),
    }[action]
    marks = ",".join("?" * len(wanted))
    items = ctx.conn.execute(
        f"SELECT idx FROM work_items WHERE job_id = ? AND state IN ({marks}) ORDER BY idx",
        (job["id"], *wanted),
    ).fetchall()
    for item in items:
        control_item(ctx, job, item["idx"], action, user, via)
    return len(items)


def raise_timeouts(ctx: TickContext) -> None:
    """Runs still going when their `--timeout` falls due raise `timeout`, once each."""
    due = ctx.conn.execute(
        "SELECT r.id, r.job_id, r.work_index, r.status, j.timeout FROM job_runs AS r "
        "JOIN jobs AS j ON j.id = r.job_id WHERE r.timeout_at <= ? ORDER BY r.timeout_at, r.id",
        (ctx.now,),
    ).fetchall()
    for run in due:
        ctx.conn.execute("UPDATE job_runs SET timeout_at = NULL WHERE id = ?", (run["id"],))
        if run["status"] != "running":
            continue
        ctx.history(
            run["job_id"],
            "timeout",
            run_id=run["id"],
            reason=f"still running after its timeout of {run['timeout']:g} s",
            work_index=run["work_index"],
        )


def end_unstarted_items(ctx: TickContext, job_id: int, reason: str) -> None:
    """A job with items that ends before they run (an orphan) ends them with it."""
    _end_unstarted(ctx, job_id, ("PEND", "PSUSP"), "EXIT", reason)
