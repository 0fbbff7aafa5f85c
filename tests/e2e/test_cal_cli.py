"""Calendars through the real `tock` command: `tock cal ...`, calendar conditions, repetitive
jobs, system calendars. Real processes and the real clock; every wait polls."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import TOCK, DaemonProcess, tock_cli, wait_until

from engine import journal

Start = Callable[..., DaemonProcess]
ME = pwd.getpwuid(os.geteuid()).pw_name
CAL_COLUMNS = ["CALENDAR_NAME", "OWNER", "STATUS", "DURATION", "NEXT_EVENT_TIME"]


# --- helpers ----------------------------------------------------------------------------


def submit(db: Path, *args: str) -> int:
    return int(json.loads(tock_cli(db, "submit", "--json", *args).stdout)["id"])


def job(db: Path, job_id: int) -> dict[str, Any]:
    """A job as `tock jobs ID --json` shows it (deleted jobs too)."""
    found: list[dict[str, Any]] = json.loads(tock_cli(db, "jobs", str(job_id), "--json").stdout)
    assert len(found) == 1, found
    return found[0]


def listed_jobs(db: Path) -> list[int]:
    return [item["id"] for item in json.loads(tock_cli(db, "jobs", "-a", "--json").stdout)]


def calendars(db: Path, *args: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = json.loads(tock_cli(db, "cal", "list", "--json", *args).stdout)
    return result


def history(db: Path, name: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = json.loads(tock_cli(db, "cal", "hist", "--json", name).stdout)
    return result


def state_changes(db: Path, job_id: int) -> list[str]:
    entries = json.loads(tock_cli(db, "hist", str(job_id), "--json").stdout)
    return [entry["to_state"] for entry in entries if entry["to_state"] is not None]


def refused(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """A refusal: exit 1, nothing on stdout, one line on stderr starting `tock: `."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.startswith("tock: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    return result.stderr


def moment(text: str | None) -> float:
    assert text is not None
    return datetime.fromisoformat(text).timestamp()


def next_utc(hour: int, minute: int) -> datetime:
    """The next time the UTC clock shows hour:minute."""
    now = datetime.now(UTC)
    candidate = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return candidate if candidate > now else candidate + timedelta(days=1)


def window_now() -> tuple[str, datetime]:
    """An expression whose time event covers now (local zone, as anonymous calendars use):
    the current minute and the next, so one minute roll-over before the daemon sees the job
    does not matter."""
    now = datetime.now()
    return f"*:*:*:{now.hour}:{now.minute}%2", now.replace(second=0, microsecond=0)


def an_hour_away() -> str:
    """An expression that is not active now and will not be during the test."""
    later = datetime.now() + timedelta(hours=1)
    return f"*:*:*:{later.hour}:{later.minute}"


def submit_in_window(db: Path, *args: str) -> tuple[int, str]:
    """Submit `true` waiting on an inline calendar active now; the job and the expression.

    If the clock went past the window's first minute and most of its second before the
    submission was accepted, that job is deleted and the submission made again with an
    expression computed afresh."""
    for _ in range(3):
        expression, start = window_now()
        job_id = submit(db, *args, "-w", f"calendar({expression})", "--", "true")
        if datetime.now() < start + timedelta(seconds=100):
            return job_id, expression
        tock_cli(db, "del", str(job_id))
    raise AssertionError("could not submit inside a time event")


def settled_after_runs(db: Path, job_id: int, runs: int) -> Callable[[], bool]:
    def check() -> bool:
        info = job(db, job_id)
        return bool(info["run_count"] == runs and info["state"] != "RUN")

    return check


# --- 1. acceptance: the next time events of an expression -----------------------------


def test_show_gives_the_next_three_events_of_an_expression(db_path: Path) -> None:
    result = tock_cli(
        db_path,
        "cal",
        "show",
        "*:*:*:8:30%30",
        "--next",
        "3",
        "--from",
        "2026-11-21T00:00",
        "--tz",
        "UTC",
        "--json",
    )
    assert json.loads(result.stdout) == [
        {"start": f"2026-11-{day}T08:30:00+00:00", "end": f"2026-11-{day}T09:00:00+00:00"}
        for day in (21, 22, 23)
    ]


# --- 2. the lifecycle of a calendar -----------------------------------------------------


