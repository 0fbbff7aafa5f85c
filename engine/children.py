"""Small pieces every keeper of child processes and threads needs: the callback pool, the
site event daemons and the file watcher. Standard library only.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import signal
import time


def readable(fds: list[int], timeout: float | None) -> list[int]:
    """The descriptors readable (or at their end) within `timeout` seconds. poll(), not
    select(): the daemon raises its descriptor limit and may hold numbers above 1024."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    wait = None if timeout is None else max(0, math.ceil(timeout * 1000))
    return [fd for fd, _ in poller.poll(wait)]


def killpg(pid: int, number: int = signal.SIGKILL) -> None:
    """Signal a child's process group. Only ever called before the child is reaped: its pid,
    the group's id, cannot have been reused."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, number)


def close_fds(*fds: int | None) -> None:
    for fd in fds:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def open_pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (OSError, AttributeError):
        return None  # an old kernel: the caller polls instead


def has_exited(pid: int, pidfd: int | None, timeout: float | None, poll: float) -> bool:
    """Whether the child has exited (it is left unreaped), waiting up to `timeout`."""
    if pidfd is not None:
        return bool(readable([pidfd], timeout))
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                return True
        except ChildProcessError:
            return True
        left = poll if deadline is None else deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(poll, left))


def describe_exit(returncode: int) -> str:
    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


class WakePipe:
    """A pipe a thread writes a byte to so that the daemon's select() wakes at once."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def fileno(self) -> int:
        return self._read

    def poke(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):  # a full pipe holds a wake-up
            os.write(self._write, b"!")

    def drain(self) -> None:
        """Drain before looking at what the threads queued: what they queue after this
        leaves its byte."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read, 4096):
                pass

    def close(self) -> None:
        close_fds(self._read, self._write)
