"""Shared fixtures: a real database file per test, an injected clock, a real daemon."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import journal
from engine.api import Tock
from engine.clock import ManualClock
from engine.config import Config
from engine.store import open_db, write
from engine.tick import TickResult, run_until_caught_up

TOCK = str(Path(sys.executable).with_name("tock"))


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's own database or configuration."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("TOCK_DB", raising=False)
    monkeypatch.delenv("TOCK_CONFIG", raising=False)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "tock.db"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_800_000_000.0)


@pytest.fixture
def tock(db_path: Path, clock: ManualClock) -> Iterator[Tock]:
    api = Tock(db_path, clock=clock, user="alice", config=Config(max_running=4))
    yield api
    api.close()


class Engine:
    """Drives the tick by hand and writes the rows a daemon or wrapper would write."""

    def __init__(self, api: Tock, clock: ManualClock) -> None:
        self.api = api
        self.clock = clock
        self.conn = api.conn

    def append(self, kind: str, **fields: Any) -> None:
        with write(self.conn):
            journal.append(
                self.conn,
                time=self.clock.now(),
                kind=kind,
                user=fields.pop("user", "tock"),
                **fields,
            )

    def tick(self) -> TickResult:
        return run_until_caught_up(self.conn)

    def daemon_start(
        self, max_running: int = 4, grace: float | None = None, admins: tuple[str, ...] = ()
    ) -> None:
        self.append(
            journal.DAEMON_START,
            payload={
                "pid": 1,
                "max_running": max_running,
                "orphan_grace_period": grace,
                "admins": list(admins),
            },
        )

    def state(self, job_id: int) -> str:
        return str(self.api.job(job_id).state)

    def run_of(self, job_id: int) -> int:
        row = self.conn.execute("SELECT current_run FROM jobs WHERE id = ?", (job_id,)).fetchone()
        assert row[0] is not None, f"job {job_id} has no run"
        return int(row[0])

    def started(self, job_id: int, pid: int = 4242) -> int:
        run_id = self.run_of(job_id)
        self.append(
            journal.RUN_STARTED, job_id=job_id, run_id=run_id, payload={"pid": pid, "pid_start": 1}
        )
        return run_id

    def finished(self, job_id: int, exit_code: int = 0, sig: int | None = None) -> None:
        run_id = self.run_of(job_id)
        self.append(
            journal.RUN_FINISHED,
            job_id=job_id,
            run_id=run_id,
            payload={"exit_code": exit_code, "signal": sig},
        )

    def run_to_end(self, job_id: int, exit_code: int = 0) -> None:
        """The wrapper's two reports for the job's current run, then a tick."""
        self.started(job_id)
        self.finished(job_id, exit_code)
        self.tick()

    def pending_actions(self) -> list[tuple[str, int]]:
        rows = self.conn.execute(
            "SELECT kind, job_id FROM actions WHERE status = 'pending' ORDER BY id"
        )
        return [(row[0], row[1]) for row in rows]


def replay_journal(source: sqlite3.Connection, path: Path, batch: int) -> sqlite3.Connection:
    """A fresh database fed the whole journal of `source` and ticked in batches of `batch`:
    the state it reaches must equal the live one."""
    replica = open_db(path)
    for row in source.execute("SELECT * FROM journal ORDER BY id").fetchall():
        replica.execute(
            "INSERT INTO journal (id, time, kind, user, job_id, run_id, payload) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            tuple(row),
        )
    replica.commit()
    run_until_caught_up(replica, batch=batch)
    return replica


@pytest.fixture
def engine(tock: Tock, clock: ManualClock) -> Engine:
    eng = Engine(tock, clock)
    eng.daemon_start()
    eng.tick()
    return eng


# --- real processes -------------------------------------------------------------------


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Poll a condition with a generous deadline (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.02)


def tock_cli(
    db: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [TOCK, "--db", str(db), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"tock {' '.join(args)} failed: {result.stderr}")
    return result


class DaemonProcess:
    def __init__(self, db: Path, config: Path | None, *args: str) -> None:
        env = dict(os.environ)
        if config is not None:
            env["TOCK_CONFIG"] = str(config)
        self.log = db.with_name("daemon.log")
        self._log_file = self.log.open("a")
        self.process = subprocess.Popen(
            [TOCK, "--db", str(db), "daemon", *args],
            stdout=self._log_file,
            stderr=self._log_file,
            env=env,
        )
        wait_until(lambda: "started on" in self.log.read_text(), 30, "the daemon to start")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=30)
        self._log_file.close()
        return code


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "tock.toml"
    path.write_text("max_running = 4\nkill_grace_period = 2\n")
    return path


@pytest.fixture
def daemon(db_path: Path, config_file: Path) -> Iterator[Callable[..., DaemonProcess]]:
    started: list[DaemonProcess] = []

    def start(*args: str, config: Path | None = config_file) -> DaemonProcess:
        process = DaemonProcess(db_path, config, *args)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.process.poll() is None:
            process.stop(signal.SIGKILL)
