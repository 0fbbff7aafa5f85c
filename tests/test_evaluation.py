"""Incremental evaluation must agree with evaluating everything from scratch.

A Hypothesis state machine submits jobs with random conditions over earlier jobs, runs,
fails, kills and releases them in random orders, and after every step compares the state
the tick maintained incrementally with a full re-evaluation, and checks the scheduler's
invariants.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from conftest import Engine
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from engine.api import Tock
from engine.clock import ManualClock
from engine.conditions import And, JobPred, JobRef, Node, Not, Or, format_node
from engine.config import Config
from engine.logic import Value
from engine.rules import Evaluation, evaluate, job_facts, leaf_jobs, load_rule

MAX_RUNNING = 3


def conditions(count: int) -> st.SearchStrategy[Node]:
    """Conditions over the jobs named j0 .. j{count-1}, mostly the last few, so that jobs
    gather several dependents (the case incremental evaluation can get wrong)."""
    index = st.one_of(st.integers(max(0, count - 3), count - 1), st.integers(0, count - 1))
    refs = st.one_of(
        index.map(lambda i: JobRef(name=f"j{i}")),
        index.map(lambda i: JobRef(id=i + 1)),
        index.map(lambda i: JobRef(name=f"j{i}", wildcard=True)),
    )
    leaves = st.one_of(
        st.builds(JobPred, st.sampled_from(["started", "done", "exit", "ended"]), refs),
        st.builds(
            lambda r, op, code: JobPred("exit", r, op, code),
            refs,
            st.sampled_from([">", "<=", "==", "!="]),
            st.integers(0, 3),
        ),
    )
    return st.recursive(
        leaves,
        lambda kids: st.one_of(
            st.builds(Not, kids),
            st.lists(kids, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
            st.lists(kids, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
        ),
        max_leaves=5,
    )


class Scheduling(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="tock-stateful-"))
        self.clock = ManualClock()
        self.api = Tock(self.directory / "t.db", clock=self.clock, user="u", config=Config())
        self.engine = Engine(self.api, self.clock)
        self.engine.daemon_start(max_running=MAX_RUNNING)
        self.engine.tick()
        self.ids: list[int] = []

    def teardown(self) -> None:
        self.api.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def in_state(self, *states: str) -> list[int]:
        marks = ",".join("?" * len(states))
        rows = self.api.conn.execute(
            f"SELECT id FROM jobs WHERE state IN ({marks}) ORDER BY id", states
        )
        return [row[0] for row in rows]

    @rule(
        data=st.data(),
        hold=st.sampled_from([True, True, False]),
        orphan=st.booleans(),
        with_condition=st.sampled_from([True, True, False]),
    )
    def submit(self, data: st.DataObject, hold: bool, orphan: bool, with_condition: bool) -> None:
        condition = None
        if self.ids and with_condition:
            condition = format_node(data.draw(conditions(len(self.ids))))
        job = self.api.submit(
            "true",
            name=f"j{len(self.ids)}",
            condition=condition,
            hold=hold,
            terminate_orphan=orphan and condition is not None,
            env={},
        )
        self.ids.append(job)
        self.clock.advance(1)
        self.engine.tick()

    @precondition(lambda self: bool(self.in_state("RUN")))
    @rule(data=st.data(), code=st.integers(0, 3))
    def a_running_job_ends(self, data: st.DataObject, code: int) -> None:
        job = data.draw(st.sampled_from(self.in_state("RUN")))
        self.clock.advance(1)
        self.engine.run_to_end(job, exit_code=code)

    @precondition(lambda self: bool(self.in_state("PSUSP")))
    @rule(data=st.data())
    def a_held_job_is_released(self, data: st.DataObject) -> None:
        self.api.resume(data.draw(st.sampled_from(self.in_state("PSUSP"))))
        self.engine.tick()

    @precondition(lambda self: bool(self.in_state("PEND", "PSUSP")))
    @rule(data=st.data())
    def a_waiting_job_is_killed(self, data: st.DataObject) -> None:
        self.api.kill(data.draw(st.sampled_from(self.in_state("PEND", "PSUSP"))))
        self.engine.tick()

    @invariant()
    def incremental_state_equals_a_full_evaluation(self) -> None:
        conn = self.api.conn
        for job in conn.execute(
            "SELECT id, dep_value, ready FROM jobs WHERE state IN ('PEND', 'PSUSP')"
        ).fetchall():
            root = load_rule(conn, job["id"])
            if root is None:
                fresh = Value.TRUE
                assert job["dep_value"] is None
            else:
                fresh = evaluate(root, Evaluation(job_facts(conn, leaf_jobs(root))))
                assert job["dep_value"] == fresh.value, f"job {job['id']}"
            assert job["ready"] == int(fresh is Value.TRUE), f"job {job['id']}"

    @invariant()
    def slots_are_used_and_never_exceeded(self) -> None:
        running = len(self.in_state("RUN"))
        assert running <= MAX_RUNNING
        ready = self.api.conn.execute(
            "SELECT count(*) FROM jobs WHERE state = 'PEND' AND ready = 1"
        ).fetchone()[0]
        assert running == MAX_RUNNING or ready == 0

    @invariant()
    def no_job_runs_twice_and_no_ti_orphan_waits(self) -> None:
        conn = self.api.conn
        assert conn.execute("SELECT max(run_count) FROM jobs").fetchone()[0] in (None, 0, 1)
        waiting_orphans = conn.execute(
            "SELECT count(*) FROM jobs WHERE terminate_orphan = 1 AND dep_value = 'invalid' "
            "AND state IN ('PEND', 'PSUSP')"
        ).fetchone()[0]
        assert waiting_orphans == 0


Scheduling.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestScheduling = Scheduling.TestCase
