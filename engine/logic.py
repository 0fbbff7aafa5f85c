"""Four-valued evaluation of dependency conditions (LSF, as openlava's dep.c defines it).

TRUE and FALSE are the usual; INVALID means the condition can never be satisfied (done(X)
after X exited); REJECT means an event daemon rejected the event. The binary tables are
not symmetric: they are left-to-right folds, and both are associative, so an n-ary AND or
OR folds its operands from the left. All of it is pure: facts in, a value out.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum


class Value(Enum):
    TRUE = "true"
    FALSE = "false"
    INVALID = "invalid"
    REJECT = "reject"


T, F, INVALID, REJECT = Value.TRUE, Value.FALSE, Value.INVALID, Value.REJECT


def or2(left: Value, right: Value) -> Value:
    if left is REJECT:
        return REJECT
    if left is T:
        return T
    if left is F:
        return F if right is INVALID else right
    return right  # left is INVALID


def and2(left: Value, right: Value) -> Value:
    if left is INVALID or left is REJECT:
        return left
    if left is F:
        return right if right is INVALID or right is REJECT else F
    return right  # left is TRUE


def not1(value: Value) -> Value:
    if value is REJECT:
        return REJECT
    if value is T:
        return F
    return T  # FALSE or INVALID


def fold(op: Callable[[Value, Value], Value], values: Iterable[Value]) -> Value:
    iterator = iter(values)
    result = next(iterator)
    for value in iterator:
        result = op(result, value)
    return result


# --- job predicates ---------------------------------------------------------------------

FINISHED = frozenset({"DONE", "EXIT"})
STARTED = frozenset({"RUN", "DONE", "EXIT"})

COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True, slots=True)
class JobFacts:
    """What a predicate may know about the job it names.

    For a repetitive job, the `last_*` fields describe its latest run: such a job goes back
    to PEND after each run, so its state says nothing about how that run went.
    """

    state: str
    exit_code: int | None = None
    ever_started: bool = False
    repetitive: bool = False
    last_ok: bool | None = None
    last_start: float | None = None
    last_end: float | None = None
    # The jobs.work_* counters: all zero for a plain job, which counts as one item of its
    # own state (work_counts).
    work_total: int = 0
    work_pend: int = 0
    work_run: int = 0
    work_done: int = 0
    work_exit: int = 0
    work_started: int = 0
    # RUN items whose command has not started yet: they may still start, or never will.
    work_dispatched: int = 0


@dataclass(frozen=True, slots=True)
class CalendarFacts:
    """A calendar as one waiting job sees it.

    `owed`: a time event this job may still use (at most one run per event) is here;
    `active`: some event of the calendar covers now, used or not (what `!calendar(x)` asks);
    `gone`: why the calendar can no longer fire for anyone (deleted), else None.
    """

    active: bool
    owed: bool
    gone: str | None = None
    label: str = ""  # name@owner, for pending reasons
    next_start: float | None = None
    zone: str = "UTC"  # the calendar's, to show times in


@dataclass(frozen=True, slots=True)
class EventFacts:
    """An external event (a file clause, a user event) as one waiting job sees it.

    `holds`: a level event is active, or an arrival's firing is still owed to this job;
    `fresh`: it holds for something new (a firing), which can trigger a repetitive job;
    `blocked`: why the event can never hold for anyone (invalid), else None.
    """

    holds: bool
    fresh: bool = False
    blocked: str | None = None
    label: str = ""
    rejected: bool = False  # a user event's last post was REJECT


def event_predicate(facts: EventFacts | None) -> Value:
    if facts is not None and facts.rejected:
        return REJECT
    if facts is None or facts.blocked is not None:
        return F
    return T if facts.holds else F


def calendar_predicate(facts: CalendarFacts | None, negated: bool) -> Value:
    if facts is None or facts.gone is not None:
        return F
    if negated:
        return T if facts.active else F
    return T if facts.owed else F


def _repetitive_predicate(
    func: str, facts: JobFacts, op: str | None, code: int | None, since: float | None
) -> Value:
    """LSF's repetitive rule: the parent must have completed (or, for started(), started)
    since the child's last run ended; a parent back in PEND counts as its last run."""
    after = float("-inf") if since is None else since
    if func == "started":
        holds = facts.last_start is not None and facts.last_start > after
    else:
        completed = facts.last_end is not None and facts.last_end > after
        if func == "ended":
            holds = completed
        elif func == "done":
            holds = completed and facts.last_ok is True
        elif func == "exit":
            holds = completed and facts.last_ok is False
            if holds and code is not None:
                holds = facts.exit_code is not None and COMPARE[op or "=="](facts.exit_code, code)
        else:
            raise ValueError(f"unknown job predicate {func!r}")
    if holds:
        return T
    return INVALID if facts.state in FINISHED else F


