"""What a wrapper's end means for its run."""

from __future__ import annotations

import contextlib
import os
import resource

import pytest
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


def test_running_out_of_descriptors_is_not_taken_for_a_dead_wrapper() -> None:
    from engine.procs import start_time

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    held: list[int] = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    try:
        with contextlib.suppress(OSError):
            while True:
                held.append(os.open(os.devnull, os.O_RDONLY))
        os.close(held.pop())  # one left: the pidfd opens, reading /proc/PID/stat cannot
        with pytest.raises(OSError):
            watch_wrapper(1, os.getpid(), start_time(os.getpid()))
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
