"""Work items in the tick, with a real database: dispatch within slots and `%N`, the job
following its items, per-item history and callbacks, kill, the control requests, and
replay."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Engine, replay_journal
from test_callback_fire import load

from engine import journal
from engine.errors import TockError


def items(eng: Engine, job_id: int) -> dict[int, str]:
    rows = eng.conn.execute(
        "SELECT idx, state FROM work_items WHERE job_id = ? ORDER BY idx", (job_id,)
    )
    return {row[0]: row[1] for row in rows}


def active_runs(eng: Engine, job_id: int) -> list[tuple[int, int]]:
    rows = eng.conn.execute(
        "SELECT id, work_index FROM job_runs WHERE job_id = ? "
        "AND status IN ('dispatched', 'running') ORDER BY id",
        (job_id,),
    )
    return [(row[0], row[1]) for row in rows]


def run_items(eng: Engine, job_id: int, codes: dict[int, int] | None = None) -> list[int]:
    """The wrapper's reports for every active run of the job; the indices that ran."""
    ran = []
    for run_id, index in active_runs(eng, job_id):
        code = (codes or {}).get(index, 0)
        eng.append(journal.RUN_STARTED, job_id=job_id, run_id=run_id, payload={"pid": 7})
        eng.append(journal.RUN_FINISHED, job_id=job_id, run_id=run_id, payload={"exit_code": code})
        ran.append(index)
    eng.tick()
    return ran


def counts(eng: Engine, job_id: int) -> tuple[Any, ...]:
    row = eng.conn.execute(
        "SELECT work_total, work_pend, work_run, work_done, work_exit, work_started "
        "FROM jobs WHERE id = ?",
        (job_id,),
    ).fetchone()
    return tuple(row)


def test_items_start_lowest_first_within_the_job_slots(engine: Engine) -> None:
    job = engine.api.submit("render", name="r[1-10]")
    engine.tick()
    assert engine.state(job) == "RUN"
    assert [index for _, index in active_runs(engine, job)] == [1, 2, 3, 4]  # max_running 4
    assert counts(engine, job) == (10, 6, 4, 0, 0, 0)
    assert run_items(engine, job) == [1, 2, 3, 4]
    assert run_items(engine, job) == [5, 6, 7, 8]
    assert run_items(engine, job) == [9, 10]
    assert engine.state(job) == "DONE"
    assert counts(engine, job) == (10, 0, 0, 10, 0, 10)


def test_percent_n_caps_the_job_and_leaves_slots_to_others(engine: Engine) -> None:
    job = engine.api.submit("render", name="r[1-6]%2")
    other = engine.api.submit("true")
    engine.tick()
    assert [index for _, index in active_runs(engine, job)] == [1, 2]
    assert engine.state(other) == "RUN"
    run_items(engine, job)
    assert [index for _, index in active_runs(engine, job)] == [3, 4]


def test_the_job_fails_when_an_item_fails_with_the_worst_code(engine: Engine) -> None:
    job = engine.api.submit("render", name="r[1-3]")
    engine.tick()
    run_items(engine, job, {2: 3, 3: 1})
    info = engine.api.job(job)
    assert (info.state, info.exit_code) == ("EXIT", 3)
    assert info.exit_reason == "2 of 3 work items failed"
    assert items(engine, job) == {1: "DONE", 2: "EXIT", 3: "EXIT"}


def test_history_has_a_row_per_item_and_the_job_ends_once(engine: Engine) -> None:
    job = engine.api.submit("render", name="r[1-2]")
    engine.tick()
    run_items(engine, job, {2: 4})
    entries = [(e.event, e.work_index, e.to_state) for e in engine.api.history(job)]
    assert entries == [
        ("submitted", None, "PEND"),
        ("dispatched", None, "RUN"),
        ("started", None, None),
        ("started", 1, "RUN"),
        ("done", 1, "DONE"),
        ("started", 2, "RUN"),
        ("exit", 2, "EXIT"),
        ("exit", None, "EXIT"),
    ]


def test_done_work_self_fires_once_per_item_and_done_job_once(engine: Engine) -> None:
    load(engine, (1, "/cb/check.pl", "done-work-self-*"), (2, "/cb/mail.qcb", "done-job-self"))
    job = engine.api.submit("render", name="r[1-5]")
    engine.tick()
    run_items(engine, job, {3: 1})
    run_items(engine, job)
    fired = engine.conn.execute(
        "SELECT callback_id, work_id, transition FROM callback_runs ORDER BY id"
    ).fetchall()
    per_item = sorted(row[1] for row in fired if row[0] == 1)
    assert per_item == [1, 2, 3, 4, 5]
    assert [tuple(row) for row in fired if row[0] == 2] == [(2, None, "exit:EXIT")]


