"""Incremental evaluation must agree with evaluating everything from scratch.

A Hypothesis state machine submits jobs with random conditions over earlier jobs, runs,
fails, kills and releases them in random orders, and after every step compares the state
the tick maintained incrementally with a full re-evaluation, and checks the scheduler's
invariants. Below it, num*() conditions over work items, whose counters are set with SQL
as the scheduler's side would set them.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import Engine, replay_journal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from engine.api import Tock
from engine.clock import ManualClock
from engine.conditions import (
    COUNT_FUNCS,
    And,
    CountPred,
    JobPred,
    JobRef,
    Node,
    Not,
    Or,
    format_node,
)
from engine.config import Config
from engine.errors import TockError
from engine.evaluation import settle
from engine.logic import Value
from engine.rules import Evaluation, evaluate, job_facts, leaf_jobs, load_rule
from engine.store import write
from engine.transitions import TickContext

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
        st.builds(
            CountPred,
            st.sampled_from(COUNT_FUNCS),
            refs,
            st.sampled_from([">", ">=", "<", "<=", "==", "!="]),
            st.integers(0, 2),
        ),
        st.builds(CountPred, st.sampled_from(COUNT_FUNCS), refs),  # num*(j, *)
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


# --- num*(): counts of work items ---------------------------------------------------------


def add_items(engine: Engine, job_id: int, *states: str) -> None:
    """Work items 1..n of a job in these states; the triggers of migration 006 count them."""
    with write(engine.conn):
        engine.conn.executemany(
            "INSERT INTO work_items (job_id, idx, state, started) VALUES (?, ?, ?, ?)",
            [
                (job_id, idx, state, int(state in ("RUN", "DONE", "EXIT")))
                for idx, state in enumerate(states, start=1)
            ],
        )


def items_change(
    engine: Engine,
    job_id: int,
    state: str,
    *indexes: int,
    started: bool | None = None,
    job_state: str | None = None,
) -> None:
    """What the scheduler does when items of a job change state: in a tick's transaction,
    update them (the triggers keep the counters), mark the job changed, and settle.
    `started` False: dispatched items whose command has not started yet; `job_state`: the
    job's own new state (the last item ended)."""
    if started is None:
        started = state != "PEND"
    conn = engine.conn
    with write(conn):
        tick = conn.execute("SELECT * FROM tick_state").fetchone()
        ctx = TickContext(
            conn,
            now=tick["now"],
            journal_id=tick["journal_cursor"],
            max_running=tick["max_running"],
            orphan_grace=tick["orphan_grace"],
        )
        conn.executemany(
            "UPDATE work_items SET state = ?, started = started OR ? WHERE job_id = ? AND idx = ?",
            [(state, int(started), job_id, idx) for idx in indexes],
        )
        if job_state is not None:
            conn.execute("UPDATE jobs SET state = ? WHERE id = ?", (job_state, job_id))
        ctx.changed.add(job_id)
        settle(ctx)


def work(**counts: int) -> dict[str, int]:
    """The counts `tock why --json` shows for a count leaf; those not given are 0."""
    names = ("total", "pend", "run", "done", "exit", "started", "dispatched")
    return {name: counts.get(name, 0) for name in names}


def dep(engine: Engine, job_id: int) -> tuple[str | None, int]:
    row = engine.conn.execute(
        "SELECT dep_value, ready FROM jobs WHERE id = ?", (job_id,)
    ).fetchone()
    return row[0], row[1]


@pytest.fixture
def render(engine: Engine) -> int:
    """A held job with four pending work items: held, so that nothing but the test moves
    its items."""
    job = engine.api.submit("true", name="render", hold=True, env={})
    engine.tick()
    add_items(engine, job, "PEND", "PEND", "PEND", "PEND")
    return job


