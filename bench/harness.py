"""What the bench scripts share: finding the `tock` command they measure, and running it as
a daemon with a configuration of its own."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from engine import journal
from engine.tick import DEFAULT_BATCH, run_tick


def tock_executable() -> str:
    """The `tock` of this interpreter's environment, else the first one on PATH."""
    beside = Path(sys.executable).with_name("tock")
    found = str(beside) if beside.exists() else shutil.which("tock")
    if found is None:
        sys.exit(f"{Path(sys.argv[0]).name}: cannot find the `tock` executable")
    return found


def settle(conn: sqlite3.Connection, budget: float) -> tuple[float, int, int]:
    """run_until_caught_up with a deadline: (seconds, rows consumed, rows to consume)."""
    total = journal.pending_count(conn)
    consumed = 0
    started = time.perf_counter()
    while time.perf_counter() - started < budget:
        result = run_tick(conn)
        consumed += result.consumed
        if result.consumed < DEFAULT_BATCH:
            break
    return time.perf_counter() - started, consumed, total


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """Something other than timing went wrong: the run cannot be trusted."""


def wait_until(what: str, check: Callable[[], bool], budget: float, step: float = 0.01) -> float:
    """Seconds until `check()` held; BenchError after `budget` seconds."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > budget:
            raise BenchError(f"timed out after {budget:.0f} s waiting for {what}")
        time.sleep(step)
    return time.monotonic() - started


class DaemonProcess:
    """`tock daemon` on `db` with its own NAME.toml and NAME.log, stopped by SIGTERM."""

    def __init__(self, db: Path, config_text: str, name: str = "daemon") -> None:
        self.db = db
        self.config = db.with_name(f"{name}.toml")
        self.config.write_text(config_text, encoding="utf-8")
        self.log_path = db.with_name(f"{name}.log")
        self.log = self.log_path.open("w", encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOCK_")}
        env["TOCK_CONFIG"] = str(self.config)
        command = [tock_executable(), "--db", str(db), "daemon"]
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log
        )
        self.pid = self.process.pid
        try:
            wait_until("the daemon to start", self._ready, 30)
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        self.alive()
        return "started on" in self.text()

    def alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(
                f"the daemon died with status {self.process.returncode}:\n{self.tail()}"
            )

    def text(self) -> str:
        return self.log_path.read_text(encoding="utf-8")

    def tail(self) -> str:
        return "\n".join(self.text().splitlines()[-20:])

    def cpu_seconds(self) -> float:
        """utime + stime of the daemon's own threads (its children apart)."""
        with open(f"/proc/{self.pid}/stat", encoding="ascii") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15

    def errors(self) -> list[str]:
        lines = self.text().splitlines()
        return [line for line in lines if "error" in line.lower() or "file watcher" in line]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
