"""Incremental re-evaluation: a changed job touches only the rules whose leaves name it.

`settle()` runs after every journal row the tick applies. It follows changes to their
dependents through the rule_nodes index (never a scan of all pending jobs), terminates
orphans (at once with -ti, after `orphan_grace_period` otherwise; terminations cascade),
and finally fills free job slots. It loops until nothing more changes.
"""

from __future__ import annotations

import traceback

from engine.file_events import advance_file_events, file_facts, use_file_events
from engine.logic import Value
from engine.rules import Evaluation, evaluate, job_facts, leaf_events, leaf_jobs, load_rule
from engine.timeevents import (
    advance_calendars,
    calendar_facts,
    next_event_note,
    use_time_events,
)
from engine.transitions import PENDING_STATES, TickContext
from engine.user_events import has_user_events, use_user_events, user_facts
from engine.work import dispatch_items, end_unstarted_items, first_attribute, raise_timeouts

REASONS = {
    Value.FALSE: "Job dependency condition not satisfied",
    Value.INVALID: "Dependency condition invalid or never satisfied",
    Value.REJECT: "Event is rejected by its event daemon",
}
HELD_REASON = "Job was held by the user while pending"
SLOT_REASON = "Waiting for a free job slot (max_running reached)"
ORPHAN_REASON = "orphan: dependency condition invalid or never satisfied"
REPEAT_REASON = "Repetitive job: waiting for a new time event or a new run of a job it depends on"


def pending_reason(state: str, value: Value, blocked: str | None = None) -> str | None:
    reasons = []
    if state == "PSUSP":
        reasons.append(HELD_REASON)
    if blocked is not None:
        reasons.append(blocked)
    elif value is not Value.TRUE:
        reasons.append(REASONS[value])
    elif state == "PEND":
        reasons.append(SLOT_REASON)
    return "; ".join(reasons) or None


def dependents(ctx: TickContext, job_id: int) -> list[int]:
    rows = ctx.conn.execute(
        "SELECT DISTINCT r.job_id FROM rule_nodes AS n JOIN rules AS r ON r.id = n.rule_id "
        "WHERE n.ref_job_id = ?",
        (job_id,),
    )
    return [row[0] for row in rows]


def terminate_orphan(ctx: TickContext, job_id: int, state: str) -> None:
    end_unstarted_items(ctx, job_id, ORPHAN_REASON)
    ctx.transition(
        job_id,
        state,
        "EXIT",
        "orphan",
        reason=ORPHAN_REASON,
        exit_reason=ORPHAN_REASON,
        pending_reason=None,
    )


def evaluate_job(ctx: TickContext, job_id: int) -> None:
    job = ctx.conn.execute(
        "SELECT j.state, j.dep_value, j.ready, j.pending_reason, j.terminate_orphan, "
        "j.invalid_since, j.journal_id, j.repetitive, j.catchup, j.run_count, j.last_end, "
        "r.value AS rule_value FROM jobs AS j "
        "LEFT JOIN rules AS r ON r.job_id = j.id WHERE j.id = ?",
        (job_id,),
    ).fetchone()
    if job is None or job["state"] not in PENDING_STATES:
        return
    if job["journal_id"] > ctx.journal_id:
        # Accepted by the API but not yet consumed by the tick: until its submit row is
        # reached, the job does not exist for decisions (as on a replay).
        return
    ctx.evaluations += 1
    root = load_rule(ctx.conn, job_id)
    value, blocked = Value.TRUE, None
    if root is not None:
        calendars, events = {}, {}
        if leaf_events(root):
            calendars = calendar_facts(ctx.conn, job_id, job["catchup"], ctx.now)
            events = file_facts(ctx.conn, job_id) | user_facts(ctx.conn, job_id)
        jobs = job_facts(ctx.conn, leaf_jobs(root))
        facts = Evaluation(jobs, calendars, events, since=job["last_end"])
        value = evaluate(root, facts)
        gone = sorted(fact.gone for fact in calendars.values() if fact.gone is not None)
        gone += sorted(fact.blocked for fact in events.values() if fact.blocked is not None)
        if gone:
            blocked = "; ".join(gone)
        elif value is Value.TRUE and job["repetitive"] and job["run_count"] and not facts.triggers:
            blocked = REPEAT_REASON
        note = next_event_note(calendars) if value is not Value.TRUE or blocked else None
        if note is not None:
            blocked = f"{blocked or REASONS[value]}; {note}"
    if value is Value.INVALID and job["terminate_orphan"]:
        terminate_orphan(ctx, job_id, job["state"])
        return
    # An orphan's clock starts when its condition first became invalid; the grace period is
    # applied when deciding (expire_orphans), so a changed grace period applies at once.
    since = None
    if value is Value.INVALID:
        since = job["invalid_since"] if job["invalid_since"] is not None else ctx.now
    update = {
        "dep_value": value.value if root is not None else None,
        "ready": int(value is Value.TRUE and blocked is None),
        "pending_reason": pending_reason(job["state"], value, blocked),
        "invalid_since": since,
    }
    if any(job[name] != wanted for name, wanted in update.items()):
        sets = ", ".join(f"{name} = ?" for name in update)
        ctx.conn.execute(f"UPDATE jobs SET {sets} WHERE id = ?", (*update.values(), job_id))
    if root is not None and job["rule_value"] != value.value:
        ctx.conn.execute(
            "UPDATE rules SET value = ?, evaluated_at = ? WHERE job_id = ?",
            (value.value, ctx.now, job_id),
        )