def job_predicate(
    func: str,
    facts: JobFacts | None,
    op: str | None = None,
    code: int | None = None,
    since: float | None = None,
) -> Value:
    """LSF's leaf rule: TRUE if the test holds; INVALID if the job can no longer get there.

    `facts` is None when the job no longer exists (its record was cleaned), which is INVALID.
    `since` is when the waiting job's own last run ended (None if it never ran): for a
    repetitive parent, only what happened after it counts.
    """
    if facts is None:
        return INVALID
    if facts.repetitive:
        return _repetitive_predicate(func, facts, op, code, since)
    state = facts.state
    if func == "started":
        # Dispatched is not started: the run may still be cancelled before its wrapper
        # starts the command, and then started() can never hold.
        if state in STARTED and facts.ever_started:
            return T
        return INVALID if state in FINISHED else F
    if func == "ended":
        return T if state in FINISHED else F
    if func == "done":
        if state == "DONE":
            return T
        return INVALID if state == "EXIT" else F
    if func == "exit":
        if state == "EXIT":
            if code is None:
                return T
            if facts.exit_code is not None and COMPARE[op or "=="](facts.exit_code, code):
                return T
            return INVALID
        return INVALID if state == "DONE" else F
    raise ValueError(f"unknown job predicate {func!r}")


# --- work item counts -------------------------------------------------------------------


# Counts that never go down: an item that has ended or started stays so.
@dataclass(frozen=True, slots=True)
class WorkCounts:
    total: int
    pend: int  # PEND or PSUSP
    run: int
    done: int
    exit: int
    started: int  # ever started running
    dispatched: int  # RUN, but the command has not started yet


def work_counts(facts: JobFacts) -> WorkCounts:
    """The job's items by state; a plain job is one item, so that num*() also works on the
    jobs a wildcard matches whether or not they have items."""
    if facts.work_total > 0:
        return WorkCounts(
            facts.work_total,
            facts.work_pend,
            facts.work_run,
            facts.work_done,
            facts.work_exit,
            facts.work_started,
            facts.work_dispatched,
        )
    state = facts.state
    return WorkCounts(
        total=1,
        pend=int(state in ("PEND", "PSUSP")),
        run=int(state == "RUN"),
        done=int(state == "DONE"),
        exit=int(state == "EXIT"),
        started=int(facts.ever_started),
        dispatched=int(state == "RUN" and not facts.ever_started),
    )


def _count_of(func: str, counts: WorkCounts) -> int:
    if func == "numdone":
        return counts.done
    if func == "numexit":
        return counts.exit
    if func == "numended":
        return counts.done + counts.exit
    if func == "numrun":
        return counts.run
    if func == "numpend":
        return counts.pend
    if func == "numstart":
        return counts.started
    raise ValueError(f"unknown count function {func!r}")


def count_predicate(func: str, facts: JobFacts | None, op: str, n: int | None) -> Value:
    """LSF's num*(job, op N) and num*(job, *) (`n` None: the count equals the total).

    TRUE while the comparison holds; INVALID once the job has finished (DONE or EXIT: its
    counts are final) and it does not; FALSE otherwise. A job whose record is gone is
    INVALID, as for job_predicate.
    """
    if facts is None:
        return INVALID
    counts = work_counts(facts)
    if n is None:
        op, n = "==", counts.total
    count = _count_of(func, counts)
    if COMPARE[op](count, n):
        return T
    # Only a finished job's counts are final: while it runs, a retried item (Qube's
    # retry-work-self after a failure) takes its count back down, so an early INVALID
    # could orphan a dependent that would have run.
    return INVALID if facts.state in FINISHED else F
