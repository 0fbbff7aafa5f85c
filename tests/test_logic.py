"""Four-valued logic against reference §3.3 (openlava dep.c), and the job predicates."""

from __future__ import annotations

import itertools
from functools import reduce

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.logic import (
    INVALID,
    REJECT,
    JobFacts,
    T,
    Value,
    and2,
    count_predicate,
    fold,
    job_predicate,
    not1,
    or2,
)

F = Value.FALSE
ALL = [T, F, INVALID, REJECT]

# Written out cell by cell from the reference text, rows = left operand.
OR_TABLE = {
    (REJECT, T): REJECT, (REJECT, F): REJECT, (REJECT, INVALID): REJECT, (REJECT, REJECT): REJECT,
    (T, T): T, (T, F): T, (T, INVALID): T, (T, REJECT): T,
    (F, T): T, (F, F): F, (F, INVALID): F, (F, REJECT): REJECT,
    (INVALID, T): T, (INVALID, F): F, (INVALID, INVALID): INVALID, (INVALID, REJECT): REJECT,
}  # fmt: skip
AND_TABLE = {
    (INVALID, T): INVALID, (INVALID, F): INVALID, (INVALID, INVALID): INVALID,
    (INVALID, REJECT): INVALID,
    (REJECT, T): REJECT, (REJECT, F): REJECT, (REJECT, INVALID): REJECT, (REJECT, REJECT): REJECT,
    (F, T): F, (F, F): F, (F, INVALID): INVALID, (F, REJECT): REJECT,
    (T, T): T, (T, F): F, (T, INVALID): INVALID, (T, REJECT): REJECT,
}  # fmt: skip
NOT_TABLE = {REJECT: REJECT, F: T, INVALID: T, T: F}


@pytest.mark.parametrize(("left", "right"), list(itertools.product(ALL, ALL)))
def test_or_table(left: Value, right: Value) -> None:
    assert or2(left, right) is OR_TABLE[(left, right)]


@pytest.mark.parametrize(("left", "right"), list(itertools.product(ALL, ALL)))
def test_and_table(left: Value, right: Value) -> None:
    assert and2(left, right) is AND_TABLE[(left, right)]


@pytest.mark.parametrize("value", ALL)
def test_not_table(value: Value) -> None:
    assert not1(value) is NOT_TABLE[value]


values = st.sampled_from(ALL)


@given(st.lists(values, min_size=3, max_size=8), st.data())
def test_and_or_are_associative_so_n_ary_folds_are_well_defined(
    operands: list[Value], data: st.DataObject
) -> None:
    for op in (and2, or2):
        split = data.draw(st.integers(min_value=1, max_value=len(operands) - 1))
        grouped = op(fold(op, operands[:split]), fold(op, operands[split:]))
        assert grouped is reduce(op, operands)


@given(st.lists(st.booleans(), min_size=2, max_size=6))
def test_two_valued_inputs_give_boolean_logic(bits: list[bool]) -> None:
    as_values = [T if bit else F for bit in bits]
    assert (fold(and2, as_values) is T) == all(bits)
    assert (fold(or2, as_values) is T) == any(bits)
    assert (not1(as_values[0]) is T) == (not bits[0])


DONE = JobFacts("DONE", 0, ever_started=True)
EXITED = JobFacts("EXIT", 3, ever_started=True)
KILLED_PENDING = JobFacts("EXIT", None, ever_started=False)
RUNNING = JobFacts("RUN", None, ever_started=True)
PENDING = JobFacts("PEND")


@pytest.mark.parametrize(
    ("func", "facts", "expected"),
    [
        ("done", DONE, T),
        ("done", EXITED, INVALID),  # the example in the issue
        ("done", RUNNING, F),
        ("done", PENDING, F),
        ("exit", EXITED, T),
        ("exit", DONE, INVALID),
        ("exit", RUNNING, F),
        ("ended", DONE, T),
        ("ended", EXITED, T),
        ("ended", KILLED_PENDING, T),
        ("ended", PENDING, F),
        ("started", RUNNING, T),
        ("started", DONE, T),
        ("started", EXITED, T),
        ("started", KILLED_PENDING, INVALID),  # it can never start now
        ("started", PENDING, F),
        ("started", JobFacts("RUN", None, ever_started=False), F),  # dispatched, not started
        ("done", None, INVALID),  # the job's record is gone
    ],
)
def test_job_predicates(func: str, facts: JobFacts | None, expected: Value) -> None:
    assert job_predicate(func, facts) is expected