def test_add_list_show_modify_delete_and_history(db_path: Path, daemon: Start) -> None:
    daemon()
    hour = (datetime.now(UTC).hour + 2) % 24  # never active while the test runs
    expression = f"*:*:*:{hour}:30%30"
    created = tock_cli(
        db_path, "cal", "add", "nightly", "-t", expression, "-d", "Nightly build", "--tz", "UTC"
    )
    assert (created.stdout, created.stderr) == ("Calendar <nightly> is created.\n", "")

    duplicate = tock_cli(db_path, "cal", "add", "nightly", "-t", "*:*:*:9:0", check=False)
    refused(duplicate, "Calendar <nightly>", "already exists")

    # `cal add` is accepted by the command itself: the listings show it at once.
    expected_start = next_utc(hour, 30)
    (info,) = calendars(db_path, "nightly")
    assert {key: info[key] for key in ("name", "owner", "status", "expression")} == {
        "name": "nightly",
        "owner": ME,
        "status": "inactive",
        "expression": expression,
    }
    assert (info["description"], info["timezone"]) == ("Nightly build", "UTC")
    assert moment(info["next_start"]) == expected_start.timestamp()
    assert moment(info["next_end"]) == (expected_start + timedelta(minutes=30)).timestamp()
    assert moment(info["last_end"]) <= datetime.now(UTC).timestamp()

    table = tock_cli(db_path, "cal", "list").stdout.splitlines()
    assert table[0].split() == CAL_COLUMNS
    row = table[1].split()
    assert row[:4] == ["nightly", ME, "inactive", "-"]
    local_start = datetime.fromtimestamp(expected_start.timestamp())
    assert " ".join(row[4:]) == local_start.strftime("%b %d %H:%M:%S")

    long = tock_cli(db_path, "cal", "list", "-l", "nightly").stdout.splitlines()
    assert long[0] == "CALENDAR: nightly"
    assert long[1] == " -- Nightly build"
    assert (
        f"OWNER: {ME}" in long[2] and "STATUS: inactive" in long[2] and "TIMEZONE: UTC" in long[2]
    )
    assert f"TIME_EXPR_LIST: {expression}" in long

    shown = json.loads(tock_cli(db_path, "cal", "show", "nightly", "--next", "2", "--json").stdout)
    assert [(moment(i["start"]), moment(i["end"])) for i in shown] == [
        (
            (expected_start + timedelta(days=d)).timestamp(),
            (expected_start + timedelta(days=d, minutes=30)).timestamp(),
        )
        for d in (0, 1)
    ]
    assert all(i["start"].endswith("+00:00") for i in shown)  # in the calendar's zone

    # Expressions that can never fire are accepted with a warning.
    never = tock_cli(db_path, "cal", "add", "feb30", "-t", "*:Feb:30:8:0")
    assert never.stdout == "Calendar <feb30> is created.\n"
    assert never.stderr.startswith("tock: warning: '*:Feb:30:8:0' can never fire")
    assert never.stderr.count("\n") == 1
    assert calendars(db_path, "feb30")[0]["next_start"] is None

    # A bad zone is refused, for add and for mod.
    bad_zone = tock_cli(
        db_path, "cal", "add", "x", "-t", "*:*:*:8:0", "--tz", "Mars/Base", check=False
    )
    refused(bad_zone, "--tz Mars/Base", "time zone")
    refused(
        tock_cli(db_path, "cal", "mod", "nightly", "--tz", "Mars/Base", check=False), "Mars/Base"
    )
    bad_mod = tock_cli(db_path, "cal", "mod", "nightly", "-t", "*:13:*:8:0", check=False)
    refused(bad_mod, "-t:1:3:", "month 13")
    refused(tock_cli(db_path, "cal", "mod", "nightly", check=False), "nothing to change")
    refused(tock_cli(db_path, "cal", "mod", "nosuch", "-d", "x", check=False), "Bad calendar name")

    # Modification: journaled by the command, applied by the daemon's tick.
    modified = tock_cli(
        db_path,
        "cal",
        "mod",
        "nightly",
        "-t",
        "*:*:*:12:0%1H",
        "-d",
        "Moved",
        "--tz",
        "Europe/Berlin",
    )
    assert (modified.stdout, modified.stderr) == ("Calendar <nightly> is modified.\n", "")
    wait_until(
        lambda: calendars(db_path, "nightly")[0]["expression"] == "*:*:*:12:0%1H",
        10,
        "the daemon to apply the modification",
    )
    (info,) = calendars(db_path, "nightly")
    assert (info["description"], info["timezone"]) == ("Moved", "Europe/Berlin")
    berlin = ZoneInfo("Europe/Berlin")
    start = datetime.fromtimestamp(moment(info["next_start"]), berlin)
    assert (start.hour, start.minute) == (12, 0)
    assert moment(info["next_end"]) - moment(info["next_start"]) == 3600
    shown = json.loads(tock_cli(db_path, "cal", "show", "nightly", "--next", "2", "--json").stdout)
    assert [datetime.fromisoformat(i["start"]).hour for i in shown] == [12, 12]  # Berlin's clock

    entries = history(db_path, "nightly")
    assert [(e["action"], e["user"]) for e in entries] == [("created", ME), ("modified", ME)]
    assert entries[0]["expression"] == expression
    assert (entries[1]["expression"], entries[1]["description"], entries[1]["timezone"]) == (
        "*:*:*:12:0%1H",
        "Moved",
        "Europe/Berlin",
    )

    # Deletion: the same, and then the name is gone.
    deleted = tock_cli(db_path, "cal", "del", "nightly")
    assert (deleted.stdout, deleted.stderr) == ("Calendar <nightly> is deleted.\n", "")
    wait_until(
        lambda: tock_cli(db_path, "cal", "list", "nightly", check=False).returncode == 1,
        10,
        "the daemon to apply the deletion",
    )
    gone = tock_cli(db_path, "cal", "list", "nightly", check=False)
    assert refused(gone) == "tock: nightly: Bad calendar name\n"
    refused(tock_cli(db_path, "cal", "show", "nightly", check=False), "Bad calendar name")
    assert [c["name"] for c in calendars(db_path)] == ["feb30"]

    entries = history(db_path, "nightly")
    assert [(e["action"], e["user"]) for e in entries] == [
        ("created", ME),
        ("modified", ME),
        ("deleted", ME),
    ]
    text = tock_cli(db_path, "cal", "hist").stdout
    assert f"Calendar <nightly@{ME}> created by user <{ME}>" in text
    assert f"Calendar <nightly@{ME}> modified by user or administrator <{ME}>" in text
    assert f"Calendar <nightly@{ME}> deleted by user or administrator <{ME}>." in text
    assert f"Calendar <feb30@{ME}> created" in text


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("*:13:*:8:0", "-t:1:3: month 13 is out of range"),
        ("*:*:Mon[6]:8:0", "-t:1:5: day 'Mon[6]': the week number must be 1 to 5"),
        ("*:*:~0:8:0", "-t:1:5: day '~0'"),
        ("*:*:*:8:0%5X", "-t:1:11: duration '%5X': unit must be D, H or M"),
    ],
)
def test_a_bad_expression_names_its_column_and_field(
    db_path: Path, expression: str, message: str
) -> None:
    result = tock_cli(db_path, "cal", "add", "bad", "-t", expression, check=False)
    assert refused(result).startswith(f"tock: {message}")
    assert calendars(db_path, "-u", "all") == []  # nothing was created


