"""User events end to end: the real daemon, real site event daemons, the real CLI."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from conftest import DaemonProcess, tock_cli, wait_until

from engine.api import Tock

Start = Callable[..., DaemonProcess]


def state(db: Path, job: int) -> str:
    out = tock_cli(db, "jobs", "-a", "--json", str(job)).stdout
    return str(json.loads(out)[0]["state"])


def submit(db: Path, condition: str, command: str = "true") -> int:
    out = tock_cli(db, "submit", "--json", "-w", condition, "--", command)
    return int(json.loads(out.stdout)["id"])


def test_the_released_job_sees_the_attribute(db_path: Path, tmp_path: Path, daemon: Start) -> None:
    daemon()
    out = tmp_path / "attrib.txt"
    job = submit(db_path, "event(dataready)", f'printf %s "$LSB_EVENT_ATTRIB" > {out}')
    result = tock_cli(db_path, "event", "start", "dataready", "--attr", "/data/in 42 files")
    assert result.stdout.strip() == "Event <dataready> is started (latched)."
    wait_until(lambda: state(db_path, job) == "DONE", 30, "the released job")
    assert out.read_text() == "/data/in 42 files"
    (event,) = json.loads(tock_cli(db_path, "events", "--json").stdout)
    assert set(event) == {"event", "owner", "status", "source", "attribute", "last_update"}
    assert (event["status"], event["source"], event["attribute"]) == (
        "active",
        "user",
        "/data/in 42 files",
    )


def _site_daemon(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return path


# Answers every SUB with a latched START; on the second SUB of a run it misbehaves as told.
SITE = """
import os, sys, time
mode = os.environ.get("MODE", "")
runs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runs")
with open(runs, "a") as f:
    f.write("run\\n")
first = open(runs).read().count("run") == 1
for line in sys.stdin:
    verb, _, name = line.strip().partition(" ")
    if verb != "SUB":
        continue
    if first and mode == "garbage":
        print("THIS IS NOT A LINE", flush=True)
        print("START", flush=True)
        print(f"START {name} sometype", flush=True)
    if first and mode == "exit":
        sys.exit(3)
    if first and mode == "hang":
        time.sleep(3600)
    print(f"START {name} latched from-site", flush=True)
"""


def _config(tmp_path: Path, script: Path) -> Path:
    config = tmp_path / "eventd.toml"
    config.write_text(f'max_running = 4\nevent_daemons = ["{script}"]\n')
    return config


def _run_site_daemon_case(db: Path, tmp_path: Path, daemon: Start, mode: str) -> DaemonProcess:
    site_dir = tmp_path / f"site-{mode}"
    site_dir.mkdir(mode=0o755)
    script = _site_daemon(site_dir / "eventd.py", SITE)
    os.environ["MODE"] = mode
    try:
        proc = daemon(config=_config(tmp_path, script))
    finally:
        del os.environ["MODE"]
    return proc


def test_a_site_daemon_that_prints_garbage_is_survived(
    db_path: Path, tmp_path: Path, daemon: Start
) -> None:
    proc = _run_site_daemon_case(db_path, tmp_path, daemon, "garbage")
    job = submit(db_path, "event(feed)")
    wait_until(lambda: state(db_path, job) == "DONE", 30, "the START after the garbage")
    log = proc.log.read_text()
    assert "THIS IS NOT A LINE" in log
    assert proc.process.poll() is None


def test_a_site_daemon_that_exits_is_restarted_and_works_again(
    db_path: Path, tmp_path: Path, daemon: Start
) -> None:
    proc = _run_site_daemon_case(db_path, tmp_path, daemon, "exit")
    job = submit(db_path, "event(feed)")
    wait_until(lambda: state(db_path, job) == "DONE", 60, "the restarted site daemon")
    assert "exited" in proc.log.read_text()
    assert (tmp_path / "site-exit" / "runs").read_text().count("run") >= 2


def test_a_site_daemon_that_hangs_does_not_stop_the_tick(
    db_path: Path, tmp_path: Path, daemon: Start
) -> None:
    proc = _run_site_daemon_case(db_path, tmp_path, daemon, "hang")
    waiting = submit(db_path, "event(feed)")
    # The tick goes on: a plain chain runs while the site daemon sleeps.
    chain = []
    for i in range(5):
        args = ["submit", "--json", "-J", f"c{i}"] + (["-w", f"done(c{i - 1})"] if i else [])
        chain.append(int(json.loads(tock_cli(db_path, *args, "--", "true").stdout)["id"]))
    wait_until(lambda: all(state(db_path, j) == "DONE" for j in chain), 30, "the chain")
    assert state(db_path, waiting) == "PEND"
    # Its input fills up (held jobs subscribe 700 long names, ~140 KiB of SUB lines) and
    # stays unread: it is killed as a daemon that hangs (after 10 s), restarted (its SUB
    # replay is larger than a pipe holds), and the event works.
    api = Tock(db_path)
    try:
        for i in range(700):
            api.submit("true", condition=f"event(n{i:03d}{'x' * 190})", hold=True, env={})
    finally:
        api.close()
    wait_until(lambda: state(db_path, waiting) == "DONE", 60, "the restarted site daemon")
    assert "not reading its input" in proc.log.read_text()
    assert proc.process.poll() is None


def test_a_site_daemon_killed_by_hand_comes_back(
    db_path: Path, tmp_path: Path, daemon: Start
) -> None:
    proc = _run_site_daemon_case(db_path, tmp_path, daemon, "hang")
    waiting = submit(db_path, "event(feed)")
    wait_until(lambda: bool(_site_pids("site-hang")), 30, "the site daemon")
    time.sleep(0.2)  # let it take its SUB and hang
    for pid in _site_pids("site-hang"):
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: state(db_path, waiting) == "DONE", 60, "the restarted site daemon")
    assert proc.process.poll() is None


def _site_pids(marker: str) -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and _is_site_daemon(int(p), marker)]


def _is_site_daemon(pid: int, marker: str) -> bool:
    try:
        return marker in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def test_the_diskisfull_sample_drives_the_seed_example(
    db_path: Path, tmp_path: Path, daemon: Start
) -> None:
    sample = Path(__file__).resolve().parents[2] / "samples" / "eventd" / "diskisfull.py"
    config = tmp_path / "disk.toml"
    config.write_text(f'max_running = 4\nevent_daemons = ["{sample}"]\n')
    os.environ.update(DISKISFULL_PERCENT="0", DISKISFULL_INTERVAL="0.2")  # always "full"
    try:
        daemon(config=config)
    finally:
        for key in ("DISKISFULL_PERCENT", "DISKISFULL_INTERVAL"):
            del os.environ[key]
    out = tmp_path / "attrib"
    job = submit(db_path, "event(diskisfull)", f'printf %s "$LSB_EVENT_ATTRIB" > {out}')
    wait_until(lambda: state(db_path, job) == "DONE", 30, "the diskisfull START")
    mount, used = out.read_text().split()
    assert mount == "/" and used.endswith("%")
