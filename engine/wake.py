"""Waking the daemon: a FIFO beside the database.

Writers (the CLI, job wrappers) commit their journal row, then write one byte to the FIFO.
With no daemon there is no reader, the open fails with ENXIO, and the byte is simply not
needed: the daemon reads the journal when it starts. Standard library only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path


def poke(fifo: Path) -> bool:
    """Tell a running daemon there is new input. Never blocks, never fails."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return False  # no daemon (ENXIO), no FIFO yet (ENOENT): it will read the journal later
    try:
        os.write(fd, b"!")
    except OSError as exc:
        if exc.errno != errno.EAGAIN:  # a full pipe already holds a wake-up
            return False
    finally:
        os.close(fd)
    return True


class WakeFifo:
    """The daemon's end: a readable fd to wait on, and a drain."""

    def __init__(self, fifo: Path) -> None:
        self.path = fifo
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISFIFO(os.lstat(fifo).st_mode):
                os.unlink(fifo)
        if not fifo.exists():
            os.mkfifo(fifo, 0o622)
            os.chmod(fifo, 0o622)  # anyone who may write the journal may wake the daemon
        self.fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        # Holding a write end ourselves keeps the FIFO from reporting EOF between writers.
        self._keepalive = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)

    def drain(self) -> None:
        while True:
            try:
                if not os.read(self.fd, 4096):
                    return
            except BlockingIOError:
                return

    def close(self) -> None:
        os.close(self.fd)
        os.close(self._keepalive)
