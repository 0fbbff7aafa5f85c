"""File events in the tick: one clause is one event, arrival is owed to the jobs waiting
when it fires, levels hold while true, age() and stable() wake at their thresholds.

A real database and real files for the submit-time snapshot; the watcher's reports are
`file_observed` journal rows written here as the daemon would write them.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Engine, replay_journal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import journal
from engine.api import Tock
from engine.clock import ManualClock
from engine.config import Config

T0 = 1_800_000_000.0
_EXAMPLES = itertools.count()


def observe(
    eng: Engine, path: Path | str, size: int | None = 0, mtime: float | None = None
) -> None:
    """The watcher saw `path` (size None: absent), and the tick runs."""
    present = size is not None
    obs = {
        "path": str(path),
        "exists": present,
        "size": size or 0,
        "mtime": (eng.clock.now() if mtime is None else mtime) if present else 0.0,
    }
    eng.append(journal.FILE_OBSERVED, payload={"source": "test", "observations": [obs]})
    eng.tick()


def at(eng: Engine, when: float) -> None:
    eng.clock.set(when)
    eng.append(journal.CLOCK)
    eng.tick()


def event_rows(eng: Engine) -> list[dict[str, Any]]:
    return [event.to_json(long=True) for event in eng.api.events()]


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


def test_arrival_releases_the_waiting_job_and_is_then_used(engine: Engine, inbox: Path) -> None:
    target = inbox / "in.dat"
    job = engine.api.submit("true", condition=f"file(arrival({target}))")
    engine.tick()
    assert engine.state(job) == "PEND"
    (event,) = event_rows(engine)
    assert (event["event"], event["status"], event["source"]) == (
        f"arrival({target})",
        "inactive",
        "file",
    )
    observe(engine, target, 10)
    assert engine.state(job) == "RUN"
    (event,) = event_rows(engine)
    assert (event["fired"], event["status"]) == (1, "inactive")  # nobody else was owed it


def test_a_file_already_there_does_not_arrive_until_recreated(engine: Engine, inbox: Path) -> None:
    target = inbox / "in.dat"
    target.write_bytes(b"x")
    job = engine.api.submit("true", condition=f"file(arrival({target}))")
    engine.tick()
    observe(engine, target, 1, mtime=engine.clock.now() - 5)  # modified: no arrival
    assert engine.state(job) == "PEND"
    observe(engine, target, None)
    assert engine.state(job) == "PEND"
    observe(engine, target, 3)
    assert engine.state(job) == "RUN"


def test_every_job_waiting_at_the_arrival_is_released_once_later_ones_wait(
    engine: Engine, inbox: Path
) -> None:
    target = inbox / "in.dat"
    waiting = [engine.api.submit("true", condition=f"file(arrival({target}))") for _ in range(3)]
    engine.tick()
    assert len(event_rows(engine)) == 1, "one clause, one event"
    observe(engine, target, 1)
    assert [engine.state(job) for job in waiting] == ["RUN"] * 3
    late = engine.api.submit("true", condition=f"file(arrival({target}))")
    engine.tick()
    assert engine.state(late) == "PEND"
    observe(engine, target, None)
    observe(engine, target, 2)
    assert engine.state(late) == "RUN"


def test_an_arrival_stays_owed_until_the_rest_of_the_condition_holds(
    engine: Engine, inbox: Path
) -> None:
    target = inbox / "in.dat"
    prep = engine.api.submit("true", name="prep", hold=True)
    job = engine.api.submit("true", condition=f"file(arrival({target})) && done(prep)")
    engine.tick()
    observe(engine, target, 1)
    assert engine.state(job) == "PEND"
    (event,) = event_rows(engine)
    assert event["status"] == "active", "owed to a waiting job"
    engine.api.resume(prep)
    engine.tick()
    engine.run_to_end(prep)
    assert engine.state(job) == "RUN"
    assert event_rows(engine)[0]["status"] == "inactive"


def test_exist_and_size_hold_only_past_the_threshold(engine: Engine, inbox: Path) -> None:
    target = inbox / "a"
    job = engine.api.submit("true", condition=f"file(exist({target}) && size({target}) > 1K)")
    engine.tick()
    observe(engine, target, 1000)
    assert engine.state(job) == "PEND"
    assert event_rows(engine)[0]["status"] == "inactive"
    observe(engine, target, 1024)
    assert engine.state(job) == "PEND", "> 1K means more than 1024 bytes"
    observe(engine, target, 1025)
    assert engine.state(job) == "RUN"
    assert event_rows(engine)[0]["status"] == "active"


def test_a_level_event_goes_back_to_inactive(engine: Engine, inbox: Path) -> None:
    lock = inbox / "lock"
    lock.write_bytes(b"")
    job = engine.api.submit("true", condition=f"file(!exist({lock}))")
    engine.tick()
    assert engine.state(job) == "PEND"
    observe(engine, lock, None)
    assert engine.state(job) == "RUN"
    observe(engine, lock, 0)
    assert event_rows(engine)[0]["status"] == "inactive"


def test_age_fires_at_the_one_minute_mark_without_a_file_system_event(
    engine: Engine, inbox: Path
) -> None:
    target = inbox / "data"
    job = engine.api.submit("true", condition=f"file(age({target}) > 1)")
    engine.tick()
    observe(engine, target, 5, mtime=T0)
    assert engine.state(job) == "PEND"
    (due,) = engine.conn.execute("SELECT next_check FROM file_events").fetchone()
    assert due == pytest.approx(T0 + 60.001)
    at(engine, T0 + 59.9)
    assert engine.state(job) == "PEND"
    at(engine, due)
    assert engine.state(job) == "RUN"


def test_the_daemon_sleeps_until_the_age_threshold(
    engine: Engine, inbox: Path, db_path: Path
) -> None:
    from engine.daemon import Daemon

    target = inbox / "data"
    engine.api.submit("true", condition=f"file(age({target}) >= 2H)")
    engine.tick()
    observe(engine, target, 5, mtime=T0 - 3600)
    daemon = Daemon(db_path, clock=engine.clock, config=Config())
    daemon.conn = engine.conn
    assert daemon.next_wakeup() == pytest.approx(T0 + 3600)


def test_stable_waits_for_size_and_mtime_to_rest(engine: Engine, inbox: Path) -> None:
    target = inbox / "upload"
    job = engine.api.submit("true", condition=f"file(arrival({target}) && stable({target}) >= 10)")
    engine.tick()
    observe(engine, target, 100)
    at(engine, T0 + 5)
    observe(engine, target, 200)  # still being written
    at(engine, T0 + 14)
    assert engine.state(job) == "PEND"
    at(engine, T0 + 15)
    assert engine.state(job) == "RUN"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("exist(tmp/x)", "path 'tmp/x' is not absolute"),
        ("exist(otherhost:/data/x)", "no agent for host otherhost"),
        ("exists(/data/x)", "unknown file function 'exists'"),
        ("size(/data/x) > 3X", "unit 'X' is not valid for size()"),
    ],
)
def test_a_clause_that_cannot_be_watched_is_an_invalid_event(
    engine: Engine, body: str, reason: str
) -> None:
    job = engine.api.submit("true", condition=f"file({body})")
    assert any(reason in warning for warning in engine.api.warnings)
    engine.tick()
    info = engine.api.job(job)
    assert info.state == "PEND"
    assert info.pending_reason is not None and "event invalid" in info.pending_reason
    assert reason in info.pending_reason
    (event,) = event_rows(engine)
    assert event["status"] == "invalid"
    assert reason in event["attribute"]


def test_an_invalid_event_blocks_even_under_not(engine: Engine) -> None:
    job = engine.api.submit("true", condition="!file(exist(relative))")
    engine.tick()
    assert engine.state(job) == "PEND"


def test_local_host_names_mean_this_machine(engine: Engine, inbox: Path) -> None:
    target = inbox / "x"
    job = engine.api.submit("true", condition=f"file(exist(localhost:{target}))")
    engine.tick()
    observe(engine, target, 1)
    assert engine.state(job) == "RUN"


def test_the_event_goes_with_its_last_job_and_comes_back_new(engine: Engine, inbox: Path) -> None:
    target = inbox / "in.dat"
    first = engine.api.submit("true", condition=f"file(arrival({target}))")
    second = engine.api.submit("true", condition=f"file(arrival({target}))")
    engine.tick()
    (before,) = event_rows(engine)
    engine.api.kill(first)
    engine.tick()
    assert len(event_rows(engine)) == 1, "a job still waits on it"
    engine.api.kill(second)
    engine.tick()
    assert event_rows(engine) == []
    assert engine.conn.execute("SELECT count(*) FROM file_paths").fetchone()[0] == 0
    observe(engine, target, 1)  # nobody watches: ignored
    assert engine.conn.execute("SELECT count(*) FROM file_paths").fetchone()[0] == 0
    target.write_bytes(b"already here")
    third = engine.api.submit("true", condition=f"file(arrival({target}))")
    engine.tick()
    (after,) = event_rows(engine)
    assert after["id"] == before["id"], "the same clause of the same owner keeps its id"
    observe(engine, target, 12, mtime=engine.clock.now() - 1)
    assert engine.state(third) == "PEND", "it was there before this job: no arrival"


def test_each_owner_has_an_event_of_their_own(
    engine: Engine, inbox: Path, db_path: Path, clock: ManualClock
) -> None:
    target = inbox / "x"
    engine.api.submit("true", condition=f"file(exist({target}))")
    bob = Tock(db_path, clock=clock, user="bob", config=Config(max_running=4))
    try:
        bob.submit("true", condition=f"file(exist({target}))")
    finally:
        bob.close()
    engine.tick()
    assert sorted(event["owner"] for event in event_rows(engine)) == ["alice", "bob"]
    assert [e["owner"] for e in (x.to_json() for x in engine.api.events(user="bob"))] == ["bob"]


def test_modify_moves_the_job_to_another_clause(engine: Engine, inbox: Path) -> None:
    a, b = inbox / "a", inbox / "b"
    job = engine.api.submit("true", condition=f"file(arrival({a}))")
    engine.tick()
    engine.api.modify(job, f"file(arrival({b}))")
    engine.tick()
    assert [event["event"] for event in event_rows(engine)] == [f"arrival({b})"]
    observe(engine, a, 1)
    assert engine.state(job) == "PEND"
    observe(engine, b, 1)
    assert engine.state(job) == "RUN"


def test_why_and_the_json_listing_show_the_event(engine: Engine, inbox: Path) -> None:
    target = inbox / "x"
    job = engine.api.submit("true", condition=f"file(exist({target}))")
    engine.tick()
    tree = engine.api.why(job)
    assert tree is not None
    assert tree.event == {"event": f"file(exist({target}))", "holds": False, "invalid": None}
    (plain,) = [event.to_json() for event in engine.api.events()]
    assert set(plain) == {"event", "owner", "status", "source", "attribute", "last_update"}


def test_a_repetitive_job_needs_a_new_arrival_for_each_run(engine: Engine, inbox: Path) -> None:
    target = inbox / "in.dat"
    job = engine.api.submit(
        "true", condition=f"calendar(*:*:*:*:0-59%1) && file(arrival({target}))"
    )
    engine.tick()
    observe(engine, target, 1)
    assert engine.state(job) == "RUN"
    engine.run_to_end(job)
    assert engine.state(job) == "PEND"
    observe(engine, target, None)
    at(engine, T0 + 61)
    assert engine.state(job) == "PEND", "a new time event, but no new arrival"
    observe(engine, target, 1)
    assert engine.state(job) == "RUN", engine.api.job(job).pending_reason


@pytest.fixture
def replay_db(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "replay.db"


def test_replaying_the_journal_rebuilds_the_same_file_event_state(
    engine: Engine, inbox: Path, replay_db: Path
) -> None:
    a, b = inbox / "a", inbox / "b"
    b.write_bytes(b"x")
    jobs = [
        engine.api.submit("true", condition=f"file(arrival({a}))"),
        engine.api.submit("true", condition=f"file(exist({b}) && age({b}) > 1)"),
        engine.api.submit("true", condition="file(exist(nowhere))"),
    ]
    engine.tick()
    observe(engine, a, 1)
    at(engine, T0 + 600)
    engine.run_to_end(jobs[0])
    os.unlink(b)  # replay must not read the file system
    replica = replay_journal(engine.conn, replay_db, batch=2)

    def dump(conn: Any) -> list[list[tuple[Any, ...]]]:
        return [
            [tuple(r) for r in conn.execute(sql)]
            for sql in (
                "SELECT id, state, run_count, pending_reason FROM jobs",
                "SELECT id, canonical, owner, status, attribute FROM events",
                "SELECT event_id, value, fired, next_check, removed FROM file_events",
                "SELECT * FROM file_event_paths",
                "SELECT path, present, size, mtime, changed FROM file_paths",
                "SELECT * FROM job_file_events",
            )
        ]

    assert dump(replica) == dump(engine.conn)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.one_of(st.none(), st.integers(min_value=0, max_value=3000)), max_size=12))
def test_firings_and_levels_follow_the_observations(
    tock: Tock, clock: ManualClock, tmp_path: Path, sizes: list[int | None]
) -> None:
    """Arrivals fire once per absent -> present after the start; a level tracks its value."""
    eng = Engine(tock, clock)
    eng.daemon_start()
    target = tmp_path / f"p{next(_EXAMPLES)}"  # the database outlives one example
    edge_job = eng.api.submit("sleep 1", condition=f"file(arrival({target}))", hold=True)
    level_job = eng.api.submit("true", condition=f"file(size({target}) > 1K)", hold=True)
    eng.tick()
    fired, present, level = 0, False, False
    for size in sizes:
        observe(eng, target, size)
        fired += int(size is not None and not present)
        present = size is not None
        level = size is not None and size > 1024
        rows = {
            row[0]: (row[1], row[2])
            for row in eng.conn.execute(
                "SELECT l.job_id, f.fired, f.value FROM job_file_events AS l "
                "JOIN file_events AS f ON f.event_id = l.event_id WHERE l.job_id IN (?, ?)",
                (edge_job, level_job),
            )
        }
        assert rows[edge_job][0] == fired
        assert bool(rows[level_job][1]) == level
    for job in (edge_job, level_job):
        eng.api.kill(job)
    eng.tick()


def test_paths_with_spaces_are_listed_whole(engine: Engine, inbox: Path) -> None:
    target = inbox / "my data" / "x y"
    engine.api.submit("true", condition=f"file(exist('{target}'))")
    engine.tick()
    (event,) = event_rows(engine)
    assert event["paths"] == [str(target)]


def test_an_ignored_modify_leaves_no_event_behind(engine: Engine, inbox: Path) -> None:
    job = engine.api.submit("sleep 1")
    engine.api.modify(job, f"file(exist({inbox / 'late'}))")  # accepted while pending ...
    engine.tick()  # ... but the job is dispatched before the tick reads the modification
    assert engine.state(job) == "RUN"
    assert event_rows(engine) == []


def test_a_clause_named_twice_in_one_condition_is_one_event(engine: Engine, inbox: Path) -> None:
    target = inbox / "twice"
    engine.api.submit("true", condition=f"file(exist({target})) || file(exist({target}))")
    engine.tick()
    assert len(event_rows(engine)) == 1


def test_a_new_inode_under_the_name_arrives_but_more_data_does_not(
    engine: Engine, inbox: Path
) -> None:
    target = inbox / "feed.csv"
    first = engine.api.submit("true", condition=f"file(arrival({target}))")
    engine.tick()

    def seen(size: int, inode: int) -> None:
        obs = {
            "path": str(target),
            "exists": True,
            "size": size,
            "mtime": engine.clock.now(),
            "inode": inode,
        }
        engine.append(journal.FILE_OBSERVED, payload={"observations": [obs]})
        engine.tick()

    seen(0, 7)
    assert engine.state(first) == "RUN"
    second = engine.api.submit("true", condition=f"file(arrival({target}))")
    engine.tick()
    engine.clock.advance(1)
    seen(100, 7)  # the same file, written to: no arrival
    assert engine.state(second) == "PEND"
    seen(100, 8)  # replaced (rename over it, or deleted and created between two looks)
    assert engine.state(second) == "RUN"
