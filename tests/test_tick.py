"""The tick against a real database file, fed the journal rows wrappers and the CLI write."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import pytest
from conftest import Engine

from engine import journal
from engine.api import Tock
from engine.clock import ManualClock
from engine.config import Config
from engine.store import open_db, write
from engine.tick import run_tick, run_until_caught_up


def test_a_job_without_condition_is_dispatched_with_its_start_action(engine: Engine) -> None:
    job = engine.api.submit("true", env={})
    assert engine.state(job) == "PEND"  # accepted at once, decided by the tick
    engine.tick()
    assert engine.state(job) == "RUN"
    assert engine.pending_actions() == [("start", job)]


def test_state_change_and_action_commit_together(engine: Engine, db_path: Path) -> None:
    job = engine.api.submit("true", env={})
    other = sqlite3.connect(db_path)
    other.execute("BEGIN IMMEDIATE")  # the tick cannot take the write lock
    other.execute("PRAGMA busy_timeout = 0")
    engine.conn.execute("PRAGMA busy_timeout = 50")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        run_tick(engine.conn)
    assert engine.state(job) == "PEND"
    assert engine.pending_actions() == []
    other.rollback()
    engine.tick()
    assert engine.state(job) == "RUN"
    assert engine.pending_actions() == [("start", job)]


def test_done_chain_runs_in_order(engine: Engine) -> None:
    a = engine.api.submit("true", name="a", env={})
    b = engine.api.submit("true", name="b", condition="done(a)", env={})
    engine.tick()
    assert (engine.state(a), engine.state(b)) == ("RUN", "PEND")
    assert engine.api.job(b).pending_reason == "Job dependency condition not satisfied"
    engine.run_to_end(a)
    assert (engine.state(a), engine.state(b)) == ("DONE", "RUN")


def test_exit_code_branch_and_invalid_reason(engine: Engine) -> None:
    a = engine.api.submit("exit 3", name="a", env={})
    ok = engine.api.submit("true", name="ok", condition="done(a)", env={})
    big = engine.api.submit("true", name="big", condition="exit(a, > 2)", env={})
    small = engine.api.submit("true", name="small", condition="exit(a, <= 2)", env={})
    engine.tick()
    engine.run_to_end(a, exit_code=3)
    assert engine.api.job(a).exit_code == 3
    assert engine.state(big) == "RUN"
    for job in (ok, small):
        info = engine.api.job(job)
        assert info.state == "PEND"
        assert info.dep_value == "invalid"
        assert info.pending_reason == "Dependency condition invalid or never satisfied"


def test_wildcard_needs_every_match(engine: Engine) -> None:
    parts = [engine.api.submit("true", name=f"part.{i}", env={}) for i in range(3)]
    join = engine.api.submit("true", name="join", condition="ended(part.*)", env={})
    engine.tick()
    engine.run_to_end(parts[0])
    engine.run_to_end(parts[1], exit_code=1)
    assert engine.state(join) == "PEND"
    engine.run_to_end(parts[2])
    assert engine.state(join) == "RUN"


def test_started_means_the_wrapper_started_the_command(engine: Engine) -> None:
    a = engine.api.submit("sleep 1", name="a", env={})
    watcher = engine.api.submit("true", condition="started(a)", env={})
    engine.tick()
    assert engine.state(a) == "RUN"
    assert engine.state(watcher) == "PEND"  # dispatched is not started: it may be cancelled
    engine.started(a)
    engine.tick()
    assert engine.state(watcher) == "RUN"


def test_a_run_cancelled_before_it_started_never_satisfies_started(engine: Engine) -> None:
    a = engine.api.submit("sleep 1", name="a", env={})
    watcher = engine.api.submit("true", condition="started(a)", env={})
    engine.tick()
    engine.api.kill(a)
    engine.tick()
    assert engine.api.job(watcher).dep_value == "invalid"


def test_orphan_with_ti_is_terminated_and_the_termination_cascades(engine: Engine) -> None:
    a = engine.api.submit("false", name="a", env={})
    b = engine.api.submit("true", name="b", condition="done(a)", terminate_orphan=True, env={})
    c = engine.api.submit("true", name="c", condition="done(b)", terminate_orphan=True, env={})
    d = engine.api.submit("true", name="d", condition="exit(b)", env={})
    engine.tick()
    engine.run_to_end(a, exit_code=1)
    assert engine.state(b) == "EXIT"
    assert "orphan" in (engine.api.job(b).exit_reason or "")
    assert engine.state(c) == "EXIT"  # cascaded in the same tick
    assert engine.state(d) == "RUN"  # exit(b) holds once b is terminated
    events = [h.event for h in engine.api.history(b)]
    assert events[-1] == "orphan"


def test_orphan_grace_period_uses_the_injected_clock(engine: Engine, clock: ManualClock) -> None:
    engine.daemon_start(grace=60)
    a = engine.api.submit("false", name="a", env={})
    b = engine.api.submit("true", condition="done(a)", env={})
    engine.tick()
    engine.run_to_end(a, exit_code=1)
    assert engine.state(b) == "PEND"
    clock.advance(59)
    engine.append(journal.CLOCK, payload={})
    engine.tick()
    assert engine.state(b) == "PEND"
    clock.advance(1)
    engine.append(journal.CLOCK, payload={})
    engine.tick()
    assert engine.state(b) == "EXIT"


def test_max_running_caps_dispatch(engine: Engine) -> None:
    engine.daemon_start(max_running=2)
    jobs = [engine.api.submit("true", env={}) for _ in range(5)]
    engine.tick()
    assert [engine.state(j) for j in jobs] == ["RUN", "RUN", "PEND", "PEND", "PEND"]
    assert "free job slot" in (engine.api.job(jobs[2]).pending_reason or "")
    engine.run_to_end(jobs[0])
    assert [engine.state(j) for j in jobs] == ["DONE", "RUN", "RUN", "PEND", "PEND"]


def test_hold_and_resume(engine: Engine) -> None:
    job = engine.api.submit("true", hold=True, env={})
    engine.tick()
    assert engine.state(job) == "PSUSP"
    assert "held" in (engine.api.job(job).pending_reason or "")
    engine.api.resume(job)
    engine.tick()
    assert engine.state(job) == "RUN"


def test_kill_pending_ends_it_and_releases_ended_dependents(engine: Engine) -> None:
    a = engine.api.submit("true", name="a", hold=True, env={})
    after = engine.api.submit("true", condition="ended(a)", env={})
    engine.tick()
    engine.api.kill(a)
    engine.tick()
    info = engine.api.job(a)
    assert info.state == "EXIT"
    assert info.exit_reason == "killed by user alice while pending"
    assert engine.state(after) == "RUN"


def test_kill_running_sends_a_signal_and_records_the_reason(engine: Engine) -> None:
    job = engine.api.submit("sleep 100", env={})
    engine.tick()
    engine.started(job)
    engine.tick()
    engine.api.kill(job)
    engine.tick()
    action = engine.conn.execute(
        "SELECT kind, payload FROM actions WHERE status = 'pending' AND kind = 'signal'"
    ).fetchone()
    assert action is not None
    assert f'"signal": {int(signal.SIGTERM)}' in action["payload"]
    engine.finished(job, exit_code=143, sig=15)
    engine.tick()
    info = engine.api.job(job)
    assert (info.state, info.exit_code, info.exit_reason) == ("EXIT", 143, "killed by user alice")


def test_kill_before_the_wrapper_claims_cancels_the_run(engine: Engine) -> None:
    job = engine.api.submit("true", env={})
    engine.tick()
    engine.api.kill(job)
    engine.tick()
    assert engine.state(job) == "EXIT"
    run = engine.conn.execute(
        "SELECT status, end_time, reason FROM job_runs WHERE job_id = ?", (job,)
    ).fetchone()
    assert run["status"] == "cancelled"
    assert run["end_time"] is not None
    assert run["reason"] == "killed by user alice before it started"
    # A wrapper that claimed anyway (it won the race) is told to stop, at its own pid.
    engine.started(job, pid=5151)
    engine.tick()
    assert ("signal", job) in engine.pending_actions()
    pid = engine.conn.execute("SELECT pid FROM job_runs WHERE job_id = ?", (job,)).fetchone()[0]
    assert pid == 5151


def test_lost_run_ends_the_job(engine: Engine) -> None:
    job = engine.api.submit("true", env={})
    engine.tick()
    run_id = engine.started(job, pid=777)
    engine.append(journal.RUN_LOST, job_id=job, run_id=run_id, payload={"pid": 777})
    engine.tick()
    info = engine.api.job(job)
    assert info.state == "EXIT"
    assert (info.exit_reason or "").startswith("lost:")


def test_the_end_of_a_wrapper_that_did_not_claim_the_run_is_ignored(engine: Engine) -> None:
    job = engine.api.submit("true", env={})
    engine.tick()
    run_id = engine.started(job, pid=777)
    engine.append(journal.RUN_LOST, job_id=job, run_id=run_id, payload={"pid": 999})
    engine.tick()
    assert engine.state(job) == "RUN"


def test_a_start_failure_ends_the_job_with_its_reason(engine: Engine) -> None:
    job = engine.api.submit("true", env={})
    engine.tick()
    run_id = engine.started(job)
    engine.append(
        journal.RUN_FINISHED,
        job_id=job,
        run_id=run_id,
        payload={"exit_code": 127, "signal": None, "error": "cannot change to directory /x"},
    )
    engine.tick()
    info = engine.api.job(job)
    assert info.state == "EXIT"
    assert info.exit_reason == "start failed: cannot change to directory /x"


def test_modify_replaces_the_condition(engine: Engine) -> None:
    a = engine.api.submit("true", name="a", hold=True, env={})
    b = engine.api.submit("true", name="b", env={})
    job = engine.api.submit("true", condition="done(a)", hold=True, env={})
    engine.tick()
    engine.run_to_end(b)
    engine.api.modify(job, "done(b)")
    engine.api.resume(job)
    engine.tick()
    assert engine.state(job) == "RUN"
    assert engine.api.job(job).condition == "done(b)"
    assert engine.state(a) == "PSUSP"


def test_delete_hides_the_job_and_its_name(engine: Engine) -> None:
    job = engine.api.submit("true", name="gone", hold=True, env={})
    engine.tick()
    engine.api.delete(job)
    engine.tick()
    info = engine.api.job(job)
    assert (info.state, info.deleted) == ("EXIT", True)
    assert job not in [j.id for j in engine.api.jobs(include_finished=True)]


def test_evaluation_is_incremental(engine: Engine) -> None:
    engine.daemon_start(max_running=1)
    blocker = engine.api.submit("sleep 100", name="blocker", env={})
    for i in range(50):
        engine.api.submit("true", name=f"other{i}", condition="done(blocker)", hold=True, env={})
    parent = engine.api.submit("true", name="parent", hold=True, env={})
    child = engine.api.submit("true", condition="done(parent)", env={})
    engine.tick()
    engine.api.kill(parent)
    result = engine.tick()
    # The kill touches the parent and its one dependent, not the 50 others.
    assert result.evaluations <= 2
    assert engine.api.job(child).dep_value == "invalid"
    assert engine.state(blocker) == "RUN"


def test_live_decisions_match_a_replay_when_the_tick_is_behind(engine: Engine) -> None:
    """The API accepts jobs before the tick reaches them; decisions must not see them early."""
    engine.daemon_start(max_running=1)
    engine.tick()
    a = engine.api.submit("true", name="a", env={})
    engine.api.kill(a)
    c = engine.api.submit("true", name="c", env={})
    b = engine.api.submit("true", name="b", condition="exit(a)", env={})
    engine.tick()  # all four rows in one tick
    assert (engine.state(c), engine.state(b)) == ("RUN", "PEND")  # oldest first, as on replay


def test_a_rule_that_cannot_be_evaluated_does_not_undo_other_work(engine: Engine) -> None:
    parent = engine.api.submit("true", name="parent", env={})
    waiter = engine.api.submit("true", condition="done(parent)", env={})
    sibling = engine.api.submit("true", condition="done(parent)", env={})
    engine.tick()
    # A fault injected into the waiter's evaluation stands for a bug there.
    engine.conn.execute(
        f"CREATE TEMP TRIGGER fault BEFORE UPDATE OF value ON rules WHEN NEW.job_id = {waiter} "
        "BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
    )
    engine.run_to_end(parent)
    assert engine.state(parent) == "DONE"  # the report itself was applied
    assert engine.state(sibling) == "RUN"  # and the other dependent was released
    info = engine.api.job(waiter)
    assert info.pending_reason == "Dependency condition could not be evaluated (see tick_errors)"
    errors = engine.conn.execute("SELECT message FROM tick_errors").fetchall()
    assert len(errors) == 1 and f"evaluating job {waiter}" in errors[0][0]


def test_a_wildcard_over_many_jobs_is_evaluated_in_chunks(engine: Engine) -> None:
    engine.daemon_start(max_running=1)
    blocker = engine.api.submit("sleep 100", env={})
    parts = [engine.api.submit("true", name=f"q{i}", hold=True, env={}) for i in range(600)]
    waiter = engine.api.submit("true", condition="ended(q*)", env={})
    engine.conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 550)
    engine.tick()
    for part in parts:
        engine.api.kill(part)
    engine.tick()
    assert engine.state(blocker) == "RUN"
    assert engine.api.job(waiter).dep_value == "true"


def test_a_row_that_cannot_be_applied_is_skipped_and_recorded(engine: Engine) -> None:
    engine.append(journal.SUBMIT, job_id=99, payload={"id": 99})  # missing every field
    job = engine.api.submit("true", env={})
    result = engine.tick()
    assert result.errors == 1
    assert engine.state(job) == "RUN"
    error = engine.conn.execute("SELECT message FROM tick_errors").fetchone()
    assert "TypeError" in error["message"]


def _scenario(api: Tock, eng: Engine) -> None:
    a = api.submit("true", name="a", env={})
    b = api.submit("exit 2", name="b", condition="done(a)", env={})
    api.submit("true", name="c", condition="exit(b, == 2) && ended(a)", env={})
    api.submit("true", name="d", condition="done(b)", terminate_orphan=True, env={})
    api.submit("true", name="e", condition="done(d) || started(c)", hold=True, env={})
    eng.tick()
    eng.run_to_end(a)
    eng.run_to_end(b, exit_code=2)


def _snapshot(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    return [
        tuple(row)
        for row in conn.execute(
            "SELECT id, name, state, exit_code, dep_value, ready, pending_reason, exit_reason, "
            "run_count, submit_time, start_time, end_time FROM jobs ORDER BY id"
        )
    ]


def test_replaying_the_journal_rebuilds_the_same_state(
    engine: Engine, tmp_path: Path, clock: ManualClock
) -> None:
    _scenario(engine.api, engine)
    original = _snapshot(engine.conn)
    rows = engine.conn.execute(
        "SELECT time, kind, user, job_id, run_id, payload FROM journal ORDER BY id"
    ).fetchall()
    for batch in (1, 3, 500):
        replica = open_db(tmp_path / f"replay{batch}.db")
        with write(replica):
            replica.executemany(
                "INSERT INTO journal (time, kind, user, job_id, run_id, payload) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [tuple(row) for row in rows],
            )
        run_until_caught_up(replica, batch=batch)
        assert _snapshot(replica) == original, f"batch={batch}"
        replica.close()


def test_names_refer_to_your_own_jobs(tmp_path: Path, clock: ManualClock) -> None:
    db = tmp_path / "shared.db"
    alice = Tock(db, clock=clock, user="alice", config=Config())
    bob = Tock(db, clock=clock, user="bob", config=Config())
    first = alice.submit("true", name="build", env={})
    second = alice.submit("true", name="build", env={})
    bobs = bob.submit("true", name="build", env={})
    job = alice.submit("true", condition="done(build)", env={})
    leaf = alice.conn.execute(
        "SELECT ref_job_id FROM rule_nodes JOIN rules ON rules.id = rule_id WHERE rules.job_id = ?",
        (job,),
    ).fetchone()
    assert leaf[0] == second  # the last submitted of alice's, never bob's
    assert first != second != bobs
    by_id = bob.submit("true", condition=f"done({first})", env={})  # ids reach anyone's jobs
    assert bob.job(by_id).condition == f"done({first})"
