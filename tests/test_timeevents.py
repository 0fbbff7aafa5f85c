"""Time events in the tick: repetitive jobs, one run per instance, missed and catch-up runs,
calendar changes, with a real database and the injected clock (no daemon, no sleeping)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import Engine

from engine import journal
from engine.api import Tock
from engine.clock import ManualClock
from engine.config import Config
from engine.errors import TockError
from engine.store import open_db
from engine.tick import run_until_caught_up

T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC).timestamp()  # a Saturday
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Inline calendars use the machine's zone, and reasons print local times: pin both."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def cal_engine(tock: Tock, clock: ManualClock) -> Engine:
    eng = Engine(tock, clock)
    eng.daemon_start()
    eng.tick()
    return eng


def at(eng: Engine, when: float) -> None:
    """Time passes: the daemon's timer writes a clock row, and the tick runs."""
    eng.clock.set(when)
    eng.append(journal.CLOCK)
    eng.tick()


def runs(eng: Engine, job_id: int) -> int:
    return int(eng.api.job(job_id).run_count)


def events(eng: Engine, job_id: int, event: str) -> list[str | None]:
    return [h.reason for h in eng.api.history(job_id) if h.event == event]


@pytest.fixture
def daily(tock: Tock) -> str:
    tock.calendar_add("daily", "*:*:*:8:30%30", "every morning", "UTC")
    return "daily"


def test_a_calendar_job_runs_once_per_instance_and_goes_back_to_pend(
    cal_engine: Engine, daily: str
) -> None:
    eng = cal_engine
    job = eng.api.submit("true", name="a", condition="calendar(daily)")
    eng.tick()
    assert eng.state(job) == "PEND" and eng.pending_actions() == []
    at(eng, T0 + 30 * MINUTE)  # 08:30, the instance starts
    assert eng.state(job) == "RUN"
    eng.run_to_end(job)
    assert eng.state(job) == "PEND"
    assert eng.api.job(job).exit_code == 0
    at(eng, T0 + 40 * MINUTE)  # same instance: no second run
    assert eng.state(job) == "PEND" and runs(eng, job) == 1
    assert "next time event: calendar <daily@alice> at 2026-11-22" in (
        eng.api.job(job).pending_reason or ""
    )
    at(eng, T0 + DAY + 30 * MINUTE)  # next morning
    assert eng.state(job) == "RUN" and runs(eng, job) == 2


def test_a_failed_run_also_goes_back_to_pend(cal_engine: Engine, daily: str) -> None:
    eng = cal_engine
    job = eng.api.submit("false", name="a", condition="calendar(daily)")
    at(eng, T0 + 30 * MINUTE)
    eng.run_to_end(job, exit_code=3)
    info = eng.api.job(job)
    assert info.state == "PEND" and info.exit_code == 3


def test_a_job_on_a_repetitive_job_runs_after_each_of_its_runs(
    cal_engine: Engine, daily: str
) -> None:
    eng = cal_engine
    parent = eng.api.submit("true", name="a", condition="calendar(daily)")
    child = eng.api.submit("true", name="b", condition="done(a)")
    eng.tick()
    assert eng.api.conn.execute("SELECT repetitive FROM jobs WHERE id = ?", (child,)).fetchone()[0]
    for day in range(3):
        at(eng, T0 + day * DAY + 30 * MINUTE)
        assert eng.state(parent) == "RUN"
        assert eng.state(child) == "PEND"
        eng.run_to_end(parent)
        assert eng.state(child) == "RUN", f"day {day}"
        eng.run_to_end(child)
        assert eng.state(child) == "PEND"
    assert runs(eng, child) == 3
    # A failed parent run does not satisfy done(): the child waits for the next success.
    at(eng, T0 + 3 * DAY + 30 * MINUTE)
    eng.run_to_end(parent, exit_code=1)
    assert eng.state(child) == "PEND" and runs(eng, child) == 3


