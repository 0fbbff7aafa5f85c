"""Evaluating a file clause against observations, and the instant its value will next change
with the passing of time: pure functions, no file system, no clock of their own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from engine.fileexpr import (
    EPSILON,
    FileAnd,
    FileCompare,
    FileNode,
    FileNot,
    FileTest,
    atoms,
)
from engine.logic import COMPARE


@dataclass(frozen=True, slots=True)
class PathState:
    """A path as the caller last observed it: evaluation never touches the file system."""

    exists: bool
    size: int = 0
    mtime: float = 0.0
    changed: float = 0.0  # when existence, size or mtime was last seen to change


def _measure(atom: FileCompare, state: PathState | None, now: float) -> float:
    """A missing file measures 0 on every scale."""
    if state is None or not state.exists:
        return 0.0
    if atom.func == "size":
        return float(state.size)
    return now - (state.mtime if atom.func == "age" else state.changed)


def evaluate_file_expr(
    tree: FileNode, states: Mapping[str, PathState], armed: Collection[str], now: float
) -> bool:
    """Plain two-valued: a path missing from `states` does not exist."""
    if isinstance(tree, FileTest):
        if tree.func == "arrival":
            return tree.loc.path in armed
        state = states.get(tree.loc.path)
        return state is not None and state.exists
    if isinstance(tree, FileCompare):
        measured = _measure(tree, states.get(tree.loc.path), now)
        return COMPARE[tree.op](measured, tree.value)
    if isinstance(tree, FileNot):
        return not evaluate_file_expr(tree.operand, states, armed, now)
    if isinstance(tree, FileAnd):
        return all(evaluate_file_expr(item, states, armed, now) for item in tree.operands)
    return any(evaluate_file_expr(item, states, armed, now) for item in tree.operands)


def _first_from(x: float, reached: Callable[[float], bool]) -> float:
    """x, or the first instant after it found where `reached` (monotone in time) holds.

    Float by float at first, then in doubling strides: where a subtraction rounds, many
    instants give the same difference (timestamps near 0 against a distant base), and
    stepping through them one by one would never end. A stride may overshoot, which
    only makes a wake-up late, never early.
    """
    stride = math.ulp(x)
    while not reached(x):
        x, stride = x + stride, stride * 2
    return x


def _reach(base: float, value: float) -> float:
    """The first instant x with `x - base >= value`, as the evaluator computes it.

    Usually base + value, but rounding can leave that a float short (0.13 minutes is
    7.800000000000001 s), and a wake-up a float early finds nothing changed.
    """
    x = base + value
    if not math.isfinite(x):
        return x
    x = _first_from(x, lambda at: at - base >= value)
    for _ in range(4):  # back over the floats rounding may have skipped
        earlier = math.nextafter(x, -math.inf)
        if earlier - base < value:
            break
        x = earlier
    return x


def _flips(base: float, op: str, value: float, now: float) -> tuple[float, ...]:
    """The instants at which `(x - base) op value` changes as x passes them."""
    reach = _reach(base, value)
    if op in (">=", "<"):
        return (reach,)
    if reach - base != value:  # no instant sits on the value: == never holds
        return (reach,) if op in (">", "<=") else ()
    if now - base > value:  # the value is behind us: nothing left to change
        return ()
    # EPSILON can be below a float's step far from the epoch, hence the search.
    past = _first_from(reach + EPSILON, lambda at: at - base > value)
    return (past,) if op in (">", "<=") else (reach, past)


def next_change(tree: FileNode, states: Mapping[str, PathState], now: float) -> float | None:
    """The first instant after `now` at which time alone changes an age() or stable()
    comparison of an existing file, with the states as they are; None when none will.

    The whole expression may keep its value then; finding that out costs an evaluation,
    which is what the caller does when it wakes.
    """
    upcoming: float | None = None
    for atom in atoms(tree):
        if not isinstance(atom, FileCompare) or atom.func == "size":
            continue
        state = states.get(atom.loc.path)
        if state is None or not state.exists:
            continue
        base = state.mtime if atom.func == "age" else state.changed
        for instant in _flips(base, atom.op, atom.value, now):
            if instant > now and (upcoming is None or instant < upcoming):
                upcoming = instant
    return upcoming