def test_a_named_work_trigger_fires_for_that_item_only(engine: Engine) -> None:
    load(engine, (1, "/cb/five.py", "complete-work-self-5"))
    job = engine.api.submit("render", name="r[4-6]")
    engine.tick()
    run_items(engine, job)
    rows = engine.conn.execute("SELECT work_id FROM callback_runs").fetchall()
    assert [row[0] for row in rows] == [5]


def test_kill_ends_pending_items_and_signals_running_ones(engine: Engine) -> None:
    job = engine.api.submit("render", name="r[1-8]")
    engine.tick()
    runs = active_runs(engine, job)
    started = runs[:2]
    for run_id, _ in started:
        engine.append(journal.RUN_STARTED, job_id=job, run_id=run_id, payload={"pid": 7})
    engine.tick()
    engine.api.kill(job)
    engine.tick()
    signals = engine.conn.execute(
        "SELECT run_id FROM actions WHERE kind = 'signal' AND status = 'pending'"
    ).fetchall()
    assert sorted(row[0] for row in signals) == sorted(run_id for run_id, _ in started)
    assert items(engine, job) == {1: "RUN", 2: "RUN", **dict.fromkeys(range(3, 9), "EXIT")}
    assert engine.state(job) == "RUN"
    for run_id, _ in started:
        engine.append(
            journal.RUN_FINISHED,
            job_id=job,
            run_id=run_id,
            payload={"exit_code": None, "signal": 15},
        )
    engine.tick()
    info = engine.api.job(job)
    assert info.state == "EXIT" and info.exit_reason is not None
    assert info.exit_reason.startswith("killed by user alice")
    assert [e.event for e in engine.api.history(job)][-1] == "killed"


def test_kill_of_a_pending_array_ends_it_at_once(engine: Engine) -> None:
    job = engine.api.submit("render", name="r[1-3]", hold=True)
    engine.tick()
    engine.api.kill(job)
    engine.tick()
    assert engine.state(job) == "EXIT"
    assert set(items(engine, job).values()) == {"EXIT"}


def test_retry_of_a_failed_item_reopens_the_job(engine: Engine) -> None:
    job = engine.api.submit("render", name="r[1-3]")
    engine.tick()
    run_items(engine, job, {2: 9})
    assert engine.state(job) == "EXIT"
    engine.api.control(job, "retry", work=2)
    engine.tick()
    assert engine.state(job) == "RUN"
    assert run_items(engine, job) == [2]
    info = engine.api.job(job)
    assert (info.state, info.exit_code) == ("DONE", 0)
    assert (
        engine.conn.execute(
            "SELECT run_count FROM work_items WHERE job_id = ? AND idx = 2", (job,)
        ).fetchone()[0]
        == 2
    )


def test_retry_of_the_job_reruns_its_failed_items_only(engine: Engine) -> None:
    job = engine.api.submit("render", name="r[1-4]")
    engine.tick()
    run_items(engine, job, {1: 1, 4: 1})
    engine.api.control(job, "retry")
    engine.tick()
    assert run_items(engine, job) == [1, 4]
    assert engine.state(job) == "DONE"


def test_block_and_unblock_of_items(engine: Engine) -> None:
    job = engine.api.submit("render", name="r[1-6]%1")
    engine.tick()
    engine.api.control(job, "block", work=3)
    engine.api.control(job, "block", work=1)  # running: refused, recorded
    engine.tick()
    assert run_items(engine, job) == [1]
    assert run_items(engine, job) == [2]
    assert run_items(engine, job) == [4]
    assert items(engine, job)[3] == "PSUSP"
    run_items(engine, job)
    run_items(engine, job)
    assert engine.state(job) == "RUN"  # item 3 is held, so the job is not over
    engine.api.resume(job)
    engine.tick()
    assert run_items(engine, job) == [3]
    assert engine.state(job) == "DONE"
    reasons = [e.reason for e in engine.api.history(job) if e.event == "block_ignored"]
    assert reasons == ["block of work item 1 by user alice: work item 1 is RUN"]


def test_complete_and_fail_items_that_have_not_run(engine: Engine) -> None:
    job = engine.api.submit("render", name="r[1-4]%1")
    engine.tick()
    engine.api.control(job, "complete", work=3)
    engine.api.control(job, "fail", work=4)
    engine.tick()
    run_items(engine, job)
    run_items(engine, job)
    assert items(engine, job) == {1: "DONE", 2: "DONE", 3: "DONE", 4: "EXIT"}
    assert engine.state(job) == "EXIT"
    assert (
        engine.conn.execute("SELECT count(*) FROM job_runs WHERE job_id = ?", (job,)).fetchone()[0]
        == 2
    )