@pytest.mark.parametrize(
    ("op", "code", "expected"),
    [
        (">", 2, T),
        (">", 3, INVALID),
        (">=", 3, T),
        ("<", 3, INVALID),
        ("<=", 3, T),
        ("==", 3, T),
        ("!=", 3, INVALID),
        ("!=", 0, T),
    ],
)
def test_exit_code_comparisons_on_an_exited_job(op: str, code: int, expected: Value) -> None:
    assert job_predicate("exit", EXITED, op, code) is expected


def test_exit_code_comparison_waits_while_the_job_runs() -> None:
    assert job_predicate("exit", RUNNING, ">", 2) is F


def test_not_of_invalid_is_true() -> None:
    assert not1(job_predicate("done", EXITED)) is T


# --- num*(): counts of work items -------------------------------------------------------


def items(
    state: str,
    pend: int = 0,
    run: int = 0,
    done: int = 0,
    exit: int = 0,
    started: int = 0,
    dispatched: int = 0,
) -> JobFacts:
    """A job with work items; the total is the sum of the items by state."""
    return JobFacts(
        state,
        work_total=pend + run + done + exit,
        work_pend=pend,
        work_run=run,
        work_done=done,
        work_exit=exit,
        work_started=started,
        work_dispatched=dispatched,
    )


# Ten items: 4 pending, 2 running, 3 done, 1 exited; all 6 that left PEND started.
MIXED = items("RUN", pend=4, run=2, done=3, exit=1, started=6)
# Four items, one of which was killed while pending: it can never start.
KILLED_ITEM = items("PEND", pend=1, done=1, exit=2, started=2)
# Two items dispatched whose wrappers have not started the command yet.
DISPATCHED = items("RUN", run=2, dispatched=2)
# One item running, one killed before it started: they cannot all start any more.
RUNNING_AND_KILLED = items("RUN", run=1, exit=1, started=1)
FINISHED_MIXED = items("EXIT", done=9, exit=1, started=10)
ALL_DONE = items("DONE", done=5, started=5)
DISPATCHED_PLAIN = JobFacts("RUN", None, ever_started=False)

COUNT_CASES = [
    # Monotone counts while the job runs: TRUE, FALSE, or INVALID past the reachable bound.
    ("numdone", MIXED, ">=", 3, T),
    ("numdone", MIXED, ">=", 4, F),
    ("numdone", MIXED, ">=", 9, F),  # 3 done + 4 pending + 2 running may all succeed
    ("numdone", MIXED, ">", 9, F),
    ("numdone", MIXED, "==", 9, F),
    ("numdone", MIXED, "==", 10, F),
    ("numdone", MIXED, "==", None, F),  # unfinished: a retry may still change it
    ("numdone", MIXED, "==", 2, F),  # unfinished: a retry may still change it
    ("numdone", MIXED, "<", 3, F),
    ("numdone", MIXED, "<", 4, T),
    ("numdone", MIXED, "<=", 3, T),
    ("numdone", MIXED, "<=", 2, F),
    ("numdone", MIXED, "!=", 3, F),  # != is never invalid before the job finishes
    ("numdone", MIXED, "!=", 5, T),
    ("numexit", MIXED, "==", 0, F),
    ("numexit", MIXED, "==", 1, T),
    ("numexit", MIXED, ">=", 7, F),
    ("numexit", MIXED, ">", 7, F),
    ("numended", MIXED, "==", 4, T),
    ("numended", MIXED, "==", None, F),
    ("numended", MIXED, ">=", 10, F),
    ("numended", MIXED, ">", 10, F),
    ("numended", MIXED, "<", 4, F),
    ("numstart", MIXED, ">=", 6, T),
    ("numstart", MIXED, "==", None, F),
    ("numstart", MIXED, ">", 10, F),
    ("numstart", KILLED_ITEM, "==", None, F),  # unfinished: a retry may still change it
    ("numstart", KILLED_ITEM, ">=", 3, F),
    ("numstart", KILLED_ITEM, ">=", 4, F),
    ("numstart", DISPATCHED, ">=", 2, F),  # they may still start
    ("numstart", DISPATCHED, "==", None, F),
    ("numstart", RUNNING_AND_KILLED, "==", None, F),
    ("numstart", RUNNING_AND_KILLED, ">=", 1, T),
    # numrun and numpend go up and down: FALSE, whatever the number, until the job ends.
    ("numrun", MIXED, "==", 2, T),
    ("numrun", MIXED, ">", 2, F),
    ("numrun", MIXED, ">", 100, F),
    ("numrun", MIXED, "<", 0, F),
    ("numrun", MIXED, "==", None, F),
    ("numpend", MIXED, "==", 4, T),
    ("numpend", MIXED, "==", 0, F),
    ("numpend", MIXED, "<=", 3, F),
    # A finished job's counts are final: what does not hold now never will.
    ("numdone", FINISHED_MIXED, ">=", 9, T),
    ("numdone", FINISHED_MIXED, "==", None, INVALID),
    ("numdone", FINISHED_MIXED, "!=", 9, INVALID),
    ("numended", FINISHED_MIXED, "==", None, T),
    ("numexit", FINISHED_MIXED, "==", 0, INVALID),
    ("numrun", FINISHED_MIXED, "==", 0, T),
    ("numrun", FINISHED_MIXED, ">", 0, INVALID),
    ("numpend", FINISHED_MIXED, "!=", 0, INVALID),
    ("numdone", ALL_DONE, "==", None, T),
    ("numexit", ALL_DONE, "==", 0, T),
    ("numstart", ALL_DONE, "==", None, T),
    # A plain job is one item of its own state.
    ("numpend", PENDING, "==", 1, T),
    ("numpend", PENDING, "==", None, T),
    ("numdone", PENDING, "==", None, F),
    ("numdone", PENDING, ">=", 1, F),
    ("numdone", PENDING, ">=", 2, F),  # unfinished: a retry may still change it
    ("numstart", PENDING, ">=", 1, F),
    ("numrun", PENDING, "==", None, F),
    ("numrun", RUNNING, "==", 1, T),
    ("numstart", RUNNING, "==", None, T),
    ("numended", RUNNING, "==", None, F),
    ("numstart", DISPATCHED_PLAIN, ">=", 1, F),  # dispatched is not started, as for started()
    ("numrun", DISPATCHED_PLAIN, "==", 1, T),
    ("numdone", DONE, "==", None, T),
    ("numdone", DONE, "==", 1, T),
    ("numexit", DONE, ">=", 1, INVALID),
    ("numended", DONE, "==", None, T),
    ("numstart", DONE, "==", None, T),
    ("numexit", EXITED, "==", None, T),
    ("numdone", EXITED, "==", 0, T),
    ("numexit", KILLED_PENDING, "==", None, T),
    ("numstart", KILLED_PENDING, ">=", 1, INVALID),
    ("numstart", KILLED_PENDING, "==", 0, T),
    ("numdone", None, ">=", 0, INVALID),  # the job's record is gone
    ("numrun", None, "==", None, INVALID),
]