def test_exit_and_ended_on_a_repetitive_parent(cal_engine: Engine, daily: str) -> None:
    eng = cal_engine
    parent = eng.api.submit("true", name="a", condition="calendar(daily)")
    on_exit = eng.api.submit("true", name="fix", condition="exit(a, > 1)")
    on_end = eng.api.submit("true", name="log", condition="ended(a)")
    at(eng, T0 + 30 * MINUTE)
    eng.run_to_end(parent, exit_code=2)
    assert eng.state(on_exit) == "RUN" and eng.state(on_end) == "RUN"
    eng.run_to_end(on_exit)
    eng.run_to_end(on_end)
    at(eng, T0 + DAY + 30 * MINUTE)
    eng.run_to_end(parent, exit_code=0)
    assert eng.state(on_exit) == "PEND" and eng.state(on_end) == "RUN"


def test_a_current_instance_runs_a_new_job_at_once(cal_engine: Engine) -> None:
    eng = cal_engine
    eng.clock.set(T0 + 30 * MINUTE + 30)  # 08:30:30
    job = eng.api.submit("true", condition="calendar(*:*:*:8:30%2)")
    eng.tick()
    assert eng.state(job) == "RUN"
    eng.run_to_end(job)
    assert eng.state(job) == "PEND"


def test_an_instance_that_ended_before_submission_is_not_the_jobs(
    cal_engine: Engine, daily: str
) -> None:
    eng = cal_engine
    eng.clock.set(T0 + 2 * HOUR)  # 10:00, today's instance is over
    job = eng.api.submit("true", condition="calendar(daily)", catchup="all")
    eng.tick()
    assert eng.state(job) == "PEND"
    at(eng, T0 + 3 * HOUR)
    assert runs(eng, job) == 0


def test_missed_instances_are_recorded_once_and_never_stampede(
    cal_engine: Engine, daily: str
) -> None:
    eng = cal_engine
    job = eng.api.submit("true", name="a", condition="calendar(daily)")
    eng.tick()
    # The daemon is down for ten days; it comes back at 07:00, outside any window.
    at(eng, T0 + 10 * DAY - HOUR)
    assert eng.state(job) == "PEND" and runs(eng, job) == 0
    missed = events(eng, job, "missed")
    assert len(missed) == 1
    assert "10 time events of calendar <daily@alice>" in (missed[0] or "")
    at(eng, T0 + 10 * DAY + 30 * MINUTE)
    assert eng.state(job) == "RUN" and runs(eng, job) == 1


def test_a_window_the_job_could_not_use_is_missed(cal_engine: Engine, daily: str) -> None:
    eng = cal_engine
    job = eng.api.submit("true", name="a", condition="calendar(daily)", hold=True)
    at(eng, T0 + 30 * MINUTE)
    at(eng, T0 + HOUR + MINUTE)  # the window closed while the job was held
    assert len(events(eng, job, "missed")) == 1
    eng.api.resume(job)
    eng.tick()
    assert eng.state(job) == "PEND", "no late run without --catchup"


def test_catchup_once_runs_one_late_run(cal_engine: Engine, daily: str) -> None:
    eng = cal_engine
    job = eng.api.submit("true", name="a", condition="calendar(daily)", catchup="once")
    eng.tick()
    at(eng, T0 + 3 * DAY + 2 * HOUR)  # four windows passed while down
    assert eng.state(job) == "RUN"
    assert "catch-up run" in (events(eng, job, "dispatched")[-1] or "")
    eng.run_to_end(job)
    assert eng.state(job) == "PEND" and runs(eng, job) == 1
    assert events(eng, job, "missed") == []


def test_catchup_all_runs_once_per_missed_instance(cal_engine: Engine, daily: str) -> None:
    eng = cal_engine
    job = eng.api.submit("true", name="a", condition="calendar(daily)", catchup="all")
    eng.tick()
    at(eng, T0 + 3 * DAY + 2 * HOUR)  # four windows (days 0 to 3) passed while down
    for _ in range(4):
        assert eng.state(job) == "RUN"
        eng.run_to_end(job)
    assert eng.state(job) == "PEND" and runs(eng, job) == 4


def test_del_n_removes_a_repetitive_job_after_n_more_runs(cal_engine: Engine, daily: str) -> None:
    eng = cal_engine
    job = eng.api.submit("true", name="a", condition="calendar(daily)")
    eng.api.delete(job, after_runs=2)
    eng.tick()
    for day in range(2):
        at(eng, T0 + day * DAY + 30 * MINUTE)
        eng.run_to_end(job)
    info = eng.api.job(job)
    assert info.state == "DONE" and info.deleted
    at(eng, T0 + 2 * DAY + 30 * MINUTE)
    assert runs(eng, job) == 2
    # The job's own calendar rows are gone with it; a named calendar stays.
    assert eng.api.calendars(["daily"])[0].name == "daily"