def test_fail_of_a_running_item_kills_it_and_records_exit(engine: Engine) -> None:
    job = engine.api.submit("render", name="r[1-2]")
    engine.tick()
    (run_id, _), _second = active_runs(engine, job)
    engine.append(journal.RUN_STARTED, job_id=job, run_id=run_id, payload={"pid": 7})
    engine.tick()
    engine.api.control(job, "complete", work=1)
    engine.tick()
    assert engine.pending_actions()[-1] == ("signal", job)
    engine.append(
        journal.RUN_FINISHED, job_id=job, run_id=run_id, payload={"exit_code": None, "signal": 15}
    )
    engine.tick()
    assert items(engine, job)[1] == "DONE"  # completed, although the signal ended it


def test_the_api_checks_the_item(engine: Engine) -> None:
    job = engine.api.submit("render", name="r[1-2]")
    plain = engine.api.submit("true")
    with pytest.raises(TockError, match=r"No matching work item"):
        engine.api.control(job, "retry", work=7)
    with pytest.raises(TockError, match=r"has no work items"):
        engine.api.control(plain, "retry", work=1)
    with pytest.raises(TockError, match=r"choose one of"):
        engine.api.control(job, "explode")
    with pytest.raises(TockError, match=r"-J:1:3: empty index list"):
        engine.api.submit("true", name="r[]")


def test_a_repetitive_job_cannot_have_items(engine: Engine) -> None:
    with pytest.raises(TockError, match=r"repetitive job .* cannot have work items"):
        engine.api.submit("true", name="r[1-2]", condition="calendar(*:*:*:*:0)")


def test_plain_jobs_keep_working_and_control_them(engine: Engine) -> None:
    job = engine.api.submit("false")
    engine.tick()
    engine.run_to_end(job, 1)
    engine.api.control(job, "retry")
    engine.tick()
    assert engine.state(job) == "RUN"
    engine.run_to_end(job, 0)
    assert engine.state(job) == "DONE"
    pending = engine.api.submit("true", condition=f"done({job}) && exit({job})")
    engine.api.control(pending, "complete")
    engine.tick()
    info = engine.api.job(pending)
    assert info.state == "DONE" and info.run_count == 0


def test_another_users_request_is_refused_by_the_tick(engine: Engine) -> None:
    job = engine.api.submit("render", name="r[1-2]", hold=True)
    engine.append(journal.CONTROL, user="mallory", job_id=job, payload={"action": "complete"})
    engine.tick()
    assert engine.state(job) == "PSUSP"
    assert [e.event for e in engine.api.history(job)][-1] == "refused"


def test_replay_rebuilds_items_and_counts(engine: Engine, tmp_path: Any) -> None:
    job = engine.api.submit("render", name="r[1-7]%3")
    engine.tick()
    run_items(engine, job, {2: 5})
    engine.api.control(job, "block", work=7)
    engine.tick()
    run_items(engine, job)
    engine.api.control(job, "retry", work=2)
    engine.tick()
    run_items(engine, job)
    replica = replay_journal(engine.conn, tmp_path / "replay.db", batch=2)

    def dump(conn: Any) -> list[Any]:
        return [
            [tuple(r) for r in conn.execute(sql)]
            for sql in (
                "SELECT * FROM work_items ORDER BY job_id, idx",
                "SELECT id, state, work_total, work_pend, work_run, work_done, work_exit, "
                "work_started, exit_code FROM jobs",
                "SELECT id, job_id, run_no, status, work_index FROM job_runs",
                "SELECT job_id, event, from_state, to_state, work_index FROM history",
            )
        ]

    assert dump(replica) == dump(engine.conn)


def test_a_run_past_its_timeout_raises_timeout_once(engine: Engine) -> None:
    load(
        engine, (1, "/cb/late.qcb", "timeout-job-self"), (2, "/cb/slow.qcb", "timeout-work-self-*")
    )
    plain = engine.api.submit("sleep 99", timeout=60)
    quick = engine.api.submit("true", timeout=60)
    array = engine.api.submit("render", name="r[1-2]", timeout=30)
    engine.tick()
    engine.started(plain)
    engine.run_to_end(quick)
    runs = active_runs(engine, array)
    engine.append(journal.RUN_STARTED, job_id=array, run_id=runs[0][0], payload={"pid": 7})
    engine.append(journal.RUN_STARTED, job_id=array, run_id=runs[1][0], payload={"pid": 8})
    engine.append(journal.RUN_FINISHED, job_id=array, run_id=runs[1][0], payload={"exit_code": 0})
    engine.tick()
    engine.clock.advance(29.9)
    engine.append(journal.CLOCK)
    engine.tick()
    assert engine.conn.execute("SELECT count(*) FROM callback_runs").fetchone()[0] == 0
    engine.clock.advance(0.2)
    engine.append(journal.CLOCK)
    engine.tick()
    engine.clock.advance(30)
    engine.append(journal.CLOCK)
    engine.tick()
    engine.clock.advance(300)
    engine.append(journal.CLOCK)
    engine.tick()
    fired = engine.conn.execute(
        "SELECT callback_id, job_id, work_id FROM callback_runs ORDER BY id"
    ).fetchall()
    assert [tuple(row) for row in fired] == [(2, array, 1), (1, plain, None)]
    entries = [e for e in engine.api.history(plain) if e.event == "timeout"]
    assert [e.reason for e in entries] == ["still running after its timeout of 60 s"]
    assert engine.state(plain) == "RUN"  # raising it is all a timeout does


