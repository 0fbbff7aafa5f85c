"""Cost of one job change with 1k, 10k and 100k pending jobs, incremental against full.

The tick re-evaluates only the rules whose leaves name a changed job (the rule_nodes index).
If that holds, the cost of one change depends on how many jobs wait on the changed job, not
on how many jobs are pending, so it should stay flat as the queue grows; a scheduler that
re-evaluates every pending rule per change grows linearly instead. Acceptance: the cost of
one change stays within 2x from 1k to 100k pending jobs.

Shape: N/10 held parents (PSUSP, so nothing runs) and N pending children, child c waiting on
`done(parent) && ended(another parent)`; every parent has 20 dependents at any N. Rows are
built through the real submit path (compile_condition, journal.append, accept_submit) with
the condition parsed once, because textX parsing 100k conditions would take a minute alone.
The full baseline only reads (no writes), which flatters it; it also serves as a check:
after the changes, every stored rule value must match it (the "stale" column).

The initial settle (one tick per submit row) has a time budget, so that a size whose setup
cannot finish is reported as not measured, with how far it got, instead of hanging the run.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from harness import settle

from engine import journal
from engine.conditions import And, JobPred, JobRef, Node, Not, Or, format_node
from engine.condparse import parse_condition
from engine.resolver import Resolver
from engine.rules import (
    Evaluation,
    compile_condition,
    evaluate,
    job_facts,
    leaf_jobs,
    load_rule,
)
from engine.store import open_db, write
from engine.submission import JobSpec, accept_submit
from engine.tick import run_until_caught_up

USER = "bench"
TEMPLATE = "done(1) && ended(2)"
BUILD_BATCH = 5000


@dataclass(frozen=True, slots=True)
class Result:
    pending: int
    change_ms: float = 0.0
    evaluations: float = 0.0
    full_ms: float = 0.0
    build_s: float = 0.0
    settle_s: float = 0.0
    stale: int = 0  # pending rules the incremental path left with a wrong value
    skipped: str | None = None  # why this size could not be measured


def with_ids(node: Node, ids: list[int]) -> Node:
    """The same condition naming these job ids, left to right."""
    if isinstance(node, JobPred):
        return replace(node, ref=JobRef(id=ids.pop(0)))
    if isinstance(node, Not):
        return Not(with_ids(node.operand, ids))
    if isinstance(node, And | Or):
        return type(node)(tuple(with_ids(operand, ids) for operand in node.operands))
    return node


def submit(conn: sqlite3.Connection, job_id: int, tmp: Path, tree: Node | None) -> None:
    """What Tock.submit does once the condition is parsed, minus the textX cost."""
    spec = JobSpec(
        id=job_id,
        name=f"job{job_id}",
        user=USER,
        command="true",
        cwd=str(tmp),
        stdout=str(tmp / "output" / f"{job_id}.out"),
        stderr=str(tmp / "output" / f"{job_id}.err"),
        condition=None if tree is None else format_node(tree),
        nodes=[] if tree is None else compile_condition(tree, Resolver(conn, USER)),
        hold=tree is None,  # the parents are held, so that nothing ever runs
    )
    now = time.time()
    row_id = journal.append(
        conn, time=now, kind=journal.SUBMIT, user=USER, job_id=job_id, payload=spec.payload()
    )
    accept_submit(conn, row_id, now, spec)


def build(conn: sqlite3.Connection, tmp: Path, children: int, template: Node) -> list[int]:
    parents = list(range(1, max(children // 10, 2) + 1))
    count = len(parents)
    with write(conn):
        for parent in parents:
            submit(conn, parent, tmp, None)
    for start in range(0, children, BUILD_BATCH):
        with write(conn):
            for c in range(start, min(start + BUILD_BATCH, children)):
                ids = [parents[c % count], parents[(c + 1 + c // count) % count]]
                submit(conn, count + 1 + c, tmp, with_ids(template, ids))
    return parents


def full_reevaluation(conn: sqlite3.Connection) -> tuple[float, int]:
    """What a non-incremental scheduler does per change: every pending rule from scratch.

    Also a check of the incremental path: (seconds, rules whose stored value disagrees).
    """
    values: dict[int, str] = {}
    started = time.perf_counter()
    with write(conn):
        pending = conn.execute("SELECT id FROM jobs WHERE state IN ('PEND', 'PSUSP')")
        for (job_id,) in pending.fetchall():
            root = load_rule(conn, job_id)
            if root is not None:
                values[job_id] = evaluate(root, Evaluation(job_facts(conn, leaf_jobs(root)))).value
    elapsed = time.perf_counter() - started
    stored = conn.execute("SELECT id, dep_value FROM jobs WHERE state IN ('PEND', 'PSUSP')")
    stale = sum(values.get(job_id) != value for job_id, value in stored)
    return elapsed, stale


def kill_and_tick(conn: sqlite3.Connection, parent: int) -> tuple[float, int]:
    """One change: the journal row is written first, only the tick that consumes it is timed."""
    with write(conn):
        journal.append(conn, time=time.time(), kind=journal.KILL, user=USER, job_id=parent)
    started = time.perf_counter()
    result = run_until_caught_up(conn)
    elapsed = time.perf_counter() - started
    if result.errors or result.transitions != 1:
        sys.exit(f"killing parent {parent} went wrong: {result}")
    return elapsed, result.evaluations


def measure(children: int, changes: int, template: Node, budget: float) -> Result:
    with tempfile.TemporaryDirectory(prefix="tock-bench-eval-") as tmp:
        conn = open_db(Path(tmp) / "tock.db")
        try:
            started = time.perf_counter()
            parents = build(conn, Path(tmp), children, template)
            build_s = time.perf_counter() - started

            settle_s, consumed, total = settle(conn, budget)
            if consumed < total:
                why = f"settle consumed {consumed} of {total} rows in {settle_s:.0f} s"
                return Result(children, build_s=build_s, settle_s=settle_s, skipped=why)
            states = conn.execute("SELECT DISTINCT state FROM jobs").fetchall()
            if {row[0] for row in states} != {"PEND", "PSUSP"}:
                sys.exit(f"after the initial settle jobs are {states}, not all pending")

            step = max(len(parents) // changes, 1)
            samples = [kill_and_tick(conn, parent) for parent in parents[::step][:changes]]
            full_s, stale = full_reevaluation(conn)
        finally:
            conn.close()
    return Result(
        pending=children,
        change_ms=statistics.median(s for s, _ in samples) * 1e3,
        evaluations=statistics.median(e for _, e in samples),
        full_ms=full_s * 1e3,
        build_s=build_s,
        settle_s=settle_s,
        stale=stale,
    )


def projected_skip(children: int, done: list[Result], budget: float) -> Result | None:
    """Skip a size whose settle cannot fit the budget even if it only grew linearly."""
    measured = [r for r in done if r.skipped is None]
    if not measured:
        return None
    last = measured[-1]
    projected = last.settle_s * children / last.pending
    if projected <= budget:
        return None
    why = f"settle projected >= {projected:.0f} s from the {last.pending} run"
    return Result(children, skipped=why)


def table_row(r: Result) -> str:
    if r.skipped is not None:
        return f"{r.pending:>12} not measured: {r.skipped}"
    return (
        f"{r.pending:>12} {r.change_ms:>14.3f} {r.evaluations:>12.0f} {r.full_ms:>15.1f} "
        f"{r.full_ms / r.change_ms:>8.0f}x {r.build_s:>8.2f} {r.settle_s:>9.2f} {r.stale:>6}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--jobs",
        type=int,
        nargs="+",
        default=[1_000, 10_000, 100_000],
        help="pending children per size (default 1000 10000 100000)",
    )
    parser.add_argument("--changes", type=int, default=20, help="changes timed per size")
    parser.add_argument("--settle-budget", type=float, default=60.0, help="seconds per settle")
    args = parser.parse_args()

    parsed = parse_condition(TEMPLATE)
    assert parsed.tree is not None, parsed.diagnostics
    results: list[Result] = []
    for n in args.jobs:
        skip = projected_skip(n, results, args.settle_budget)
        results.append(skip or measure(n, args.changes, parsed.tree, args.settle_budget))

    rule = "-" * 94
    print(
        f"{'pending jobs':>12} {'incr ms/change':>14} {'evals/change':>12} "
        f"{'full re-eval ms':>15} {'speedup':>9} {'build s':>8} {'settle s':>9} {'stale':>6}"
    )
    print(rule)
    for r in results:
        print(table_row(r))
    print(rule)

    measured = [r for r in results if r.skipped is None]
    if len(measured) < 2:
        print("INCOMPLETE: fewer than two sizes could be measured")
        return 1
    small, large = measured[0], measured[-1]
    ratio = large.change_ms / small.change_ms
    stale = sum(r.stale for r in measured)
    if stale:
        print(f"FAIL: {stale} pending rules hold a value the full re-evaluation disagrees with")
    if ratio > 2.0 or stale:
        verdict = "FAIL"
    elif large is not results[-1]:
        verdict = "INCOMPLETE"  # within 2x so far, but the largest size was not measured
    else:
        verdict = "PASS"
    print(
        f"{verdict}: one change costs {ratio:.2f}x as much at {large.pending} pending jobs "
        f"as at {small.pending} (limit 2x)"
    )
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
