"""File events end to end: the real daemon, real inotify, real polling, the real CLI."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from conftest import DaemonProcess, tock_cli, wait_until

Start = Callable[..., DaemonProcess]


def state(db: Path, job: int) -> str:
    out = tock_cli(db, "jobs", "-a", "--json", str(job)).stdout
    return str(json.loads(out)[0]["state"])


def submit(db: Path, condition: str, *command: str) -> int:
    out = tock_cli(db, "submit", "--json", "-w", condition, "--", *(command or ("true",)))
    return int(json.loads(out.stdout)["id"])


def test_creating_the_file_starts_the_job(db_path: Path, tmp_path: Path, daemon: Start) -> None:
    daemon()
    target = tmp_path / "d" / "in.dat"
    target.parent.mkdir()
    job = submit(db_path, f"file(arrival({target}))")
    wait_until(lambda: tock_cli(db_path, "events", "--json").stdout.strip() != "[]")
    (event,) = json.loads(tock_cli(db_path, "events", "--json").stdout)
    assert event["event"] == f"arrival({target})"
    assert (event["status"], event["source"]) == ("inactive", "file")
    assert state(db_path, job) == "PEND"
    target.write_bytes(b"data")
    wait_until(lambda: state(db_path, job) == "DONE", 30, "the job to run")
    wait_until(lambda: tock_cli(db_path, "events", "--json").stdout.strip() == "[]")


def test_a_file_already_there_must_go_and_come_back(
    db_path: Path, tmp_path: Path, daemon: Start
) -> None:
    daemon()
    target = tmp_path / "in.dat"
    target.write_bytes(b"old")
    job = submit(db_path, f"file(arrival({target}))")
    marker = submit(db_path, f"file(exist({target}))")  # proof the daemon watches it
    wait_until(lambda: state(db_path, marker) == "DONE", 30, "the exist() job")
    target.write_bytes(b"rewritten")
    time.sleep(0.2)  # a modification is not an arrival; give the watcher time to say so
    assert state(db_path, job) == "PEND"
    target.unlink()
    # Seen absent first: a name re-created within the watcher's batching may get the same
    # inode back, and is then a modification (docs/files.md, Limits).
    wait_until(lambda: not _recorded_present(db_path, target), 30, "the deletion")
    target.write_bytes(b"new")
    wait_until(lambda: state(db_path, job) == "DONE", 30, "the arrival")


def _recorded_present(db: Path, path: Path) -> bool:
    conn = sqlite3.connect(db)
    try:
        found = conn.execute(
            "SELECT present FROM file_paths WHERE path = ?", (str(path),)
        ).fetchone()
    finally:
        conn.close()
    return bool(found and found[0])


def test_a_file_in_a_directory_that_does_not_exist_yet(
    db_path: Path, tmp_path: Path, daemon: Start
) -> None:
    daemon()
    target = tmp_path / "a" / "b" / "in.dat"
    job = submit(db_path, f"file(arrival({target}))")
    wait_until(lambda: tock_cli(db_path, "events", "--json").stdout.strip() != "[]")
    target.parent.mkdir(parents=True)
    target.write_bytes(b"x")
    wait_until(lambda: state(db_path, job) == "DONE", 30, "the arrival below new directories")


def test_size_holds_once_the_file_grows_past_it(
    db_path: Path, tmp_path: Path, daemon: Start
) -> None:
    daemon()
    target = tmp_path / "grow"
    job = submit(db_path, f"file(exist({target}) && size({target}) > 1K)")
    with target.open("wb") as handle:
        handle.write(b"x" * 1000)
        handle.flush()
        time.sleep(0.2)  # the watcher reports the small file; the job must not start
        assert state(db_path, job) == "PEND"
        handle.write(b"x" * 100)
    wait_until(lambda: state(db_path, job) == "DONE", 30, "the size threshold")


def test_age_wakes_the_daemon_with_no_file_system_event(
    db_path: Path, tmp_path: Path, daemon: Start
) -> None:
    target = tmp_path / "old"
    target.write_bytes(b"x")
    almost = time.time() - 59.5
    os.utime(target, (almost, almost))
    daemon()
    job = submit(db_path, f"file(age({target}) > 1)")
    wait_until(lambda: state(db_path, job) == "DONE", 30, "the one-minute mark")
    runs = json.loads(tock_cli(db_path, "jobs", "-a", "--json", str(job)).stdout)
    assert runs[0]["start_time"] is not None


def test_polled_paths_are_seen_without_inotify(
    db_path: Path, tmp_path: Path, daemon: Start
) -> None:
    config = tmp_path / "poll.toml"
    config.write_text(f'file_poll_paths = ["{tmp_path}"]\nfile_poll_interval = 0.2\n')
    proc = daemon(config=config)
    target = tmp_path / "polled"
    job = submit(db_path, f"file(arrival({target}))")
    wait_until(lambda: tock_cli(db_path, "events", "--json").stdout.strip() != "[]")
    time.sleep(0.3)  # the first poll has seen it absent
    target.write_bytes(b"x")
    wait_until(lambda: state(db_path, job) == "DONE", 30, "the poll")
    assert "error" not in proc.log.read_text()


def test_an_invalid_clause_is_accepted_with_a_warning(db_path: Path) -> None:
    result = tock_cli(db_path, "submit", "-w", "file(exist(relative/path))", "--", "true")
    assert "Job <1> is submitted." in result.stdout
    assert "path 'relative/path' is not absolute" in result.stderr
    table = tock_cli(db_path, "events").stdout.splitlines()
    assert table[0].split() == ["EVENT", "OWNER", "STATUS", "SOURCE", "ATTRIBUTE", "LAST_UPDATE"]
    assert "invalid" in table[1] and "not absolute" in table[1]
