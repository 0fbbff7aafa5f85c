"""Callbacks in the tick: universal and per-job attachments, firing in the transition's
transaction, latched `&&`, one recorded result per key, and replay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Engine, replay_journal

from engine import journal
from engine.callback_fire import event_names, holds
from engine.callbacks_conf import parse_trigger, to_json
from engine.errors import TockError


def load(eng: Engine, *entries: tuple[int, str, str]) -> None:
    """What the daemon journals after reading callbacks.conf: (id, path, trigger)."""
    defs = []
    for callback_id, path, trigger in entries:
        tree = parse_trigger(trigger).tree
        assert tree is not None
        defs.append(
            {
                "id": callback_id,
                "scope": "universal",
                "path": path,
                "language": "python",
                "trigger": trigger,
                "tree": to_json(tree),
                "source": "callbacks.conf:1",
            }
        )
    eng.append(journal.CALLBACKS_LOADED, payload={"callbacks": defs})
    eng.tick()


def runs(eng: Engine) -> list[tuple[Any, ...]]:
    rows = eng.conn.execute(
        "SELECT callback_id, job_id, trigger, status FROM callback_runs ORDER BY id"
    )
    return [tuple(row) for row in rows]


def test_names_follow_qube() -> None:
    assert event_names("done", "DONE") == {"complete", "done"}
    assert event_names("exit", "EXIT") == {"failed", "done"}
    assert event_names("killed", "EXIT") == {"killed", "done"}
    assert event_names("submitted", "PSUSP") == {"submit", "blocked"}
    assert holds({"op": "and", "args": [{"term": 0}, {"term": 1}]}, {1}) is False
    assert holds({"op": "or", "args": [{"term": 0}, {"term": 1}]}, {1}) is True


def test_a_universal_callback_fires_on_its_transition_only(engine: Engine) -> None:
    load(engine, (1, "/cb/fail.py", "failed-job-self"), (2, "/cb/sub.py", "submit-job-self"))
    ok = engine.api.submit("true")
    bad = engine.api.submit("false")
    engine.tick()
    engine.run_to_end(ok, 0)
    engine.run_to_end(bad, 1)
    assert runs(engine) == [
        (2, ok, "submit-job-self", "pending"),
        (2, bad, "submit-job-self", "pending"),
        (1, bad, "failed-job-self", "pending"),
    ]


def test_a_job_submitted_after_a_reload_gets_the_new_set(engine: Engine) -> None:
    load(engine, (1, "/cb/a.py", "done-job-self"))
    first = engine.api.submit("true")
    engine.tick()
    load(engine, (2, "/cb/b.py", "done-job-self"))
    second = engine.api.submit("true")
    engine.tick()
    engine.run_to_end(first)
    engine.run_to_end(second)
    assert [(row[0], row[1]) for row in runs(engine)] == [(1, first), (2, second)]


def test_and_latches_each_side(engine: Engine) -> None:
    engine.api.submit("true", name="a", hold=True)
    engine.api.submit("true", name="b", hold=True)
    load(engine, (1, "/cb/both.py", "done-job-a && done-job-b"))
    watcher = engine.api.submit("true", hold=True)
    engine.tick()
    a, b = (engine.api.jobs(name=n)[0].id for n in ("a", "b"))
    engine.api.resume(a)
    engine.tick()
    engine.run_to_end(a)
    assert [row for row in runs(engine) if row[1] == watcher] == []
    engine.api.resume(b)
    engine.tick()
    engine.run_to_end(b)
    assert [row[1] for row in runs(engine)].count(watcher) == 1


def test_a_per_job_callback(engine: Engine, tmp_path: Path) -> None:
    script = tmp_path / "notify.py"
    script.write_text("print('hi')\n")
    tmp_path.chmod(0o755)
    script.chmod(0o644)
    job = engine.api.submit("false", callbacks=[("failed-job-self", str(script))])
    engine.tick()
    engine.run_to_end(job, 2)
    ((callback_id, job_id, trigger, status),) = runs(engine)
    assert (job_id, trigger, status) == (job, "failed-job-self", "pending")
    row = engine.conn.execute("SELECT scope, path FROM callbacks WHERE id = ?", (callback_id,))
    assert tuple(row.fetchone()) == ("job", str(script))


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        (("failed-job-me-too", "/x.py"), "cannot hold '-'"),
        (("failed-job-self", "relative.py"), "absolute path"),
        (("failed-job-self", "/tmp/x.txt"), "extension"),
    ],
)
def test_a_bad_callback_option_refuses_the_submission(
    engine: Engine, pair: tuple[str, str], message: str
) -> None:
    with pytest.raises(TockError, match=message):
        engine.api.submit("true", callbacks=[pair])
    assert engine.api.jobs(include_finished=True) == []


def test_one_result_is_recorded_per_key(engine: Engine) -> None:
    load(engine, (1, "/cb/fail.py", "failed-job-self"))
    job = engine.api.submit("false")
    engine.tick()
    engine.run_to_end(job, 1)
    (key,) = [row[0] for row in engine.conn.execute("SELECT key FROM callback_runs")]
    for exit_code in (0, 5):  # a run repeated after a restart reports again
        engine.append(
            journal.CALLBACK_FINISHED,
            payload={
                "key": key,
                "status": "done" if exit_code == 0 else "failed",
                "exit_code": exit_code,
                "duration": 0.1,
                "output_tail": "ok",
            },
        )
        engine.tick()
    row = engine.conn.execute("SELECT status, exit_code, attempts FROM callback_runs").fetchone()
    assert tuple(row) == ("done", 0, 1)
    reasons = [entry.reason for entry in engine.api.history(job) if entry.event == "callback"]
    assert reasons == ["/cb/fail.py on failed-job-self: done (exit 0)"]


def test_replay_rebuilds_the_callback_state(engine: Engine, tmp_path: Path) -> None:
    load(engine, (1, "/cb/all.py", "done-job-self || submit-job-self"))
    jobs = [engine.api.submit("true"), engine.api.submit("false")]
    engine.tick()
    engine.run_to_end(jobs[0], 0)
    engine.run_to_end(jobs[1], 3)
    replica = replay_journal(engine.conn, tmp_path / "replay.db", batch=2)

    def dump(conn: Any) -> list[Any]:
        return [
            [tuple(r) for r in conn.execute(sql)]
            for sql in (
                "SELECT * FROM callbacks",
                "SELECT * FROM job_callbacks",
                "SELECT * FROM callback_terms",
                "SELECT key, callback_id, job_id, trigger, transition, status FROM callback_runs",
            )
        ]

    assert dump(replica) == dump(engine.conn)
    assert json.loads(engine.conn.execute("SELECT compiled FROM job_callbacks").fetchone()[0])