def test_a_timeout_must_be_positive(engine: Engine) -> None:
    with pytest.raises(TockError, match=r"--timeout 0: give seconds"):
        engine.api.submit("true", timeout=0)


def test_an_orphaned_job_ends_its_items_and_modify_keeps_it_non_repetitive(
    engine: Engine,
) -> None:
    parent = engine.api.submit("false")
    job = engine.api.submit("render", name="r[1-3]", condition=f"done({parent})")
    with pytest.raises(TockError, match=r"has work items, and a repetitive job cannot"):
        engine.api.modify(job, "calendar(*:*:*:*:0)")
    orphan = engine.api.submit(
        "render", name="o[1-2]", condition=f"done({parent})", terminate_orphan=True
    )
    engine.tick()
    engine.run_to_end(parent, 1)
    assert engine.state(orphan) == "EXIT"
    assert set(items(engine, orphan).values()) == {"EXIT"}


def test_unblock_of_a_pending_job_releases_its_held_items(engine: Engine) -> None:
    parent = engine.api.submit("true")
    job = engine.api.submit("render", name="r[1-3]", condition=f"done({parent})")
    engine.api.control(job, "block", work=2)
    engine.tick()
    assert items(engine, job)[2] == "PSUSP"
    engine.api.control(job, "unblock")
    engine.tick()
    assert items(engine, job)[2] == "PEND"


def test_a_running_job_killed_by_request_raises_killed(engine: Engine) -> None:
    load(engine, (1, "/cb/k.py", "killed-job-self"), (2, "/cb/f.py", "failed-job-self"))
    job = engine.api.submit("sleep 99")
    engine.tick()
    engine.started(job)
    engine.tick()
    engine.api.kill(job)
    engine.tick()
    engine.finished(job, 143)
    engine.tick()
    fired = engine.conn.execute("SELECT callback_id FROM callback_runs").fetchall()
    assert [row[0] for row in fired] == [1]
    assert engine.api.history(job)[-1].event == "killed"


def test_work_item_zero_can_be_named_by_an_action() -> None:
    from engine.callback_lib import qb

    assert qb.format_action("retry-work", 12, 0) == "retry-work 12 0\n"
    assert qb.parse_action("fail-work 12 0") == ("fail-work", 12, 0)
    with pytest.raises(ValueError, match="is not a job id"):
        qb.parse_action("retry 0")


def test_a_retry_lifts_an_earlier_kill_and_resume_releases_held_items(engine: Engine) -> None:
    job = engine.api.submit("render", name="r[1-3]%1")
    engine.tick()
    ((run_id, _),) = active_runs(engine, job)
    engine.append(journal.RUN_STARTED, job_id=job, run_id=run_id, payload={"pid": 7})
    engine.tick()
    engine.api.kill(job)
    engine.tick()
    engine.api.control(job, "retry", work=3)
    engine.tick()
    engine.append(journal.RUN_FINISHED, job_id=job, run_id=run_id, payload={"exit_code": 0})
    engine.tick()
    assert run_items(engine, job, {3: 1}) == [3]
    last = engine.api.history(job)
    assert [(e.event, e.work_index) for e in last[-2:]] == [("exit", 3), ("exit", None)]
    held = engine.api.submit("render", name="h[1-2]", condition=f"done({job})")
    engine.api.control(held, "block", work=1)
    engine.tick()
    engine.api.resume(held)
    engine.tick()
    assert items(engine, held)[1] == "PEND"


def test_indices_are_ascii_digits_of_bounded_length() -> None:
    from engine.workspec import parse_work_name

    assert not parse_work_name("r[\u0661-\u0663]").ok
    result = parse_work_name("r[" + "1" * 5000 + "]")
    assert result.diagnostics[0].startswith("-J:1:3: '11111111111111111111...' is above")
