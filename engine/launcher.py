"""The launcher: a small, single-threaded process that forks job wrappers on request.

Starting a fresh Python for every job costs about 20 ms; forking this pre-loaded process
costs about 1 ms, which is most of a chain's hop time. The daemon writes `start RUN_ID`
lines on our stdin; when a wrapper ends we write `exit RUN_ID PID STATUS` on stdout,
buffered, so that we never block on the daemon (which may be busy writing thousands of
starts to us). When the daemon goes away (EOF on stdin) we leave, and the wrappers, each
in its own session, carry on.

Run as `python -I -S launcher.py DB FIFO KILL_GRACE LOG NOFILE`: standard library only.
NOFILE is the soft limit on open files that wrappers and jobs get back (the daemon raises
its own to watch many wrappers).
"""

from __future__ import annotations

import os
import resource
import selectors
import signal
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import wrapper


class Launcher:
    def __init__(self, db: Path, fifo: Path, kill_grace: float, log: Path) -> None:
        self.db = db
        self.log = log
        self.fifo = fifo
        self.kill_grace = kill_grace
        self.children: dict[int, int] = {}  # pid -> run id
        self.buffer = b""
        self.replies = bytearray()
        self.selector = selectors.DefaultSelector()
        self.wake_read, self.wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wake_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on the daemon is not for us
        os.set_blocking(0, False)
        os.set_blocking(1, False)
        self.selector.register(0, selectors.EVENT_READ, "commands")
        self.selector.register(self.wake_read, selectors.EVENT_READ, "children")

    def say(self, line: str) -> None:
        self.replies += (line + "\n").encode()

    def flush(self) -> None:
        """Write what fits; wait for the pipe to drain for the rest."""
        try:
            while self.replies:
                del self.replies[: os.write(1, self.replies)]
        except BlockingIOError:
            pass
        except OSError:
            self.replies.clear()  # the daemon is gone; our wrappers do not need it
        wanted = selectors.EVENT_WRITE if self.replies else 0
        registered = 1 in self.selector.get_map()
        if wanted and not registered:
            self.selector.register(1, selectors.EVENT_WRITE, "replies")
        elif not wanted and registered:
            self.selector.unregister(1)

    def fork_wrapper(self, run_id: int) -> None:
        pid = os.fork()
        if pid == 0:
            self._become_wrapper(run_id)
        self.children[pid] = run_id

    def _become_wrapper(self, run_id: int) -> None:
        code = 1
        try:
            os.setsid()
            signal.set_wakeup_fd(-1)
            for number in (signal.SIGCHLD, signal.SIGINT):
                signal.signal(number, signal.SIG_DFL)
            self.selector.close()
            os.close(self.wake_read)
            os.close(self.wake_write)
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.close(null)
            # A wrapper's own troubles (never the job's output) go to the wrapper log.
            log = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(log, 2)
            os.close(log)
            code = wrapper.run(self.db, self.fifo, run_id, self.kill_grace)
        finally:
            os._exit(code)

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            run_id = self.children.pop(pid, None)
            if run_id is not None:
                self.say(f"exit {run_id} {pid} {status}")

    def commands(self) -> bool:
        """Handle what the daemon sent; False at EOF."""
        try:
            data = os.read(0, 65536)
        except BlockingIOError:
            return True
        if not data:
            return False
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            words = line.split()
            if len(words) == 2 and words[0] == b"start" and words[1].isdigit():
                self.fork_wrapper(int(words[1]))
        return True

    def serve(self) -> None:
        while True:
            for key, _ in self.selector.select():
                if key.data == "commands":
                    if not self.commands():
                        return
                elif key.data == "replies":
                    pass  # flushed below
                else:
                    try:
                        while os.read(self.wake_read, 4096):
                            pass
                    except BlockingIOError:
                        pass
                    self.reap()
            self.reap()
            self.flush()


def main(argv: list[str]) -> None:
    db, fifo, grace, log, nofile = argv[1:6]
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(int(nofile), hard), hard))
    Launcher(Path(db), Path(fifo), float(grace), Path(log)).serve()


if __name__ == "__main__":
    main(sys.argv)