def test_a_deleted_calendars_name_can_be_used_again(db_path: Path) -> None:
    tock_cli(db_path, "cal", "add", "reused", "-t", "*:*:*:8:0")
    tock_cli(db_path, "cal", "del", "reused")
    tock_cli(db_path, "daemon", "--exit-when-idle")  # applies the deletion
    refused(tock_cli(db_path, "cal", "list", "reused", check=False), "Bad calendar name")
    again = tock_cli(db_path, "cal", "add", "reused", "-t", "*:*:*:9:0", check=False)
    assert (again.returncode, again.stdout, again.stderr) == (
        0,
        "Calendar <reused> is created.\n",
        "",
    )
    assert [c["expression"] for c in calendars(db_path, "reused")] == ["*:*:*:9:0"]


# --- 3. another user's calendars ---------------------------------------------------------


@pytest.fixture
def shared_db() -> Iterator[Path]:
    """A database another OS user can reach (pytest's tmp_path is private to root)."""
    directory = Path(tempfile.mkdtemp(prefix="tock-cal-shared-"))
    directory.chmod(0o777)
    yield directory / "tock.db"
    shutil.rmtree(directory)


def as_nobody(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        "setpriv",
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        TOCK,
        "--db",
        str(db),
        *args,
    ]
    env = {**os.environ, "HOME": "/nonexistent", "XDG_CONFIG_HOME": "/nonexistent"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


def calendar_requests(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        row = conn.execute(
            "SELECT count(*) FROM journal WHERE kind IN (?, ?)",
            (journal.CALENDAR_MODIFY, journal.CALENDAR_DELETE),
        ).fetchone()
    finally:
        conn.close()
    return int(row[0])


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as a second user")
def test_another_user_may_use_but_not_change_a_calendar(shared_db: Path) -> None:
    expression, _ = window_now()
    tock_cli(shared_db, "cal", "add", "plant", "-t", expression, "-d", "root's")
    for path in shared_db.parent.iterdir():
        path.chmod(0o666)

    for args in (("mod", "plant@root", "-d", "hacked"), ("del", "plant@root")):
        result = as_nobody(shared_db, "cal", *args)
        assert refused(result) == (
            "tock: Calendar <plant@root>: user nobody may not change a calendar of user root\n"
        )
    # A bare name is the caller's own calendar (or a system one): nobody has none.
    refused(as_nobody(shared_db, "cal", "mod", "plant", "-d", "hacked"), "Bad calendar name")
    assert calendar_requests(shared_db) == 0  # the refusals journaled nothing

    mine = as_nobody(shared_db, "cal", "list", "--json")
    assert (mine.returncode, json.loads(mine.stdout)) == (0, [])
    everyone = as_nobody(shared_db, "cal", "list", "-u", "all", "--json")
    assert everyone.returncode == 0, everyone.stderr
    assert [(c["name"], c["owner"], c["description"]) for c in json.loads(everyone.stdout)] == [
        ("plant", "root", "root's")
    ]
    shown = as_nobody(shared_db, "cal", "show", "plant@root", "--next", "1", "--json")
    assert shown.returncode == 0 and len(json.loads(shown.stdout)) == 1, shown.stderr

    refused(
        as_nobody(shared_db, "submit", "-w", "calendar(plant)", "--", "true"), "no such calendar"
    )
    proof = shared_db.parent / "who"
    submitted = as_nobody(
        shared_db,
        "submit",
        "--json",
        "--cwd",
        "/",
        "-w",
        "calendar(plant@root)",
        "--",
        f"id -un >> {proof}",
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = int(json.loads(submitted.stdout)["id"])

    # root's daemon runs nobody's job in root's calendar's time event.
    process = DaemonProcess(shared_db, None)
    try:
        wait_until(settled_after_runs(shared_db, job_id, 1), 20, "nobody's job to run")
    finally:
        process.stop()
    info = job(shared_db, job_id)
    assert (info["user"], info["state"], info["condition"]) == (
        "nobody",
        "PEND",
        "calendar(plant@root)",
    )
    assert proof.read_text() == "nobody\n"
    (plant,) = calendars(shared_db, "plant")
    assert plant["description"] == "root's"  # unchanged


# --- 4. acceptance: a repetitive job with the real daemon and the real clock -------------


def test_a_calendar_job_runs_now_and_goes_back_to_pend(db_path: Path, daemon: Start) -> None:
    daemon()
    first, expression = submit_in_window(db_path, "-J", "nightly")
    second = submit(db_path, "-J", "after", "-w", "done(nightly)", "--", "true")

    wait_until(settled_after_runs(db_path, first, 1), 20, "the calendar job to run once")
    wait_until(settled_after_runs(db_path, second, 1), 20, "the dependent job to run once")

    one, two = job(db_path, first), job(db_path, second)
    assert (one["state"], one["exit_code"], one["condition"]) == (
        "PEND",
        0,
        f"calendar({expression})",
    )
    assert state_changes(db_path, first) == ["PEND", "RUN", "PEND"]  # never DONE
    assert (two["state"], two["exit_code"]) == ("PEND", 0)
    assert state_changes(db_path, second) == ["PEND", "RUN", "PEND"]
    assert moment(two["start_time"]) >= moment(one["end_time"])  # after the first job's run
    # One run per time event: the first job is still waiting for the next one.
    assert job(db_path, first)["run_count"] == 1
    assert listed_jobs(db_path) == [first, second]


# --- 5. deleting and killing repetitive jobs ---------------------------------------------


def test_delete_after_one_more_run(db_path: Path, daemon: Start) -> None:
    daemon()
    job_id, _ = submit_in_window(db_path, "-H")
    result = tock_cli(db_path, "del", str(job_id), "-n", "1")
    assert result.stdout == f"Job <{job_id}> will be deleted after 1 more run.\n"
    tock_cli(db_path, "resume", str(job_id))

    wait_until(lambda: job(db_path, job_id)["deleted"], 20, "the job's last run and deletion")
    info = job(db_path, job_id)
    assert (info["state"], info["run_count"], info["exit_code"]) == ("DONE", 1, 0)
    assert job_id not in listed_jobs(db_path)
    events = [
        e["event"] for e in json.loads(tock_cli(db_path, "hist", str(job_id), "--json").stdout)
    ]
    assert "delete_scheduled" in events and events[-1] == "deleted"


def test_kill_delete_n_and_catchup_refusals(db_path: Path) -> None:
    waiting = submit(db_path, "-w", f"calendar({an_hour_away()})", "--", "true")
    kill = tock_cli(db_path, "kill", str(waiting), check=False)
    assert refused(kill) == (
        f"tock: Job <{waiting}>: a repetitive job is killed only while it runs "
        "(tock del removes it)\n"
    )
    assert job(db_path, waiting)["state"] == "PEND"

    plain = submit(db_path, "-H", "--", "true")
    refused(
        tock_cli(db_path, "del", str(plain), "-n", "1", check=False),
        f"Job <{plain}>: -n applies to repetitive jobs only",
    )

    before = listed_jobs(db_path)
    catchup = tock_cli(db_path, "submit", "--catchup", "once", "--", "true", check=False)
    assert refused(catchup) == "tock: --catchup needs a calendar in the condition (-w)\n"
    assert listed_jobs(db_path) == before  # nothing was created
    with_calendar = submit(
        db_path, "--catchup", "once", "-w", f"calendar({an_hour_away()})", "--", "true"
    )
    assert job(db_path, with_calendar)["state"] == "PEND"


# --- 6. a calendar deleted under a waiting job ------------------------------------------


def test_a_job_on_a_deleted_calendar_stays_pending_and_says_why(
    db_path: Path, daemon: Start
) -> None:
    daemon()
    tock_cli(db_path, "cal", "add", "later", "-t", an_hour_away())
    job_id = submit(db_path, "-J", "waiter", "-w", "calendar(later)", "--", "true")
    wait_until(lambda: job(db_path, job_id)["dep_value"] == "false", 10, "a first evaluation")
    assert "deleted" not in (job(db_path, job_id)["pending_reason"] or "")

    tock_cli(db_path, "cal", "del", "later")

    def says_deleted(text: str | None) -> bool:
        return text is not None and f"later@{ME}" in text and "deleted" in text

    wait_until(
        lambda: says_deleted(job(db_path, job_id)["pending_reason"]),
        10,
        "the pending reason to name the deleted calendar",
    )
    info = job(db_path, job_id)
    assert (info["state"], info["run_count"]) == ("PEND", 0)
    long = tock_cli(db_path, "jobs", "-l", str(job_id)).stdout
    reasons = long.split("PENDING REASONS:", 1)[1]
    assert says_deleted(reasons.splitlines()[1]), long
    why = json.loads(tock_cli(db_path, "why", str(job_id), "--json").stdout)
    assert (why["expr"], why["value"]) == ("calendar(later)", "false")


def test_waiting_jobs_follow_a_modified_calendar_at_once(db_path: Path, daemon: Start) -> None:
    daemon()
    tock_cli(db_path, "cal", "add", "moving", "-t", an_hour_away())
    job_id = submit(db_path, "-w", "calendar(moving)", "--", "true")
    wait_until(lambda: job(db_path, job_id)["dep_value"] == "false", 10, "a first evaluation")
    assert job(db_path, job_id)["run_count"] == 0

    expression, _ = window_now()
    tock_cli(db_path, "cal", "mod", "moving", "-t", expression)
    wait_until(settled_after_runs(db_path, job_id, 1), 20, "the job to run in the new event")
    assert job(db_path, job_id)["state"] == "PEND"
    (info,) = calendars(db_path, "moving")
    assert (info["expression"], info["status"]) == (expression, "active")


# --- 7. system calendars ----------------------------------------------------------------

CALENDARS_FILE = """\
# Calendars of the plant, read by the daemon at start.
Begin Calendar
NAME        = Holiday
TIME_EVENTS = *:Dec:25:00:00%1D *:Jan:1:00:00%1D
DESCRIPTION = "Days the plant is closed"   # a comment
TIMEZONE    = Europe/Berlin
End Calendar

Begin Calendar
NAME        = broken
TIME_EVENTS = *:13:*:8:0
End Calendar

Begin Calendar
NAME        = weekdays
TIME_EVENTS = *:*:Mon-Fri:8:0%8H
End Calendar
"""


def test_system_calendars_are_loaded_and_read_only(db_path: Path, daemon: Start) -> None:
    path = db_path.with_name("lsb.calendars")
    path.write_text(CALENDARS_FILE)
    bad_line = CALENDARS_FILE.splitlines().index("TIME_EVENTS = *:13:*:8:0") + 1
    process = daemon()
    log = process.log.read_text()
    assert f"{path}:{bad_line}:17: month 13 is out of range" in log
    assert "skipped" in log

    wait_until(lambda: len(calendars(db_path)) == 2, 10, "the system calendars")
    listed = calendars(db_path)
    assert [(c["name"], c["owner"], c["kind"]) for c in listed] == [
        ("Holiday", "SYS", "system"),
        ("weekdays", "SYS", "system"),
    ]
    assert (listed[0]["description"], listed[0]["timezone"]) == (
        "Days the plant is closed",
        "Europe/Berlin",
    )
    assert listed[0]["expression"] == "*:Dec:25:00:00%1D *:Jan:1:00:00%1D"
    shown = tock_cli(
        db_path, "cal", "show", "Holiday", "--next", "2", "--from", "2026-11-21T00:00", "--json"
    )
    assert [i["start"] for i in json.loads(shown.stdout)] == [
        "2026-12-25T00:00:00+01:00",
        "2027-01-01T00:00:00+01:00",
    ]

    for args in (("mod", "Holiday", "-d", "x"), ("mod", "Holiday@SYS", "-d", "x")):
        refused(tock_cli(db_path, "cal", *args, check=False), "Holiday", "read-only")
    refused(tock_cli(db_path, "cal", "del", "weekdays", check=False), "weekdays", "read-only")
    add = tock_cli(db_path, "cal", "add", "Holiday", "-t", "*:*:*:8:0", check=False)
    refused(add, "Calendar <Holiday>", "reserved")
    assert [c["owner"] for c in calendars(db_path, "-u", "all")] == ["SYS", "SYS"]
    # Jobs name a system calendar by its bare name.
    job_id = submit(db_path, "-w", "calendar(Holiday)", "--", "true")
    assert job(db_path, job_id)["state"] == "PEND"


def test_the_calendars_file_can_be_configured(
    db_path: Path, tmp_path: Path, config_file: Path
) -> None:
    elsewhere = tmp_path / "site" / "calendars"
    elsewhere.parent.mkdir()
    elsewhere.write_text("Begin Calendar\nNAME = shift\nTIME_EVENTS = *:*:*:6:0%8H\nEnd Calendar\n")
    db_path.with_name("lsb.calendars").write_text(
        "Begin Calendar\nNAME = ignored\nTIME_EVENTS = *:*:*:6:0\nEnd Calendar\n"
    )
    config_file.write_text(f'calendars_file = "{elsewhere}"\n')
    env = {"TOCK_CONFIG": str(config_file)}
    ran = tock_cli(db_path, "daemon", "--exit-when-idle", env=env)
    assert str(elsewhere) in ran.stderr  # the daemon says which file it read
    assert [(c["name"], c["owner"]) for c in calendars(db_path)] == [("shift", "SYS")]


def test_a_system_calendar_put_back_in_the_file_returns(db_path: Path) -> None:
    path = db_path.with_name("lsb.calendars")
    one = "Begin Calendar\nNAME = a\nTIME_EVENTS = *:*:*:8:0\nEnd Calendar\n"
    two = one + "Begin Calendar\nNAME = b\nTIME_EVENTS = *:*:*:9:0\nEnd Calendar\n"
    for text, names in ((two, ["a", "b"]), (one, ["a"]), (two, ["a", "b"])):
        path.write_text(text)
        ran = tock_cli(db_path, "daemon", "--exit-when-idle")
        assert "could not be applied" not in ran.stderr, ran.stderr
        assert [c["name"] for c in calendars(db_path)] == names
