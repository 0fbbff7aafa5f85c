"""The job wrapper: claims a run, runs the job, and reports its end into the journal.

It runs in a process of its own (forked by the launcher, in its own session), so a job
outlives the daemon: when the daemon is killed, wrappers carry on and their reports wait
in the journal for the next start. Standard library only, imported by `python -S`.

No job starts twice. The claim is the `run_started` journal row, and a unique index
allows one per run; a second wrapper for the same run (a re-dispatch after a crash) fails
to insert it and leaves without running anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TypeVar

from engine import journal, procs, store, wake

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Job:
    job_id: int
    run_id: int
    name: str
    user: str
    command: str
    cwd: str
    stdout: str
    stderr: str
    env: dict[str, str]
    event_attrib: str = ""
    work_index: int | None = None  # the work item this run is, None for a plain job


def while_busy(action: Callable[[], T]) -> T:
    """Retry while another process holds the write lock: a busy database may delay a job's
    start or its report, never lose them."""
    delay = 0.05
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def claim(conn: sqlite3.Connection, run_id: int) -> Job | None:
    """Record the start of this run, or return None if it is not ours to run."""
    return while_busy(lambda: _claim(conn, run_id))


def _claim(conn: sqlite3.Connection, run_id: int) -> Job | None:
    with store.write(conn):
        row = conn.execute(
            "SELECT r.status, r.event_attrib, r.work_index, j.* FROM job_runs AS r JOIN jobs AS j "
            "ON j.id = r.job_id "
            "WHERE r.id = ?",
            (run_id,),
        ).fetchone()
        if row is None or row["status"] != "dispatched":
            return None
        payload: dict[str, object] = {
            "pid": os.getpid(),
            "pid_start": procs.start_time(os.getpid()),
            "host": procs.hostname(),
        }
        try:
            journal.append(
                conn,
                time=time.time(),
                kind=journal.RUN_STARTED,
                user=row["user"],
                job_id=row["id"],
                run_id=run_id,
                payload=payload,
            )
        except sqlite3.IntegrityError:
            return None  # another wrapper claimed this run first
    index = row["work_index"]
    shown = "0" if index is None else str(index)  # LSF: %I is 0 outside an array
    return Job(
        job_id=row["id"],
        run_id=run_id,
        name=row["name"] if index is None else f"{row['name']}[{index}]",
        user=row["user"],
        command=row["command"],
        cwd=row["cwd"],
        stdout=row["stdout_path"].replace("%I", shown),
        stderr=row["stderr_path"].replace("%I", shown),
        env=json.loads(row["env"]),
        event_attrib=row["event_attrib"] or "",
        work_index=index,
    )


def job_environment(job: Job, db: Path) -> dict[str, str]:
    env = dict(job.env)
    env.update(
        LSB_JOBID=str(job.job_id),
        LSB_JOBNAME=job.name,
        LSB_EVENT_ATTRIB=job.event_attrib.replace("\0", ""),  # execve refuses a NUL
        TOCK_JOBID=str(job.job_id),
        TOCK_RUNID=str(job.run_id),
        TOCK_DB=str(db),
    )
    if job.work_index is not None:
        # LSF's array index, Qube's frame number: the same number for either habit.
        index = str(job.work_index)
        env.update(LSB_JOBINDEX=index, QB_FRAME_NUMBER=index, TOCK_WORK_INDEX=index)
    else:
        env["LSB_JOBINDEX"] = "0"  # LSF's value outside an array, as %I
        for name in ("QB_FRAME_NUMBER", "TOCK_WORK_INDEX"):
            env.pop(name, None)  # captured from a submitter that ran as an item
    return env


def _drop_privileges(user: str) -> None:
    """A daemon running as root runs each job as the user who submitted it."""
    if os.geteuid() != 0 or user == "root":
        return
    entry = pwd.getpwnam(user)
    os.initgroups(user, entry.pw_gid)
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)


def _exec_job(job: Job, env: dict[str, str], report: int) -> None:
    """In the forked child: set up the job's process and become /bin/sh. Never returns."""
    step = "prepare"
    try:
        os.setpgid(0, 0)  # the job's own process group: a kill reaches all of it
        for number in (*FORWARDED, signal.SIGPIPE, signal.SIGCHLD, signal.SIGALRM):
            signal.signal(number, signal.SIG_DFL)
        step = f"run as user {job.user}"
        _drop_privileges(job.user)
        step = "open /dev/null"
        null = os.open(os.devnull, os.O_RDONLY)
        step = f"open output file {job.stdout}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        out = os.open(job.stdout, flags, 0o644)
        step = f"open error file {job.stderr}"
        err = out if job.stderr == job.stdout else os.open(job.stderr, flags, 0o644)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        step = f"change to directory {job.cwd}"
        os.chdir(job.cwd)
        step = "execute /bin/sh"
        os.execve("/bin/sh", ["/bin/sh", "-c", job.command], env)
    except OSError as exc:
        os.write(report, f"cannot {step}: {exc.strerror}".encode())
    except Exception as exc:  # a child must never return into the caller's code
        os.write(report, f"cannot {step}: {exc}".encode())
    os._exit(127)


