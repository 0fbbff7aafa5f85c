"""The real daemon, real launcher, real wrappers and real jobs."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from conftest import TOCK, DaemonProcess, tock_cli, wait_until

from engine import wake
from engine.api import Tock
from engine.config import Config
from engine.queries import JobInfo

Start = Callable[..., DaemonProcess]


def api_for(db: Path, max_running: int = 4) -> Tock:
    return Tock(db, config=Config(max_running=max_running))


def background_pid(path: Path) -> int:
    """The pid a job wrote with `echo $! > path`, once it has."""
    wait_until(lambda: path.exists() and path.read_text().strip() != "", 30, "the job to start")
    return int(path.read_text())


def gone(pid: int) -> bool:
    """Exited (a zombie waiting for its reaper counts)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def states(api: Tock, ids: list[int]) -> list[str]:
    return [job.state for job in api.jobs(ids)]


def test_a_chain_runs_through_the_daemon(db_path: Path, daemon: Start) -> None:
    api = api_for(db_path)
    ids: list[int] = []
    for i in range(20):
        condition = f"done({ids[-1]})" if ids else None
        ids.append(api.submit("true", name=f"link{i}", condition=condition, env={}))
    process = daemon("--exit-when-idle")
    assert process.process.wait(timeout=60) == 0
    assert states(api, ids) == ["DONE"] * 20
    starts = [job.start_time or 0.0 for job in api.jobs(ids)]
    assert all(starts) and starts == sorted(starts)  # in order, one after the other


def test_sigkill_of_the_daemon_loses_no_job_and_runs_none_twice(
    db_path: Path, tmp_path: Path, daemon: Start, config_file: Path
) -> None:
    config_file.write_text("max_running = 20\n")
    api = api_for(db_path, 20)
    marks = tmp_path / "marks"
    marks.mkdir()
    gate = tmp_path / "gate"
    # Each job records that it ran, waits for the gate, then exits with its own code.
    ids = [
        api.submit(
            f"echo ran >> {marks}/{i}; while [ ! -e {gate} ]; do sleep 0.02; done; exit {i % 4}",
            name=f"job{i}",
            env={},
        )
        for i in range(20)
    ]
    first = daemon()
    wait_until(lambda: len(list(marks.iterdir())) == 20, 60, "20 jobs to start")
    assert states(api, ids) == ["RUN"] * 20
    first.stop(signal.SIGKILL)
    gate.touch()  # the jobs finish while no daemon runs
    wait_until(
        lambda: (
            api.conn.execute("SELECT count(*) FROM journal WHERE kind = 'run_finished'").fetchone()[
                0
            ]
            == 20
        ),
        60,
        "the wrappers to report",
    )
    second = daemon("--exit-when-idle")
    assert second.process.wait(timeout=60) == 0
    jobs = api.jobs(ids)
    assert [job.state for job in jobs] == ["DONE" if i % 4 == 0 else "EXIT" for i in range(20)]
    assert [job.exit_code for job in jobs] == [i % 4 for i in range(20)]
    assert [(marks / str(i)).read_text() for i in range(20)] == ["ran\n"] * 20
    assert all(job.run_count == 1 for job in jobs)


def test_sigterm_stops_the_daemon_and_jobs_carry_on(
    db_path: Path, tmp_path: Path, daemon: Start
) -> None:
    api = api_for(db_path)
    gate = tmp_path / "gate"
    job = api.submit(f"while [ ! -e {gate} ]; do sleep 0.02; done", env={})
    first = daemon()
    wait_until(lambda: api.job(job).start_time is not None, 30, "the job to start")
    assert first.stop(signal.SIGTERM) == 0
    assert "stopped" in first.log.read_text()
    assert api.job(job).state == "RUN"
    gate.touch()
    second = daemon("--exit-when-idle")
    assert second.process.wait(timeout=60) == 0
    assert api.job(job).state == "DONE"


def test_one_daemon_per_database(db_path: Path, daemon: Start) -> None:
    first = daemon()
    second = tock_cli(db_path, "daemon", check=False)
    assert second.returncode == 1
    assert second.stderr.startswith("tock: a daemon is already running")
    assert f"pid {first.pid}" in second.stderr