def test_counts_follow_the_work_item_counters_and_re_evaluate_dependents(
    engine: Engine, render: int
) -> None:
    def waiting(condition: str) -> int:
        return engine.api.submit("true", condition=condition, hold=True, env={})

    half = waiting("numdone(render, >= 2)")
    clean = waiting("numexit(render, == 0) && numended(render, *)")
    busy = waiting("numrun(render, > 0)")
    engine.tick()
    assert dep(engine, half) == ("false", 0)
    assert dep(engine, clean) == ("false", 0)
    assert dep(engine, busy) == ("false", 0)

    items_change(engine, render, "RUN", 1, 2)
    assert dep(engine, busy) == ("true", 1)  # a held job is ready, only not dispatched
    assert dep(engine, half) == ("false", 0)

    items_change(engine, render, "DONE", 1, 2)
    assert dep(engine, half) == ("true", 1)
    assert dep(engine, busy) == ("false", 0)  # numrun goes down again

    items_change(engine, render, "EXIT", 3)
    assert dep(engine, clean) == ("false", 0)  # a retry of item 3 may still undo the exit
    assert dep(engine, half) == ("true", 1)
    items_change(engine, render, "DONE", 4, job_state="EXIT")
    assert dep(engine, clean) == ("invalid", 0)  # finished: the counts are final
    reason = engine.api.job(clean).pending_reason
    assert reason is not None and "Dependency condition invalid or never satisfied" in reason


def test_star_means_every_item_and_a_finished_job_short_of_it_makes_an_orphan(
    engine: Engine, render: int
) -> None:
    every = engine.api.submit("true", condition="numdone(render, *)", terminate_orphan=True, env={})
    some = engine.api.submit("true", condition="numended(render, >= 3)", hold=True, env={})
    engine.tick()
    assert engine.state(every) == "PEND"
    items_change(engine, render, "DONE", 1, 2)
    assert engine.state(every) == "PEND"
    items_change(engine, render, "EXIT", 4)  # done can now reach 3 of 4, unless retried
    assert engine.state(every) == "PEND"
    items_change(engine, render, "DONE", 3, job_state="EXIT")
    assert engine.state(every) == "EXIT"
    assert "orphan" in (engine.api.job(every).exit_reason or "")
    assert dep(engine, some) == ("true", 1)


def test_dispatched_items_may_still_start(engine: Engine, render: int) -> None:
    every = engine.api.submit(
        "true", condition="numstart(render, *)", terminate_orphan=True, hold=True, env={}
    )
    engine.tick()
    items_change(engine, render, "RUN", 1, 2, started=False)
    assert job_facts(engine.conn, [render])[render].work_dispatched == 2
    assert dep(engine, every) == ("false", 0)  # not an orphan: both may still start
    items_change(engine, render, "RUN", 1, 2, started=True)
    assert job_facts(engine.conn, [render])[render].work_dispatched == 0
    assert dep(engine, every) == ("false", 0)
    items_change(engine, render, "EXIT", 3, started=False)  # killed before it started
    assert engine.state(every) == "PSUSP"  # a retry could still start it
    items_change(engine, render, "DONE", 1, 2, 4, job_state="EXIT")
    assert engine.state(every) == "EXIT"
    assert "orphan" in (engine.api.job(every).exit_reason or "")


def test_a_plain_job_counts_as_one_item_of_its_own_state(engine: Engine) -> None:
    plain = engine.api.submit("true", name="plain", env={})
    started = engine.api.submit("true", condition="numstart(plain, *)", hold=True, env={})
    running = engine.api.submit("true", condition="numrun(plain, == 1)", hold=True, env={})
    done = engine.api.submit("true", condition="numdone(plain, == 1)", hold=True, env={})
    failed = engine.api.submit("true", condition="numexit(plain, >= 1)", hold=True, env={})
    engine.tick()
    assert engine.state(plain) == "RUN"
    assert dep(engine, started) == ("false", 0)  # dispatched is not started
    assert dep(engine, running) == ("true", 1)
    engine.started(plain)
    engine.tick()
    assert dep(engine, started) == ("true", 1)
    engine.finished(plain, 0)
    engine.tick()
    assert engine.state(plain) == "DONE"
    assert dep(engine, done) == ("true", 1)
    assert dep(engine, running) == ("invalid", 0)  # its counts are final now
    assert dep(engine, failed) == ("invalid", 0)
    assert dep(engine, started) == ("true", 1)