def test_del_n_is_refused_for_a_plain_job(cal_engine: Engine) -> None:
    job = cal_engine.api.submit("true")
    with pytest.raises(TockError, match="repetitive"):
        cal_engine.api.delete(job, after_runs=1)


def test_kill_requeues_a_running_repetitive_job_and_refuses_a_pending_one(
    cal_engine: Engine, daily: str
) -> None:
    eng = cal_engine
    job = eng.api.submit("sleep 100", name="a", condition="calendar(daily)")
    eng.tick()
    with pytest.raises(TockError, match="killed only while it runs"):
        eng.api.kill(job)
    at(eng, T0 + 30 * MINUTE)
    eng.started(job)
    eng.tick()
    eng.api.kill(job)
    eng.tick()
    assert ("signal", job) in eng.pending_actions()
    eng.finished(job, exit_code=143)
    eng.tick()
    info = eng.api.job(job)
    assert info.state == "PEND"
    assert "requeued" in (events(eng, job, "killed")[-1] or "")
    at(eng, T0 + DAY + 30 * MINUTE)
    assert eng.state(job) == "RUN"


def test_deleting_a_running_repetitive_job_ends_it_for_good(cal_engine: Engine, daily: str) -> None:
    eng = cal_engine
    job = eng.api.submit("sleep 100", name="a", condition="calendar(daily)")
    at(eng, T0 + 30 * MINUTE)
    eng.started(job)
    eng.api.delete(job)
    eng.tick()
    eng.finished(job, exit_code=143)
    eng.tick()
    assert eng.api.job(job).state == "EXIT"


def test_jobs_on_a_deleted_calendar_stay_pending_with_the_reason(
    cal_engine: Engine, daily: str
) -> None:
    eng = cal_engine
    job = eng.api.submit("true", name="a", condition="calendar(daily)", terminate_orphan=True)
    eng.api.calendar_delete("daily")
    eng.tick()
    info = eng.api.job(job)
    assert info.state == "PEND"
    assert "calendar deleted: <daily@alice>" in (info.pending_reason or "")
    at(eng, T0 + 30 * MINUTE)
    assert eng.state(job) == "PEND"
    with pytest.raises(TockError, match="no such calendar"):
        eng.api.submit("true", condition="calendar(daily)")


def test_a_modified_calendar_applies_at_once(cal_engine: Engine, daily: str) -> None:
    eng = cal_engine
    job = eng.api.submit("true", name="a", condition="calendar(daily)")
    eng.tick()
    eng.clock.set(T0 + 5 * MINUTE)
    eng.api.calendar_modify("daily", "*:*:*:8:0%1H")  # now covers 08:05
    eng.tick()
    assert eng.state(job) == "RUN"
    hist = eng.api.calendar_history("daily")
    assert [h.action for h in hist] == ["created", "modified"]
    assert hist[-1].expression == "*:*:*:8:0%1H"


def test_only_the_owner_or_an_admin_changes_a_calendar(
    cal_engine: Engine, daily: str, db_path: Path, clock: ManualClock
) -> None:
    bob = Tock(db_path, clock=clock, user="bob", config=Config())
    try:
        with pytest.raises(TockError, match="may not change"):
            bob.calendar_modify("daily@alice", "*:*:*:9:0")
        with pytest.raises(TockError, match="may not change"):
            bob.calendar_delete("daily@alice")
        # Bob can use Alice's calendar, by its full name only.
        job = bob.submit("true", condition="calendar(daily@alice)")
        with pytest.raises(TockError, match="no such calendar"):
            bob.submit("true", condition="calendar(daily)")
    finally:
        bob.close()
    # A forged journal row is refused by the tick too.
    cal_id = cal_engine.conn.execute("SELECT id FROM calendars WHERE name = 'daily'").fetchone()[0]
    cal_engine.append(journal.CALENDAR_DELETE, user="bob", payload={"calendar_id": cal_id})
    cal_engine.tick()
    assert cal_engine.api.calendar_history("daily")[-1].action == "refused"
    at(cal_engine, T0 + 30 * MINUTE)
    assert cal_engine.state(job) == "RUN"