def test_a_submit_wakes_the_idle_daemon_which_uses_no_cpu(db_path: Path, daemon: Start) -> None:
    process = daemon()
    api = api_for(db_path)
    first = api.submit("true", env={})
    api.wait([first], timeout=30)

    def cpu_ticks() -> int:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime, in 10 ms clock ticks

    before = cpu_ticks()
    time.sleep(0.5)  # idle: the daemon must be blocked in select(), not polling
    assert cpu_ticks() - before <= 1
    job = api.submit("true", env={})
    api.wait([job], timeout=10)  # woken at once, not on a polling interval


def kill_a_running_job(api: Tock, pids: Path, command: str, daemon: Start) -> tuple[JobInfo, int]:
    """Run a job that writes a background child's pid to `pids`, kill it, wait for its end."""
    job = api.submit(command, env={})
    daemon()
    child = background_pid(pids)
    api.kill(job)
    (info,) = api.wait([job], timeout=30)
    return info, child


def test_kill_reaches_the_whole_running_job(db_path: Path, tmp_path: Path, daemon: Start) -> None:
    api = api_for(db_path)
    pids = tmp_path / "pids"
    info, child = kill_a_running_job(api, pids, f"sleep 300 & echo $! > {pids}; wait", daemon)
    assert info.state == "EXIT"
    assert info.exit_reason == f"killed by user {api.user}"
    assert info.term_signal == signal.SIGTERM or info.exit_code == 143
    wait_until(lambda: gone(child), 10, "the background child to die")


def test_a_job_that_ignores_sigterm_is_killed_after_the_grace_period(
    db_path: Path, tmp_path: Path, daemon: Start, config_file: Path
) -> None:
    config_file.write_text("kill_grace_period = 0.2\n")
    api = api_for(db_path)
    ready = tmp_path / "ready"
    job = api.submit(f"trap '' TERM; touch {ready}; while :; do sleep 0.05; done", env={})
    daemon()
    wait_until(ready.exists, 30, "the job to start")
    api.kill(job)
    (info,) = api.wait([job], timeout=30)
    assert info.term_signal == signal.SIGKILL


def test_a_lost_wrapper_ends_its_job(db_path: Path, tmp_path: Path, daemon: Start) -> None:
    api = api_for(db_path)
    leader = tmp_path / "leader"
    job = api.submit(f"echo $$ > {leader}; exec sleep 300", env={})
    daemon()
    group = background_pid(leader)  # the job's shell leads its process group
    try:
        wrapper = api.conn.execute("SELECT pid FROM job_runs WHERE job_id = ?", (job,)).fetchone()
        os.kill(wrapper[0], signal.SIGKILL)
        (info,) = api.wait([job], timeout=30)
        assert info.state == "EXIT"
        assert info.exit_reason is not None and info.exit_reason.startswith("lost:")
    finally:
        os.killpg(group, signal.SIGKILL)  # a lost wrapper's job is nobody's now


def test_the_launcher_is_restarted_if_it_dies(db_path: Path, daemon: Start) -> None:
    process = daemon()
    api = api_for(db_path)
    first = api.submit("true", env={})
    api.wait([first], timeout=30)
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    assert children, "the daemon has a launcher child"
    for child in children:
        os.kill(int(child), signal.SIGKILL)
    wait_until(lambda: "starting a new launcher" in process.log.read_text(), 30, "a restart")
    job = api.submit("echo again", env={})
    (info,) = api.wait([job], timeout=30)
    assert info.state == "DONE"


def test_environment_output_and_working_directory(
    db_path: Path, tmp_path: Path, daemon: Start
) -> None:
    api = api_for(db_path)
    workdir = tmp_path / "work"
    workdir.mkdir()
    out = tmp_path / "out.%J.txt"
    job = api.submit(
        'echo "$LSB_JOBID|$LSB_JOBNAME|${LSB_EVENT_ATTRIB-unset}|$PWD|$GREETING"; echo oops >&2',
        name="envcheck",
        cwd=workdir,
        stdout=str(out),
        env={"GREETING": "hello", "PATH": os.environ["PATH"]},
    )
    daemon("--exit-when-idle").process.wait(timeout=60)
    text = (tmp_path / f"out.{job}.txt").read_text()
    assert text == f"{job}|envcheck||{workdir}|hello\noops\n"  # -o without -e takes stderr too


def test_a_missing_working_directory_fails_the_start_clearly(
    db_path: Path, tmp_path: Path, daemon: Start
) -> None:
    api = api_for(db_path)
    job = api.submit("true", cwd=tmp_path / "nowhere", env={})
    daemon("--exit-when-idle").process.wait(timeout=60)
    info = api.job(job)
    assert info.state == "EXIT"
    assert info.exit_reason == (
        f"start failed: cannot change to directory {tmp_path / 'nowhere'}: "
        "No such file or directory"
    )