@pytest.mark.parametrize(("func", "facts", "op", "n", "expected"), COUNT_CASES)
def test_count_predicates(
    func: str, facts: JobFacts | None, op: str, n: int | None, expected: Value
) -> None:
    assert count_predicate(func, facts, op, n) is expected


def test_an_unknown_count_function_is_a_bug() -> None:
    with pytest.raises(ValueError, match="numfoo"):
        count_predicate("numfoo", MIXED, "==", 1)


# A model of a job's items, to check that INVALID is final: from any state, whatever the
# items do next, a leaf found INVALID never becomes TRUE. An item is pending ("P"),
# dispatched ("R"), running after it started ("S"), done ("D") or exited ("E", "K" for one
# killed before it started).
_NEXT = {"P": "RK", "R": "SK", "S": "DE", "D": "", "E": "", "K": ""}


def _facts_of(model: list[str]) -> JobFacts:
    unfinished = [item for item in model if item in "PRS"]
    if unfinished:
        state = "RUN" if any(item in "RS" for item in unfinished) else "PEND"
    else:
        state = "DONE" if all(item == "D" for item in model) else "EXIT"
    started = sum(item in "SDE" for item in model)
    if len(model) == 1:  # a plain job
        return JobFacts(state, ever_started=bool(started))
    return items(
        state,
        pend=model.count("P"),
        run=sum(item in "RS" for item in model),
        done=model.count("D"),
        exit=sum(item in "EK" for item in model),
        started=started,
        dispatched=model.count("R"),
    )


@given(
    st.lists(st.sampled_from("PRSDEK"), min_size=1, max_size=6),
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 1)), max_size=20),
    st.sampled_from(["numdone", "numexit", "numended", "numrun", "numpend", "numstart"]),
    st.sampled_from([">", ">=", "<", "<=", "==", "!="]),
    st.one_of(st.none(), st.integers(0, 7)),
)
def test_invalid_is_final_whatever_the_items_do_next(
    model: list[str], moves: list[tuple[int, int]], func: str, op: str, n: int | None
) -> None:
    op = "==" if n is None else op
    before = count_predicate(func, _facts_of(model), op, n)
    for index, choice in moves:
        item = index % len(model)
        options = _NEXT[model[item]]
        if options:
            model[item] = options[choice % len(options)]
        value = count_predicate(func, _facts_of(model), op, n)
        if before is INVALID:
            assert value is INVALID, f"{func}(j, {op} {n}) was INVALID, then {value} at {model}"
        before = value
    if all(item in "DEK" for item in model):
        assert before is not F, "a finished job's counts are final: TRUE or INVALID"
