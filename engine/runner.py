"""The daemon's side of running jobs on this machine: the launcher and liveness of wrappers.

The daemon asks the launcher to fork a wrapper per run; the launcher reports its children's
exits back (engine/liveness.py decides what an exit means). Signals for a run go to its
wrapper, identified by pid and start time so that a reused pid is never hit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from engine import procs
from engine.paths import Layout

LAUNCHER = Path(__file__).resolve().parent / "launcher.py"


@dataclass(frozen=True, slots=True)
class WrapperExit:
    run_id: int
    pid: int


class LauncherGone(Exception):
    """The launcher died; the caller starts a new one."""


class Launcher:
    def __init__(self, layout: Layout, kill_grace: float, nofile: int = 1024) -> None:
        self.layout = layout
        self.kill_grace = kill_grace
        self.nofile = nofile
        self.process = self._start()
        self._buffer = b""

    def _start(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                str(LAUNCHER),
                str(self.layout.db),
                str(self.layout.wake_fifo),
                str(self.kill_grace),
                str(self.layout.wrapper_log),
                str(self.nofile),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        assert process.stdout is not None
        os.set_blocking(process.stdout.fileno(), False)
        return process

    def fileno(self) -> int:
        assert self.process.stdout is not None
        return self.process.stdout.fileno()

    def start(self, run_id: int) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(f"start {run_id}\n".encode())
        except (BrokenPipeError, OSError) as exc:
            raise LauncherGone(str(exc)) from None

    def read(self) -> list[WrapperExit]:
        """The wrapper exits the launcher has reported; raises LauncherGone at its end."""
        assert self.process.stdout is not None
        exits = []
        try:
            data = os.read(self.process.stdout.fileno(), 65536)
        except BlockingIOError:
            return []
        if not data:
            self.process.wait()
            raise LauncherGone(f"launcher exited with status {self.process.returncode}")
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            words = line.split()
            if len(words) == 4 and words[0] == b"exit":
                exits.append(WrapperExit(int(words[1]), int(words[2])))
        return exits

    def close(self) -> None:
        """Closing stdin tells the launcher to leave; running wrappers are not touched."""
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        if self.process.returncode is None:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def send_signal(pid: int, started: int | None, number: int) -> bool:
    """Signal a wrapper if it is still the process that claimed the run; False if it has
    gone. Raises OSError when it cannot tell (the caller retries)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    try:
        if not procs.is_alive(pid, started):
            return False
        signal.pidfd_send_signal(fd, number)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(fd)
