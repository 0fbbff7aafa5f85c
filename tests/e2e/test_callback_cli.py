"""Callbacks end to end: the seed's callbacks.conf with the samples, misbehaving callbacks
beside a chain of jobs, and a daemon killed while a callback runs. Real processes only."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

from conftest import DaemonProcess, tock_cli, wait_until

from engine.api import Tock

Start = Callable[..., DaemonProcess]
SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "callback"


def callback_dir(tmp_path: Path, files: dict[str, str] | None = None) -> Path:
    """A callback directory only its owner can write (as Tock requires)."""
    directory = tmp_path / "callback"
    if files is None:
        shutil.copytree(SAMPLES, directory)
    else:
        directory.mkdir()
        for name, text in files.items():
            (directory / name).write_text(text)
    directory.chmod(0o755)
    for path in directory.iterdir():
        path.chmod(0o644)
    return directory


def start(daemon: Start, tmp_path: Path, directory: Path) -> DaemonProcess:
    config = tmp_path / "cb.toml"
    config.write_text(f'max_running = 4\nuniversal_callback_path = "{directory}"\n')
    return daemon(config=config)


def runs(db: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return [
            tuple(row)
            for row in conn.execute(
                "SELECT r.job_id, c.path, r.status FROM callback_runs AS r "
                "JOIN callbacks AS c ON c.id = r.callback_id ORDER BY r.id"
            )
        ]
    finally:
        conn.close()


def settled(db: Path, count: int) -> bool:
    found = runs(db)
    return len(found) >= count and all(status != "pending" for *_, status in found)


def test_the_seed_callbacks_conf_works_as_written(
    db_path: Path, tmp_path: Path, daemon: Start
) -> None:
    directory = callback_dir(tmp_path)
    start(daemon, tmp_path, directory)
    api = Tock(db_path)
    try:
        ok = api.submit("true", name="fine", env={})
        bad = api.submit("exit 4", name="broken", env={})
        frames = tmp_path / "frames.txt"
        array = api.submit(
            f'echo "$LSB_JOBINDEX $QB_FRAME_NUMBER" >> {frames}', name="frames[1-3]", env={}
        )
        api.wait([ok, bad, array], timeout=30)
    finally:
        api.close()
    # submitted.py 3 times, logFailuresToDB.py once, mail-status.qcb 3 times, checkWork.pl
    # once per work item
    wait_until(lambda: settled(db_path, 10), 30, "the callbacks to run")
    assert {status for *_, status in runs(db_path)} == {"done"}
    lines = (directory / "submitted.log").read_text().splitlines()
    assert sorted(line.split()[-3:] for line in lines) == [  # runs overlap: any order
        [str(ok), "fine", "submitted"],
        [str(bad), "broken", "submitted"],
        [str(array), "frames", "submitted"],
    ]
    assert sorted(frames.read_text().splitlines()) == ["1 1", "2 2", "3 3"]
    work = sorted((directory / "work.log").read_text().splitlines())
    assert work == [f"job {array} work {index} done-work-self-*" for index in (1, 2, 3)]
    conn = sqlite3.connect(directory / "failures.db")
    try:
        failures = conn.execute("SELECT job_id, name, exit_code, trigger FROM failures").fetchall()
    finally:
        conn.close()
    assert failures == [(bad, "broken", 4, "failed-job-self")]
    mails = sorted((db_path.parent / "mail").iterdir())
    assert len(mails) == 3
    history = tock_cli(db_path, "hist", str(bad)).stdout
    assert "logFailuresToDB.py on failed-job-self: done (exit 0)" in history


BAD = {
    "callbacks.conf": (
        "exits.py = done-job-self\nloops.py = done-job-self\nsleeps.py = done-job-self\n"
    ),
    "exits.py": "import sys\nsys.exit(3)\n",
    "loops.py": "while True:\n    pass\n",
    "sleeps.py": "import os\nos.system('sleep 100')\n",
}


def test_misbehaving_callbacks_leave_a_chain_running(
    db_path: Path, tmp_path: Path, daemon: Start
) -> None:
    proc = start(daemon, tmp_path, callback_dir(tmp_path, BAD))
    api = Tock(db_path)
    try:
        ids: list[int] = []
        for i in range(100):
            condition = f"done({ids[-1]})" if ids else None
            ids.append(api.submit("true", name=f"link{i}", condition=condition, env={}))
        finished = api.wait(ids, timeout=120)
    finally:
        api.close()
    assert {job.state for job in finished} == {"DONE"}
    # The callbacks are still looping and sleeping (or queued behind them), each in its
    # own process, while the whole chain has finished: the tick never waited on them.
    pending = [row for row in runs(db_path) if row[2] == "pending"]
    assert len(pending) > 100
    # The endless loops got their CPU burst, then a small share of a core: the jobs'
    # processes were not starved (bench/callback_chain.py measures the chain's speed).
    loops = _running("loops.py", tmp_path)
    assert loops
    for pid in loops:
        used, age = _cpu_and_age(pid)
        assert used <= 0.1 + 0.05 * age + 0.3, (pid, used, age)
    # A daemon killed outright takes its callbacks with it: none loops on for ever.
    proc.stop(signal.SIGKILL)
    wait_until(lambda: not _running("loops.py", tmp_path), 30, "the callbacks to die")


def _cpu_and_age(pid: int) -> tuple[float, float]:
    """CPU seconds a process has used, and seconds since it started."""
    tick = os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return (int(fields[11]) + int(fields[12])) / tick, uptime - int(fields[19]) / tick


def _running(name: str, under: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if name in cmdline and str(under) in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def test_a_callback_interrupted_by_a_killed_daemon_runs_again_and_counts_once(
    db_path: Path, tmp_path: Path, daemon: Start
) -> None:
    marker = tmp_path / "ran.txt"
    files = {
        "callbacks.conf": "slow.py = done-job-self\n",
        "slow.py": f"import time\nopen({str(marker)!r}, 'a').write('run\\n')\ntime.sleep(1)\n",
    }
    directory = callback_dir(tmp_path, files)
    first = start(daemon, tmp_path, directory)
    api = Tock(db_path)
    try:
        job = api.submit("true", env={})
        api.wait([job], timeout=30)
    finally:
        api.close()
    wait_until(marker.exists, 30, "the callback to start")
    first.stop(signal.SIGKILL)  # after the transition, before the callback's result
    assert runs(db_path) == [(job, str(directory / "slow.py"), "pending")]
    start(daemon, tmp_path, directory)
    wait_until(lambda: settled(db_path, 1), 30, "the callback to run again")
    assert runs(db_path) == [(job, str(directory / "slow.py"), "done")]
    assert marker.read_text().count("run") >= 2, "at least once: it ran again"
    rows = json.loads(tock_cli(db_path, "hist", "--json", str(job)).stdout)
    assert [row["event"] for row in rows].count("callback") == 1


def test_callbacks_check_names_the_bad_line_and_keeps_the_good(
    db_path: Path, tmp_path: Path
) -> None:
    directory = callback_dir(tmp_path)
    good = tock_cli(db_path, "callbacks", "check", str(directory))
    assert good.stdout.count(" = ") == 4
    with (directory / "callbacks.conf").open("a") as conf:
        conf.write("notes.txt = done-job-self\n")
    bad = tock_cli(db_path, "callbacks", "check", str(directory), check=False)
    assert bad.returncode == 1
    assert f"{directory}/callbacks.conf:11:1: unknown extension '.txt'" in bad.stderr
    assert bad.stdout.count(" = ") == 4
    (directory / "submitted.py").chmod(0o666)
    refused = tock_cli(db_path, "callbacks", "check", str(directory), check=False)
    assert refused.returncode == 1 and "submitted.py" in refused.stderr
