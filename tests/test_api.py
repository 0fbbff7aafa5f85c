"""The Python API: validation before anything is written, output paths, ownership."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from conftest import Engine

from engine import journal
from engine.api import Tock
from engine.clock import ManualClock
from engine.config import Config
from engine.errors import TockError


def journal_rows(api: Tock) -> int:
    return int(api.conn.execute("SELECT count(*) FROM journal").fetchone()[0])


def test_submit_returns_an_id_and_the_job_is_visible_at_once(tock: Tock) -> None:
    first = tock.submit("true", name="a", env={})
    second = tock.submit("true", condition="done(a)", env={})
    assert (first, second) == (1, 2)
    assert [job.id for job in tock.jobs()] == [1, 2]
    assert tock.job(2).pending_reason == "New job is waiting for scheduling"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"condition": "done(nosuch)"}, "no job named 'nosuch'"),
        ({"condition": "ended(nosuch*)"}, "no job name starts with 'nosuch'"),
        ({"condition": "done(42)"}, "job <42> does not exist"),
        ({"condition": "done(a) &&"}, "-w:1:11: syntax error"),
        ({"condition": "event(a b)"}, "-w:1:1: event name 'a b' cannot hold white space"),
        ({"terminate_orphan": True}, "-ti needs a dependency condition"),
        ({"name": "bad*"}, "cannot end with '*'"),
        ({"name": "two\nlines"}, "control characters"),
        ({"name": ""}, "cannot be empty"),
    ],
)
def test_refused_submissions_create_nothing(
    tock: Tock, kwargs: dict[str, object], message: str
) -> None:
    tock.submit("true", name="a", env={})
    before = journal_rows(tock), len(tock.jobs(include_finished=True))
    with pytest.raises(TockError, match=message.replace("(", r"\(").replace(")", r"\)")):
        tock.submit("true", env={}, **kwargs)  # type: ignore[arg-type]
    assert (journal_rows(tock), len(tock.jobs(include_finished=True))) == before
    assert tock.submit("true", env={}) == 2  # no id was consumed


def test_empty_commands_are_refused(tock: Tock) -> None:
    with pytest.raises(TockError, match="the command is empty"):
        tock.submit("  ", env={})
    with pytest.raises(TockError, match="the command is empty"):
        tock.submit([], env={})


def test_default_name_is_the_end_of_the_command(tock: Tock) -> None:
    command = "echo " + "x" * 100
    job = tock.submit(command, env={})
    assert tock.job(job).name == command[-60:]


def test_output_paths(tock: Tock, tmp_path: Path) -> None:
    default = tock.job(tock.submit("true", env={}))
    assert default.stdout == str(tmp_path / "output" / "alice" / "1.out")
    assert default.stderr == str(tmp_path / "output" / "alice" / "1.err")
    both = tock.job(tock.submit("true", stdout="logs/%J.log", cwd=tmp_path / "w", env={}))
    assert both.stdout == both.stderr == str(tmp_path / "w" / "logs" / "2.log")
    split = tock.job(tock.submit("true", stdout="/o/%J", stderr="/e/%J", env={}))
    assert (split.stdout, split.stderr) == ("/o/3", "/e/3")


def test_environment_is_captured_at_submit(tock: Tock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOCK_TEST_MARKER", "seen")
    job = tock.submit("true")
    env = tock.conn.execute("SELECT env FROM jobs WHERE id = ?", (job,)).fetchone()[0]
    assert '"TOCK_TEST_MARKER":"seen"' in env


def test_only_the_owner_or_an_admin_changes_a_job(engine: Engine, clock: ManualClock) -> None:
    engine.daemon_start(admins=("ops",))
    engine.tick()
    db = engine.api.db_path
    alice = engine.api  # the fixture acts as alice
    bob = Tock(db, clock=clock, user="bob", config=Config())
    ops = Tock(db, clock=clock, user="ops", config=Config())
    job = alice.submit("true", hold=True, env={})
    for attempt in (bob.kill, bob.delete, bob.resume):
        with pytest.raises(TockError, match="user bob may not change a job of user alice"):
            attempt(job)
    with pytest.raises(TockError, match="may not change"):
        bob.modify(job, None)
    ops.resume(job)  # an administrator of the daemon's configuration may
    engine.tick()
    assert engine.state(job) == "RUN"


def test_admins_come_from_the_daemon_not_the_requester(engine: Engine, clock: ManualClock) -> None:
    job = engine.api.submit("true", hold=True, env={})
    mallory = Tock(
        engine.api.db_path, clock=clock, user="mallory", config=Config(admins=("mallory",))
    )
    with pytest.raises(TockError, match="user mallory may not change"):
        mallory.kill(job)


def test_the_tick_refuses_requests_the_api_would_have_refused(engine: Engine) -> None:
    job = engine.api.submit("true", hold=True, env={})
    engine.append(journal.KILL, user="mallory", job_id=job, payload={})  # written by hand
    engine.tick()
    assert engine.state(job) == "PSUSP"
    assert engine.api.history(job)[-1].event == "refused"


def test_requests_on_unknown_or_finished_jobs(tock: Tock) -> None:
    with pytest.raises(TockError, match=r"Job <9>: No matching job found"):
        tock.kill(9)
    job = tock.submit("true", env={})
    tock.conn.execute("UPDATE jobs SET state = 'DONE' WHERE id = ?", (job,))
    with pytest.raises(TockError, match="Job has already finished"):
        tock.kill(job)
    with pytest.raises(TockError, match="only a pending job's condition can change"):
        tock.modify(job, None)


def test_the_api_never_starts_a_job_itself(tock: Tock) -> None:
    tock.submit("true", env={})
    actions = tock.conn.execute("SELECT count(*) FROM actions").fetchone()[0]
    assert actions == 0  # deciding to start is the tick's job


def test_a_missing_database_directory_is_created(tmp_path: Path) -> None:
    api = Tock(tmp_path / "deep" / "er" / "tock.db", config=Config())
    assert api.submit("true", env={}) == 1
    assert os.path.exists(tmp_path / "deep" / "er" / "tock.db")


def test_an_unwritable_database_is_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    Tock(path, config=Config()).submit("true", env={})
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    api = Tock(path, config=Config())
    api._conn = conn
    with pytest.raises(TockError, match=r"\(attempt to write a readonly database\)"):
        api.submit("true", env={})


def test_two_modifications_that_together_close_a_loop(engine: Engine) -> None:
    a = engine.api.submit("true", name="a", hold=True, env={})
    b = engine.api.submit("true", name="b", hold=True, env={})
    engine.tick()
    engine.api.modify(a, "done(b)")  # accepted, not yet applied by the tick
    with pytest.raises(TockError, match=rf"cycle: <{b}> -> <{a}> -> <{b}>"):
        engine.api.modify(b, "done(a)")


def test_the_tick_refuses_a_modification_that_closes_a_loop(engine: Engine) -> None:
    a = engine.api.submit("true", name="a", hold=True, env={})
    b = engine.api.submit("true", name="b", condition="done(a)", hold=True, env={})
    leaf = {"op": "LEAF", "text": "done(b)", "pred": "done", "job": b, "parent": None}
    payload = {"condition": "done(b)", "nodes": [leaf]}
    engine.append(journal.MODIFY, user="alice", job_id=a, payload=payload)
    engine.tick()
    assert engine.api.job(a).condition is None
    assert engine.api.history(a)[-1].reason == "it would make a cycle"
