"""The job wrapper's claim: the one thing that keeps a job from ever starting twice."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from conftest import Engine

from engine import wrapper
from engine.store import raw_connect


def test_only_the_first_wrapper_claims_a_run(engine: Engine, db_path: Path) -> None:
    job = engine.api.submit("true", name="once", env={})
    engine.tick()
    run_id = engine.run_of(job)
    first = wrapper.claim(raw_connect(db_path), run_id)
    second = wrapper.claim(raw_connect(db_path), run_id)
    assert first is not None and first.name == "once"
    assert second is None
    rows = engine.conn.execute(
        "SELECT count(*) FROM journal WHERE kind = 'run_started' AND run_id = ?", (run_id,)
    ).fetchone()[0]
    assert rows == 1


def test_a_cancelled_run_is_not_claimed(engine: Engine, db_path: Path) -> None:
    job = engine.api.submit("true", env={})
    engine.tick()
    run_id = engine.run_of(job)
    engine.api.kill(job)
    engine.tick()
    assert wrapper.claim(raw_connect(db_path), run_id) is None


def test_the_job_environment_carries_lsf_variables(engine: Engine, db_path: Path) -> None:
    job = engine.api.submit("true", name="named", env={"KEEP": "1"})
    engine.tick()
    claimed = wrapper.claim(raw_connect(db_path), engine.run_of(job))
    assert claimed is not None
    env = wrapper.job_environment(claimed, db_path)
    assert env["KEEP"] == "1"
    assert (env["LSB_JOBID"], env["LSB_JOBNAME"], env["LSB_EVENT_ATTRIB"]) == (
        str(job),
        "named",
        "",
    )
    assert env["TOCK_DB"] == str(db_path)


def test_a_busy_database_delays_the_claim_but_does_not_lose_it(
    engine: Engine, db_path: Path
) -> None:
    job = engine.api.submit("true", env={})
    engine.tick()
    run_id = engine.run_of(job)
    holder = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, holder.execute, ["ROLLBACK"])
    release.start()
    claimed = wrapper.claim(raw_connect(db_path, busy_timeout_ms=20), run_id)
    release.join()
    assert claimed is not None and claimed.job_id == job
