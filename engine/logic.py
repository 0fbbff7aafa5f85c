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

_COMPARE: dict[str, Callable[[int, int], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True, slots=True)
class JobFacts:
    """What a predicate may know about the job it names."""

    state: str
    exit_code: int | None = None
    ever_started: bool = False


def job_predicate(
    func: str, facts: JobFacts | None, op: str | None = None, code: int | None = None
) -> Value:
    """LSF's leaf rule: TRUE if the test holds; INVALID if the job can no longer get there.

    `facts` is None when the job no longer exists (its record was cleaned), which is INVALID.
    """
    if facts is None:
        return INVALID
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
            if facts.exit_code is not None and _COMPARE[op or "=="](facts.exit_code, code):
                return T
            return INVALID
        return INVALID if state == "DONE" else F
    raise ValueError(f"unknown job predicate {func!r}")
