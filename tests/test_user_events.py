"""User events in the tick: the four types, REJECT, attributes, ownership, subscriptions,
stale marks and replay, with a real database and the journal as the only input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import Engine, replay_journal

from engine import journal
from engine.api import Tock
from engine.clock import ManualClock
from engine.config import Config
from engine.errors import TockError


def waiters(eng: Engine, name: str, count: int = 3) -> list[int]:
    jobs = [eng.api.submit("true", condition=f"event({name})") for _ in range(count)]
    eng.tick()
    assert [eng.state(job) for job in jobs] == ["PEND"] * count
    return jobs


def running(eng: Engine, jobs: list[int]) -> int:
    return sum(eng.state(job) == "RUN" for job in jobs)


def post(eng: Engine, name: str, action: str = "start", **kwargs: Any) -> None:
    eng.api.event_post(name, action, **kwargs)
    eng.tick()


def listed(eng: Engine, name: str) -> dict[str, Any]:
    (found,) = [e.to_json(long=True) for e in eng.api.events() if e.event == name]
    return found


def test_latched_releases_every_waiting_job_until_end(engine: Engine) -> None:
    jobs = waiters(engine, "ready")
    post(engine, "ready", type="latched")
    assert running(engine, jobs) == 3
    assert listed(engine, "ready")["status"] == "active"
    late = engine.api.submit("true", condition="event(ready)")
    engine.tick()
    assert engine.state(late) == "RUN", "latched: still active for a job that comes later"
    post(engine, "ready", "end")
    after = engine.api.submit("true", condition="event(ready)")
    engine.tick()
    assert engine.state(after) == "PEND"
    assert listed(engine, "ready")["status"] == "inactive"


def test_pulse_releases_one_job_per_start(engine: Engine) -> None:
    jobs = waiters(engine, "tick")
    post(engine, "tick", type="pulse")
    assert running(engine, jobs) == 1
    assert engine.state(jobs[0]) == "RUN", "the oldest waiting job"
    post(engine, "tick", type="pulse")
    assert running(engine, jobs) == 2
    assert listed(engine, "tick")["status"] == "inactive", "each pulse was used"


def test_a_pulse_nobody_waits_for_is_dropped(engine: Engine) -> None:
    post(engine, "lonely", type="pulse")
    job = engine.api.submit("true", condition="event(lonely)")
    engine.tick()
    assert engine.state(job) == "PEND"


def test_pulse_all_releases_the_waiting_jobs_and_none_later(engine: Engine) -> None:
    jobs = waiters(engine, "batch")
    post(engine, "batch", type="pulseAll")
    assert running(engine, jobs) == 3
    late = engine.api.submit("true", condition="event(batch)")
    engine.tick()
    assert engine.state(late) == "PEND"


def test_pulse_all_is_owed_until_the_job_can_start(engine: Engine) -> None:
    prep = engine.api.submit("true", name="prep", hold=True)
    job = engine.api.submit("true", condition="event(batch) && done(prep)")
    engine.tick()
    post(engine, "batch", type="pulseAll")
    assert engine.state(job) == "PEND"
    assert listed(engine, "batch")["status"] == "active"
    engine.api.resume(prep)
    engine.tick()
    engine.run_to_end(prep)
    assert engine.state(job) == "RUN"


def test_exclusive_releases_one_job_and_ignores_starts_until_it_completes(
    engine: Engine,
) -> None:
    jobs = waiters(engine, "lock")
    post(engine, "lock", type="exclusive")
    assert running(engine, jobs) == 1
    post(engine, "lock", type="exclusive")
    assert running(engine, jobs) == 1, "ignored while the first job runs"
    engine.run_to_end(jobs[0])
    assert running(engine, jobs) == 0, "completing frees the event; it takes a new START"
    post(engine, "lock", type="exclusive")
    assert running(engine, jobs) == 1
    assert engine.state(jobs[1]) == "RUN"


def test_the_attribute_reaches_the_released_run(engine: Engine) -> None:
    (job,) = waiters(engine, "diskisfull", 1)
    post(engine, "diskisfull", attribute="/usr 97%")
    run = engine.conn.execute("SELECT event_attrib FROM job_runs WHERE job_id = ?", (job,))
    assert run.fetchone()[0] == "/usr 97%"
    assert listed(engine, "diskisfull")["attribute"] == "/usr 97%"


def test_the_leftmost_event_that_holds_gives_the_attribute(engine: Engine) -> None:
    job = engine.api.submit("true", condition="event(a) || event(b)")
    engine.api.event_post("a", "end", attribute="not this one")
    engine.api.event_post("b", "start", attribute="from b")
    engine.tick()
    run = engine.conn.execute("SELECT event_attrib FROM job_runs WHERE job_id = ?", (job,))
    assert run.fetchone()[0] == "from b"


def test_reject_pends_the_job_with_a_rejected_reason(engine: Engine) -> None:
    (job,) = waiters(engine, "feed", 1)
    post(engine, "feed", "reject", attribute="upstream down")
    info = engine.api.job(job)
    assert info.state == "PEND"
    assert info.pending_reason is not None and "rejected" in info.pending_reason
    assert (listed(engine, "feed")["status"], listed(engine, "feed")["attribute"]) == (
        "reject",
        "upstream down",
    )
    post(engine, "feed")
    assert engine.state(job) == "RUN"


def test_only_the_owner_an_admin_or_a_public_name_may_post(
    engine: Engine, db_path: Path, clock: ManualClock
) -> None:
    waiters(engine, "mine", 1)
    bob = Tock(db_path, clock=clock, user="bob", config=Config())
    try:
        with pytest.raises(TockError, match="belongs to alice"):
            bob.event_post("mine", "start")
        bob.event_post("bobs", "start")  # a new name is the poster's
        engine.daemon_start(admins=("bob",))
        engine.tick()
        bob.event_post("mine", "start")
    finally:
        bob.close()
    engine.tick()
    assert listed(engine, "mine")["status"] == "active"
    assert listed(engine, "bobs")["owner"] == "bob"


def test_the_tick_checks_the_owner_too(engine: Engine) -> None:
    (job,) = waiters(engine, "guarded", 1)
    engine.append(
        journal.EVENT_POST,
        user="mallory",
        payload={"name": "guarded", "action": "start", "source": "user"},
    )
    engine.tick()
    assert engine.state(job) == "PEND"


def test_public_events_may_be_posted_by_anyone(
    engine: Engine, db_path: Path, clock: ManualClock
) -> None:
    (job,) = waiters(engine, "shared", 1)
    engine.append(
        journal.DAEMON_START,
        payload={"pid": 1, "max_running": 4, "admins": [], "public_events": ["shared"]},
    )
    engine.tick()
    carol = Tock(db_path, clock=clock, user="carol", config=Config())
    try:
        carol.event_post("shared", "start")
    finally:
        carol.close()
    engine.tick()
    assert engine.state(job) == "RUN"


def test_subscriptions_follow_the_waiting_jobs(engine: Engine) -> None:
    def state() -> tuple[int, int]:
        row = engine.conn.execute(
            "SELECT u.subscribed, t.user_generation FROM user_events AS u, tick_state AS t "
            "WHERE u.name = 'sub'"
        ).fetchone()
        return int(row[0]), int(row[1])

    (job,) = waiters(engine, "sub", 1)
    subscribed, generation = state()
    assert subscribed == 1
    engine.api.kill(job)
    engine.tick()
    assert state() == (0, generation + 1)


def test_a_site_daemon_exit_marks_its_events_stale(engine: Engine) -> None:
    (job,) = waiters(engine, "disk", 1)
    engine.append(
        journal.EVENT_POST,
        payload={
            "name": "disk",
            "action": "start",
            "type": "latched",
            "source": "daemon",
            "daemon": "/opt/eventd",
        },
    )
    engine.tick()
    assert engine.state(job) == "RUN"
    engine.append(journal.EVENT_DAEMON, payload={"daemon": "/opt/eventd", "state": "exited"})
    engine.tick()
    event = listed(engine, "disk")
    assert (event["status"], event["stale"]) == ("active", True)


def test_names_with_white_space_are_refused(engine: Engine) -> None:
    with pytest.raises(TockError, match="white space"):
        engine.api.submit("true", condition="event(two words)")
    with pytest.raises(TockError, match="white space"):
        engine.api.event_post("two words", "start")


def test_replay_rebuilds_the_user_event_state(engine: Engine, tmp_path: Path) -> None:
    for name, kind in (("l", "latched"), ("p", "pulse"), ("a", "pulseAll"), ("x", "exclusive")):
        waiters(engine, name, 2)
        post(engine, name, type=kind, attribute=f"attr {name}")
    post(engine, "l", "end")
    replica = replay_journal(engine.conn, tmp_path / "replay.db", batch=2)

    def dump(conn: Any) -> list[list[tuple[Any, ...]]]:
        return [
            [tuple(r) for r in conn.execute(sql)]
            for sql in (
                "SELECT id, state, pending_reason FROM jobs",
                "SELECT id, canonical, owner, status, attribute FROM events",
                "SELECT * FROM user_events",
                "SELECT * FROM job_user_events",
                "SELECT job_id, event_attrib FROM job_runs",
            )
        ]

    assert dump(replica) == dump(engine.conn)


def test_an_event_named_twice_in_one_condition_is_one_event(engine: Engine) -> None:
    job = engine.api.submit("true", condition="event(twice) || event(twice)")
    engine.api.modify(job, "event(again) && !event(again)")
    engine.tick()
    rows = engine.conn.execute("SELECT canonical FROM events WHERE kind = 'user'").fetchall()
    assert sorted(row[0] for row in rows) == ["again", "twice"]
    assert engine.conn.execute("SELECT count(*) FROM tick_errors").fetchone()[0] == 0


def test_a_daemon_post_does_not_see_an_event_a_later_row_creates(
    engine: Engine, tmp_path: Path
) -> None:
    """The API creates the event of a submit at once; the tick must act as on a replay,
    where a site daemon's post journaled before that submit finds no such event."""
    engine.append(
        journal.EVENT_POST,
        payload={
            "name": "feed",
            "action": "start",
            "type": "latched",
            "source": "daemon",
            "daemon": "/opt/eventd",
        },
    )
    job = engine.api.submit("true", condition="event(feed)")
    engine.tick()
    assert engine.state(job) == "PEND"
    replica = replay_journal(engine.conn, tmp_path / "replay.db", batch=1)
    assert replica.execute("SELECT state FROM jobs WHERE id = ?", (job,)).fetchone()[0] == "PEND"