UNEVALUATED_REASON = "Dependency condition could not be evaluated (see tick_errors)"


def evaluate_isolated(ctx: TickContext, job_id: int) -> None:
    """Evaluate one job in a savepoint of its own: a rule that cannot be evaluated (a bug)
    is recorded against that job and never undoes the input that triggered it."""
    ctx.conn.execute("SAVEPOINT evaluate_job")
    try:
        evaluate_job(ctx, job_id)
    except Exception:
        ctx.conn.execute("ROLLBACK TO evaluate_job")
        ctx.conn.execute(
            "INSERT INTO tick_errors (time, journal_id, message) VALUES (?, ?, ?)",
            (ctx.now, ctx.journal_id, f"evaluating job {job_id}:\n{traceback.format_exc(limit=6)}"),
        )
        ctx.conn.execute(
            "UPDATE jobs SET ready = 0, pending_reason = ? WHERE id = ?",
            (UNEVALUATED_REASON, job_id),
        )
    ctx.conn.execute("RELEASE evaluate_job")


def expire_orphans(ctx: TickContext) -> None:
    if ctx.orphan_grace is None:
        return
    rows = ctx.conn.execute(
        "SELECT id, state FROM jobs WHERE invalid_since <= ?", (ctx.now - ctx.orphan_grace,)
    ).fetchall()
    for row in rows:
        terminate_orphan(ctx, row["id"], row["state"])


def schedule(ctx: TickContext) -> None:
    """Fill free job slots, oldest job first: ready pending jobs start, and running jobs
    with work items start more of their items as their own `%N` allows."""
    running = ctx.conn.execute(
        "SELECT count(*) FROM job_runs WHERE status IN ('dispatched', 'running')"
    ).fetchone()[0]
    free = ctx.max_running - running
    if free <= 0:
        return
    candidates = ctx.conn.execute(
        "SELECT id, state, run_count, repetitive, catchup, work_total FROM jobs "
        "WHERE state = 'PEND' AND ready = 1 "
        "UNION ALL SELECT id, state, run_count, repetitive, catchup, work_total FROM jobs "
        "WHERE state = 'RUN' AND work_total > 0 AND work_run < coalesce(work_limit, work_total) "
        "AND EXISTS (SELECT 1 FROM work_items AS w WHERE w.job_id = jobs.id AND w.state = 'PEND') "
        "ORDER BY id LIMIT ?",
        (free,),
    ).fetchall()
    for job in candidates:
        if free <= 0:
            return
        if job["state"] == "RUN":
            free -= dispatch_items(ctx, job["id"], free, first_attribute(ctx.conn, job["id"]))
            continue
        if has_user_events(ctx.conn, job["id"]):
            # A pulse taken by a job dispatched just before may have been this one's.
            evaluate_isolated(ctx, job["id"])
            if not ctx.conn.execute("SELECT ready FROM jobs WHERE id = ?", (job["id"],)).fetchone()[
                0
            ]:
                continue
        note = use_time_events(ctx, job["id"], job["catchup"]) if job["repetitive"] else None
        use_file_events(ctx, job["id"])
        attribute = use_user_events(ctx, job["id"])
        if job["work_total"]:
            ctx.transition(job["id"], "PEND", "RUN", "dispatched", reason=note, pending_reason=None)
            free -= dispatch_items(ctx, job["id"], free, attribute)
            continue
        run_no = job["run_count"] + 1
        run_id = ctx.conn.execute(
            "INSERT INTO job_runs (job_id, run_no, status, dispatch_time, event_attrib) "
            "VALUES (?, ?, 'dispatched', ?, ?)",
            (job["id"], run_no, ctx.now, attribute),
        ).lastrowid
        assert run_id is not None
        ctx.transition(
            job["id"],
            "PEND",
            "RUN",
            "dispatched",
            run_id=run_id,
            reason=note,
            current_run=run_id,
            run_count=run_no,
            pending_reason=None,
        )
        ctx.action("start", job["id"], run_id, {})
        free -= 1


def settle(ctx: TickContext) -> None:
    """Cross due calendar boundaries, then propagate changes until the state is stable,
    then fill free slots; repeat."""
    advance_calendars(ctx)
    advance_file_events(ctx)
    raise_timeouts(ctx)
    for _ in range(1_000_000):
        while ctx.changed or ctx.to_evaluate:
            changed, ctx.changed = ctx.changed, set()
            for job_id in changed:
                ctx.to_evaluate.update(dependents(ctx, job_id))
            pending, ctx.to_evaluate = sorted(ctx.to_evaluate), set()
            for job_id in pending:
                evaluate_isolated(ctx, job_id)
        expire_orphans(ctx)
        if ctx.changed:
            continue
        schedule(ctx)
        if not ctx.changed:
            return
    raise RuntimeError("settle() did not converge")