def test_calendar_name_lookup_and_reserved_system_names(cal_engine: Engine, daily: str) -> None:
    eng = cal_engine
    with pytest.raises(TockError, match="already exists"):
        eng.api.calendar_add("daily", "*:*:*:9:0")
    eng.api.calendar_add("Daily", "*:*:*:9:0")  # names are case-sensitive
    load_system_calendars(eng, [("Holiday", "*:Nov:22:0:0%1D")])
    with pytest.raises(TockError, match="reserved"):
        eng.api.calendar_add("Holiday", "*:*:*:9:0")
    with pytest.raises(TockError, match="read-only"):
        eng.api.calendar_modify("Holiday", "*:*:*:9:0")
    names = {(c.name, c.owner) for c in eng.api.calendars()}
    assert names == {("daily", "alice"), ("Daily", "alice"), ("Holiday", "SYS")}


def load_system_calendars(eng: Engine, items: list[tuple[str, str]]) -> None:
    """What the daemon does at start with its calendars file."""
    from engine.calendar_store import CalendarDef, allocate, compile_spec, find_calendar
    from engine.store import write
    from engine.timeexpr import parse_time_exprs

    defs = []
    with write(eng.conn):
        for name, text in items:
            spec = parse_time_exprs(text).spec
            assert spec is not None
            row = find_calendar(eng.conn, name, "SYS")
            ids = (
                (int(row["id"]), int(row["event_id"]))
                if row is not None
                else (allocate(eng.conn, "calendar"), allocate(eng.conn, "event"))
            )
            defs.append(
                CalendarDef(
                    ids[0], ids[1], name, "SYS", "system", spec.text, compile_spec(spec), "UTC"
                ).payload()
            )
    eng.append(journal.SYSTEM_CALENDARS, payload={"source": "test", "calendars": defs})
    eng.tick()


def test_daily_except_holidays(cal_engine: Engine, daily: str) -> None:
    eng = cal_engine
    load_system_calendars(eng, [("Holiday", "*:Nov:22:0:0%1D")])
    job = eng.api.submit("true", name="a", condition="calendar(daily) && !calendar(Holiday)")
    holiday_only = eng.api.submit("true", name="h", condition="!calendar(Holiday)")
    eng.tick()
    assert eng.state(holiday_only) == "RUN", "a negated calendar alone is not repetitive"
    at(eng, T0 + 30 * MINUTE)
    assert eng.state(job) == "RUN"
    eng.run_to_end(job)
    at(eng, T0 + DAY + 30 * MINUTE)  # Nov 22 is a holiday
    assert eng.state(job) == "PEND"
    at(eng, T0 + 2 * DAY + 30 * MINUTE)
    assert eng.state(job) == "RUN" and runs(eng, job) == 2


def test_a_system_calendar_removed_from_the_file_is_deleted(cal_engine: Engine) -> None:
    eng = cal_engine
    load_system_calendars(eng, [("Holiday", "*:Nov:22:0:0%1D"), ("night", "*:*:*:22:0")])
    job = eng.api.submit("true", condition="calendar(night)")
    load_system_calendars(eng, [("Holiday", "*:Dec:25:0:0%1D")])
    assert [c.name for c in eng.api.calendars()] == ["Holiday"]
    assert eng.api.calendars()[0].expression == "*:Dec:25:0:0%1D"
    assert "calendar deleted: <night@SYS>" in (eng.api.job(job).pending_reason or "")


def test_a_static_true_leaf_does_not_make_a_repetitive_job_loop(
    cal_engine: Engine, daily: str
) -> None:
    eng = cal_engine
    base = eng.api.submit("true", name="x")
    eng.tick()
    eng.run_to_end(base)
    job = eng.api.submit("true", name="a", condition="calendar(daily) || done(x)")
    eng.tick()
    assert eng.state(job) == "RUN", "the first run may come from done(x)"
    eng.run_to_end(job)
    assert eng.state(job) == "PEND"
    at(eng, T0 + 10 * MINUTE)
    assert runs(eng, job) == 1
    at(eng, T0 + 30 * MINUTE)
    assert runs(eng, job) == 2


