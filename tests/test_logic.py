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