def spawn(job: Job, env: dict[str, str]) -> tuple[int, str | None]:
    """Start the job; (pid, None) or (pid, why it could not start)."""
    read_end, write_end = os.pipe()  # both close on exec: EOF means the exec happened
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _exec_job(job, env, write_end)
    os.close(write_end)
    # Also here, so a kill right after the fork finds the group; the child may have won.
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)
    chunks = []
    while chunk := os.read(read_end, 4096):
        chunks.append(chunk)
    os.close(read_end)
    error = b"".join(chunks).decode(errors="replace") or None
    return pid, error


class Supervisor:
    """Forwards a kill to the job's process group, then insists after a grace period."""

    def __init__(self, grace: float) -> None:
        self.pgid: int | None = None
        self.grace = grace
        self.killing = False
        self.deadline = 0.0
        for number in FORWARDED:
            signal.signal(number, self._terminate)
        signal.signal(signal.SIGALRM, self._insist)

    def attach(self, pgid: int) -> None:
        """The job exists now; a kill that arrived before it is carried out."""
        self.pgid = pgid
        if self.killing:
            self._start_killing()

    def _start_killing(self) -> None:
        self._send(signal.SIGTERM)
        self.deadline = time.monotonic() + self.grace
        signal.setitimer(signal.ITIMER_REAL, max(self.grace, 0.001))

    def finish(self) -> None:
        """After a kill, what is left of the job's process group (children that ignored
        SIGTERM while the shell exited) gets SIGKILL when the grace period ends."""
        if not self.killing or self.pgid is None:
            return
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return  # nothing left
        signal.setitimer(signal.ITIMER_REAL, 0)
        time.sleep(max(0.0, self.deadline - time.monotonic()))
        self._send(signal.SIGKILL)

    def _send(self, number: int) -> None:
        if self.pgid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, number)

    def _terminate(self, number: int, frame: FrameType | None) -> None:
        if self.killing:
            return
        self.killing = True
        if self.pgid is not None:
            self._start_killing()

    def _insist(self, number: int, frame: FrameType | None) -> None:
        self._send(signal.SIGKILL)


def wait_for(pid: int) -> tuple[int, int | None]:
    """(exit_code, signal) for the job; a signal death reports 128 + N, as shells do."""
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        return 128 + number, number
    return os.waitstatus_to_exitcode(status), None


def report(conn: sqlite3.Connection, job: Job, payload: dict[str, object]) -> None:
    """Write run_finished; this report must land."""

    def append() -> None:
        with store.write(conn):
            journal.append(
                conn,
                time=time.time(),
                kind=journal.RUN_FINISHED,
                user=job.user,
                job_id=job.job_id,
                run_id=job.run_id,
                payload=payload,
            )

    with contextlib.suppress(sqlite3.IntegrityError):  # already reported
        while_busy(append)


def run(db: Path, fifo: Path, run_id: int, kill_grace: float) -> int:
    """The whole life of one run. Returns the wrapper's own exit status."""
    conn = store.raw_connect(db)
    try:
        supervisor = Supervisor(kill_grace)  # before the claim: no kill may slip through
        job = claim(conn, run_id)
        if job is None:
            return 0
        wake.poke(fifo)
        if supervisor.killing:
            # Killed between its claim and its start: it never runs.
            term = int(signal.SIGTERM)
            report(conn, job, {"exit_code": 128 + term, "signal": term})
            wake.poke(fifo)
            return 0
        pid, error = spawn(job, job_environment(job, db))
        if error is not None:
            os.waitpid(pid, 0)
            report(conn, job, {"exit_code": 127, "signal": None, "error": error})
        else:
            supervisor.attach(pid)
            exit_code, number = wait_for(pid)
            report(conn, job, {"exit_code": exit_code, "signal": number})
        wake.poke(fifo)
        supervisor.finish()
        return 0
    finally:
        conn.close()