def test_an_inline_calendar_lives_and_dies_with_its_job(cal_engine: Engine) -> None:
    eng = cal_engine
    job = eng.api.submit("true", condition="calendar(*:*:*:9:0%10)")
    eng.tick()
    live = "SELECT count(*) FROM calendars WHERE job_id = ? AND deleted = 0"
    assert eng.conn.execute(live, (job,)).fetchone()[0] == 1
    assert eng.api.calendars(user="all") == [], "anonymous calendars are not listed"
    eng.api.modify(job, "calendar(*:*:*:10:0%10)")
    eng.tick()
    assert eng.conn.execute(live, (job,)).fetchone()[0] == 1
    at(eng, T0 + HOUR)
    assert eng.state(job) == "PEND", "the 09:00 calendar was replaced"
    at(eng, T0 + 2 * HOUR)
    assert eng.state(job) == "RUN"
    eng.api.delete(job)
    eng.tick()
    assert eng.conn.execute(live, (job,)).fetchone()[0] == 0


def test_instances_are_materialised_ahead_and_the_tick_knows_the_next_change(
    cal_engine: Engine, daily: str
) -> None:
    eng = cal_engine
    eng.api.submit("true", condition="calendar(daily)")
    eng.tick()
    row = eng.conn.execute(
        "SELECT next_change, horizon FROM calendars WHERE name = 'daily'"
    ).fetchone()
    assert row["next_change"] == T0 + 30 * MINUTE
    assert row["horizon"] >= T0 + DAY
    starts = [r[0] for r in eng.conn.execute("SELECT start FROM calendar_instances")]
    assert T0 + 30 * MINUTE in starts and T0 + DAY + 30 * MINUTE in starts
    at(eng, T0 + 30 * MINUTE)
    status = eng.conn.execute("SELECT status FROM v_calendars WHERE name = 'daily'").fetchone()
    assert status[0] == "active"
    assert eng.conn.execute("SELECT next_change FROM calendars WHERE name = 'daily'").fetchone()[
        0
    ] == (T0 + HOUR)
    # A week later, old instances are pruned and new ones written ahead.
    at(eng, T0 + 9 * DAY)
    oldest = eng.conn.execute("SELECT min(start) FROM calendar_instances").fetchone()[0]
    newest = eng.conn.execute("SELECT max(start) FROM calendar_instances").fetchone()[0]
    assert oldest >= T0 + 2 * DAY and newest >= T0 + 10 * DAY


def test_the_daemon_wakes_at_the_next_boundary_of_a_calendar_in_use(
    db_path: Path, cal_engine: Engine, daily: str
) -> None:
    from engine.daemon import Daemon

    daemon = Daemon(db_path, clock=cal_engine.clock, config=Config())
    daemon.conn = cal_engine.conn
    assert daemon.next_wakeup() is None, "no job waits on the calendar"
    cal_engine.api.submit("true", condition="calendar(daily)")
    cal_engine.tick()
    assert daemon.next_wakeup() == T0 + 30 * MINUTE


def test_replaying_the_journal_rebuilds_the_same_calendar_state(
    tmp_path: Path, cal_engine: Engine, daily: str
) -> None:
    eng = cal_engine
    parent = eng.api.submit("true", name="a", condition="calendar(daily)")
    eng.api.submit("true", name="b", condition="done(a) && calendar(*:*:*:8-9:0-59%1)")
    eng.api.calendar_add("weekly", "*:*:Mon:9:0%1H", timezone="Europe/Berlin")
    eng.tick()
    for day in range(3):
        at(eng, T0 + day * DAY + 30 * MINUTE)
        eng.run_to_end(parent)
        at(eng, T0 + day * DAY + 31 * MINUTE)
    eng.api.calendar_modify("daily", "*:*:*:8:45%15")
    at(eng, T0 + 4 * DAY)
    replay = open_db(tmp_path / "replay.db")
    rows = eng.conn.execute("SELECT * FROM journal ORDER BY id").fetchall()
    for row in rows:
        replay.execute(
            "INSERT INTO journal (id, time, kind, user, job_id, run_id, payload) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            tuple(row),
        )
    replay.commit()
    run_until_caught_up(replay, batch=3)

    def dump(conn: object) -> Iterator[list[tuple[object, ...]]]:
        for sql in (
            "SELECT id, state, run_count, repetitive, last_ok, pending_reason FROM jobs",
            "SELECT id, name, expression, horizon, next_change, current_start FROM calendars",
            "SELECT * FROM calendar_instances",
            "SELECT * FROM job_calendars",
            "SELECT id, status FROM events",
            "SELECT job_id, event, to_state, reason FROM history",
        ):
            yield [tuple(r) for r in conn.execute(sql)]  # type: ignore[attr-defined]

    assert list(dump(replay)) == list(dump(eng.conn))