def test_count_leaves_are_stored_with_their_function_and_comparison(
    engine: Engine, tmp_path: Path
) -> None:
    parts = [engine.api.submit("true", name=f"part{i}", hold=True, env={}) for i in range(2)]
    join = engine.api.submit(
        "true", condition="numdone(part*, >= 1) || !numpend(part1, *)", hold=True, env={}
    )
    engine.tick()
    add_items(engine, parts[0], "DONE", "PEND")
    items_change(engine, parts[0], "DONE", 1)
    rows = engine.conn.execute(
        "SELECT n.op, n.text, n.pred, n.count_func, n.ref_job_id, n.exit_op, n.exit_code "
        "FROM rule_nodes AS n JOIN rules AS r ON r.id = n.rule_id WHERE r.job_id = ? "
        "ORDER BY n.position",
        (join,),
    ).fetchall()
    assert [tuple(row) for row in rows] == [
        ("OR", "numdone(part*, >= 1) || !numpend(part1, *)", None, None, None, None, None),
        ("AND", "numdone(part*, >= 1)", None, None, None, None, None),
        ("LEAF", "numdone(part0, >= 1)", None, "numdone", parts[0], ">=", 1),
        ("LEAF", "numdone(part1, >= 1)", None, "numdone", parts[1], ">=", 1),
        ("NOT", "!numpend(part1, *)", None, None, None, None, None),
        ("LEAF", "numpend(part1, *)", None, "numpend", parts[1], "==", None),
    ]
    # part1, a plain held job, is one pending item: every item pending, so the NOT is false.
    assert dep(engine, join) == ("false", 0)
    tree = engine.api.why(join)
    assert tree is not None
    leaf = tree.children[0].children[0]
    assert leaf.value == "true"
    assert leaf.job is not None
    assert leaf.job["work"] == work(total=2, pend=1, done=1, started=1)
    plain = tree.children[1].children[0]
    assert plain.job is not None
    assert plain.job["work"] == work(total=1, pend=1)
    # The compiled leaves travel in the journal: a replay stores the same rows.
    replica = replay_journal(engine.conn, tmp_path / "replica.db", batch=1)
    try:
        again = replica.execute(
            "SELECT n.count_func, n.exit_op, n.exit_code FROM rule_nodes AS n "
            "JOIN rules AS r ON r.id = n.rule_id WHERE r.job_id = ? ORDER BY n.position",
            (join,),
        ).fetchall()
        assert [tuple(row) for row in again] == [(row[3], row[5], row[6]) for row in rows]
    finally:
        replica.close()


def test_a_count_is_a_job_reference_for_cycles(engine: Engine) -> None:
    a = engine.api.submit("true", name="a", hold=True, env={})
    b = engine.api.submit("true", name="b", condition="numdone(a, >= 1)", hold=True, env={})
    with pytest.raises(TockError, match=rf"cycle: <{a}> -> <{b}> -> <{a}>"):
        engine.api.modify(a, "numended(b*, *)")


def test_a_count_on_a_repetitive_job_does_not_make_a_job_repetitive(engine: Engine) -> None:
    """A count is a level, with no "new run since this job last ran": a job it made
    repetitive could never run a second time."""
    daily = engine.api.submit("true", name="daily", condition="calendar(*:*:*:*:*)", env={})
    counted = engine.api.submit("true", condition="numdone(daily, >= 0)", hold=True, env={})
    engine.tick()
    assert engine.api.job(daily).repetitive
    assert not engine.api.job(counted).repetitive
    assert dep(engine, counted) == ("true", 1)