def test_orphan_grace_period_through_the_daemon(
    db_path: Path, daemon: Start, config_file: Path
) -> None:
    config_file.write_text("orphan_grace_period = 0.3\n")
    api = api_for(db_path)
    failing = api.submit("false", name="failing", env={})
    orphan = api.submit("true", condition="done(failing)", env={})
    process = daemon("--exit-when-idle")
    assert process.process.wait(timeout=60) == 0  # it waited for the timer, then went idle
    assert api.job(failing).state == "EXIT"
    info = api.job(orphan)
    assert info.state == "EXIT"
    assert "orphan" in (info.exit_reason or "")


def test_a_locked_database_does_not_kill_the_daemon(
    db_path: Path, daemon: Start, config_file: Path
) -> None:
    config_file.write_text("busy_timeout = 0.1\n")
    process = daemon()
    api = api_for(db_path)
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO journal (time, kind, user) VALUES (unixepoch(), 'clock', 'test')")
    wake.poke(api.layout.wake_fifo)  # the daemon wakes and finds the database locked
    wait_until(lambda: "locked" in process.log.read_text(), 30, "the daemon to hit the lock")
    holder.execute("COMMIT")
    holder.close()
    job = api.submit("true", env={})
    (info,) = api.wait([job], timeout=30)
    assert info.state == "DONE"
    assert process.process.poll() is None


def test_after_a_crash_that_took_the_jobs_too_a_new_daemon_settles_them(
    db_path: Path, tmp_path: Path, daemon: Start
) -> None:
    """As after a reboot: daemon, wrapper and job all gone. Nothing else will ever happen,
    so the new daemon must act on what it finds by itself, and then be idle."""
    api = api_for(db_path)
    ready = tmp_path / "ready"
    job = api.submit(f"touch {ready}; exec sleep 1000", env={})
    first = daemon()
    wait_until(ready.exists, 30, "the job to start")
    wait_until(lambda: api.job(job).start_time is not None, 30, "the start to be recorded")
    first.stop(signal.SIGKILL)
    run = api.conn.execute("SELECT pid FROM job_runs WHERE job_id = ?", (job,)).fetchone()
    wrapper = int(run[0])
    pgid = int(Path(f"/proc/{wrapper}/task/{wrapper}/children").read_text().split()[0])
    os.kill(wrapper, signal.SIGKILL)
    os.killpg(pgid, signal.SIGKILL)
    second = daemon("--exit-when-idle")
    assert second.process.wait(timeout=60) == 0
    info = api.job(job)
    assert info.state == "EXIT"
    assert (info.exit_reason or "").startswith("lost:")


def test_a_kill_takes_the_whole_process_group_even_after_the_shell_exits(
    db_path: Path, tmp_path: Path, daemon: Start, config_file: Path
) -> None:
    config_file.write_text("kill_grace_period = 0.3\n")
    api = api_for(db_path)
    pids = tmp_path / "pids"
    command = f"(trap '' TERM; exec sleep 777) & echo $! > {pids}; sleep 778"
    info, stubborn = kill_a_running_job(api, pids, command, daemon)
    assert info.state == "EXIT"
    wait_until(lambda: gone(stubborn), 10, "the stubborn child to get SIGKILL")


def test_a_database_locked_at_start_up_delays_the_daemon_only(
    db_path: Path, daemon: Start, config_file: Path
) -> None:
    config_file.write_text("busy_timeout = 0.1\n")
    api = api_for(db_path)
    api.submit("true", env={})  # the database exists
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    log = db_path.with_name("daemon.log")
    env = {**os.environ, "TOCK_CONFIG": str(config_file)}
    with log.open("a") as out:
        # Started by hand: the fixture waits for "started on", which the lock delays.
        child = subprocess.Popen(
            [TOCK, "--db", str(db_path), "daemon", "--exit-when-idle"], stdout=out, stderr=out,
            env=env,
        )  # fmt: skip
    try:
        wait_until(lambda: "locked" in log.read_text(), 30, "the daemon to meet the lock")
        assert child.poll() is None  # still alive, retrying
        holder.execute("ROLLBACK")
        assert child.wait(timeout=60) == 0
    finally:
        holder.close()
        if child.poll() is None:
            child.kill()
    assert api.jobs(include_finished=True)[0].state == "DONE"