def test_why_shows_each_calendar_and_its_next_event(cal_engine: Engine, daily: str) -> None:
    eng = cal_engine
    job = eng.api.submit("true", name="a", condition="calendar(daily) && calendar(*:*:*:9:0)")
    at(eng, T0 + 30 * MINUTE)
    tree = eng.api.why(job)
    assert tree is not None
    first, second = (child.calendar for child in tree.children)
    assert first is not None and second is not None
    assert first["calendar"] == "daily@alice" and first["status"] == "active"
    assert first["unused_event"] is True
    assert second["status"] == "inactive"
    assert second["next_start"].startswith("2026-11-21T09:00")


@pytest.mark.parametrize(
    ("expression", "until", "days"),
    [
        ("*:*:Mon:9:0%30", (12, 15), [(11, 23), (11, 30), (12, 7), (12, 14)]),
        (
            "*:*:Mon-Fri:9:0%30",
            (12, 1),
            [(11, 23), (11, 24), (11, 25), (11, 26), (11, 27), (11, 30)],
        ),
    ],
)
def test_calendars_with_gaps_longer_than_a_day_keep_firing(
    cal_engine: Engine, expression: str, until: tuple[int, int], days: list[tuple[int, int]]
) -> None:
    """A regression: the instance beyond the horizon was never written, so a weekly
    calendar fired once and then had no next boundary. Time jumps from boundary to
    boundary, as the daemon's timer does."""
    eng = cal_engine
    eng.api.calendar_add("sparse", expression, timezone="UTC")
    job = eng.api.submit("true", condition="calendar(sparse)")
    eng.tick()
    limit = datetime(2026, *until, tzinfo=UTC).timestamp()
    fired: list[tuple[int, int]] = []
    while True:
        when = eng.conn.execute(
            "SELECT next_change FROM calendars WHERE name = 'sparse'"
        ).fetchone()[0]
        assert when is not None, f"no next boundary after {fired}"
        if when >= limit:
            break
        at(eng, when)
        if eng.state(job) == "RUN":
            moment = datetime.fromtimestamp(when, UTC)
            fired.append((moment.month, moment.day))
            eng.run_to_end(job)
    assert fired == days


def test_killing_a_repetitive_job_before_its_wrapper_starts_requeues_it(
    cal_engine: Engine, daily: str
) -> None:
    eng = cal_engine
    job = eng.api.submit("true", name="a", condition="calendar(daily)")
    at(eng, T0 + 30 * MINUTE)
    assert eng.state(job) == "RUN"
    eng.api.kill(job)
    eng.tick()
    assert eng.state(job) == "PEND"
    assert "requeued" in (events(eng, job, "killed")[-1] or "")
    at(eng, T0 + DAY + 30 * MINUTE)
    assert eng.state(job) == "RUN"


def test_a_job_on_a_calendar_that_never_fires_says_so(cal_engine: Engine) -> None:
    eng = cal_engine
    job = eng.api.submit("true", condition="calendar(*:Feb:30:8:0)")
    eng.tick()
    assert "no time event to come: calendar <*:Feb:30:8:0>" in (
        eng.api.job(job).pending_reason or ""
    )


def test_why_names_a_deleted_calendar(cal_engine: Engine, daily: str) -> None:
    eng = cal_engine
    job = eng.api.submit("true", condition="calendar(daily)")
    eng.api.calendar_delete("daily")
    eng.tick()
    tree = eng.api.why(job)
    assert tree is not None and tree.calendar is not None
    assert tree.calendar["calendar"] == "daily@alice"
    assert tree.calendar["status"] == "deleted"
