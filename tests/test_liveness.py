"""What a wrapper's end means for its run."""

from __future__ import annotations

import os

from conftest import Engine

from engine.liveness import requeue_unclaimed, watch_wrapper, wrapper_ended


def lost_rows(engine: Engine) -> int:
    return int(
        engine.conn.execute("SELECT count(*) FROM journal WHERE kind = 'run_lost'").fetchone()[0]
    )


def dispatched(engine: Engine) -> tuple[int, int]:
    job = engine.api.submit("true", env={})
    engine.tick()
    return job, engine.run_of(job)


def test_a_wrapper_that_reported_is_not_lost(engine: Engine) -> None:
    job, run = dispatched(engine)
    engine.started(job, pid=10)
    engine.finished(job)
    wrapper_ended(engine.conn, 0.0, "tock", run, 10)
    assert lost_rows(engine) == 0


def test_the_claimant_that_vanished_loses_the_run_once(engine: Engine) -> None:
    job, run = dispatched(engine)
    engine.started(job, pid=10)
    wrapper_ended(engine.conn, 0.0, "tock", run, 10)
    wrapper_ended(engine.conn, 0.0, "tock", run, 10)  # the pidfd and the launcher both tell
    assert lost_rows(engine) == 1


def test_a_duplicate_wrapper_ending_says_nothing(engine: Engine) -> None:
    job, run = dispatched(engine)
    engine.started(job, pid=10)
    wrapper_ended(engine.conn, 0.0, "tock", run, 11)
    assert lost_rows(engine) == 0


def test_a_wrapper_that_died_before_claiming_loses_the_run(engine: Engine) -> None:
    job, run = dispatched(engine)
    wrapper_ended(engine.conn, 0.0, "tock", run, 12)
    engine.tick()
    assert engine.state(job) == "EXIT"


def test_unclaimed_starts_are_sent_again(engine: Engine) -> None:
    job, _ = dispatched(engine)
    engine.conn.execute("UPDATE actions SET status = 'done'")
    assert requeue_unclaimed(engine.conn) == 1
    assert engine.pending_actions() == [("start", job)]
    engine.conn.execute("UPDATE actions SET status = 'done'")
    engine.started(job)
    assert requeue_unclaimed(engine.conn) == 0  # claimed: never sent again


def test_a_watch_refuses_a_pid_that_is_not_the_recorded_process() -> None:
    assert watch_wrapper(1, os.getpid(), 12345) is None  # same pid, other start time
    from engine.procs import start_time

    watch = watch_wrapper(1, os.getpid(), start_time(os.getpid()))
    assert watch is not None
    watch.close()
