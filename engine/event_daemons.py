"""Site event daemons: the children that turn `event(name)` conditions into START/END posts.

The line protocol (SUB/UNSUB out; START, END and REJECT in) is engine/eventd_protocol.py.

This module never touches the database (engine/edge_events.py journals what it reports).
Times are passed in; subscribe() is given none, so when a pipe refuses part of what it
sends, next_due() is the last time it was told and collect() is due at once.

How the children are run (docs/events.md says it for users):
- Own session and process group, stdin and stdout pipes, the daemon's stderr, `/` as the
  working directory, the configured environment plus TOCK_EVENT_DAEMON=1. The executable
  must pass engine/trust.py's check_command; a refused one is reported once per reason
  and checked again with backoff (a file replaced during a deployment is not fatal).
- A reader thread per child queues its lines (at most MAX_QUEUED_LINES and
  MAX_QUEUED_BYTES; beyond that they are dropped, with one error) and sees it exit.
- Writing never blocks: unsent bytes wait per child. One that reads none of them for
  STALL_LIMIT seconds "hangs" and is killed; `max_pending_output` only bounds memory (a
  restart's SUB replay may exceed a pipe before the child reads a line). Closing its
  stdin or stdout while running gets a child killed too.
- An exited child's group is killed (never two copies) and it is restarted after
  `backoff_initial`, doubling with each run shorter than STABLE_AFTER seconds (and each
  failed start) up to `backoff_max`.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from engine.children import WakePipe, describe_exit, has_exited, killpg, open_pidfd, readable
from engine.eventd_protocol import (
    LineSplitter,
    Post,
    decode_item,
    format_sub,
    format_unsub,
    valid_name,
)
from engine.orphans import die_with_parent
from engine.trust import check_command


@dataclass(frozen=True, slots=True)
class DaemonReport:
    """Something to log about a child: 'started', 'exited', 'error' or 'refused'. `daemon`
    is the command line as configured; it is "" for a report about no one child (an event
    name that cannot be sent)."""

    daemon: str
    kind: str
    detail: str


# -- the children ---------------------------------------------------------------------------


class _Run:
    """One started child process, from its start until it has been reaped."""

    def __init__(self, process: subprocess.Popen[bytes], pidfd: int | None, now: float) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self.pid = process.pid
        self.pidfd = pidfd
        self.stdin_fd = process.stdin.fileno()
        self.stdout_fd = process.stdout.fileno()
        self.started = now
        # Main thread only.
        self.pending = bytearray()  # input not yet taken by the pipe
        # When the pending input last shrank, or was first seen at a collect; None until then.
        self.progress_at: float | None = None
        self.retry_delay = 0.0
        self.retry_at: float | None = None
        self.kill_reason: str | None = None  # why we killed it, if we did
        # Shared with the reader thread, under EventDaemons._lock.
        self.lines: deque[tuple[str, bytes]] = deque()
        self.queued_bytes = 0
        self.dropped = 0
        self.finished = False  # exited (not yet reaped) and its output read
        self.thread_reason: str | None = None  # why the reader killed it, if it did
        self.thread: threading.Thread | None = None


class _Slot:
    """One configured command line and its restart state."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.argv: list[str] = []
        self.invalid: str | None = None  # a command line that can never run
        try:
            self.argv = shlex.split(label)
        except ValueError as exc:
            self.invalid = f"cannot parse the command line: {exc}"
        if not self.argv and self.invalid is None:
            self.invalid = "empty command line"
        self.run: _Run | None = None
        self.failures = 0  # consecutive short runs and failed starts
        self.restart_at: float | None = None
        self.problem: str | None = None  # the last refusal or start error reported


class EventDaemons:
    """The configured site event daemons as children: started, fed SUB/UNSUB, read without
    blocking (a reader thread per child queues lines and pokes a pipe), restarted with
    backoff when they exit or stop reading."""

    STABLE_AFTER = 60.0  # seconds up after which an exit no longer counts as a failure
    STALL_LIMIT = 10.0  # seconds a child may leave its pending input unread
    TERM_GRACE = 2.0  # seconds between SIGTERM and SIGKILL at close()
    MAX_QUEUED_LINES = 10_000  # per child, between two collects
    MAX_QUEUED_BYTES = 4 << 20
    WRITE_RETRY_FIRST = 0.05  # seconds before retrying a write the pipe refused, doubling
    WRITE_RETRY_MAX = 1.0
    EOF_GRACE = 1.0  # seconds a child may live on after closing its stdout
    DRAIN_LIMIT = 1.0  # seconds to read what an exited child left (a stray holder of the pipe)
    POLL = 0.2  # seconds between exit checks where there is no pidfd

    def __init__(
        self,
        commands: Sequence[str],
        *,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        max_pending_output: int = 16 << 20,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if not backoff_initial > 0:
            raise ValueError("backoff_initial must be more than 0: a failing child would spin")
        self.backoff_initial = backoff_initial
        self.backoff_max = max(backoff_max, backoff_initial)
        self.max_pending_output = max_pending_output
        self.env = None if env is None else dict(env)
        self._slots = [_Slot(command) for command in commands]
        self._names: frozenset[str] = frozenset()
        self._bad_names: set[str] = set()  # reported once each
        self._reports: list[DaemonReport] = []  # reported at the next collect
        self._lock = threading.Lock()
        self._wake = WakePipe()
        self._now = 0.0
        self._started = False
        self._closed = False

    def __enter__(self) -> EventDaemons:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def fileno(self) -> int:
        """Readable when lines, exits or reports are waiting for collect()."""
        return self._wake.fileno()

    # -- the daemon's calls ---------------------------------------------------------------

    def start(self, now: float) -> None:
        """Start every child (once; later starts are restarts, done by collect)."""
        if self._started or self._closed:
            return
        self._started = True
        self._now = now
        for slot in self._slots:
            self._spawn(slot, now)
        self._wake.poke()

    def subscribe(self, names: Iterable[str]) -> None:
        """The full set of event names jobs wait on now: every running child is sent SUB for
        the new ones and UNSUB for those gone. A name the protocol cannot carry is left out
        and reported once."""
        if self._closed:
            return
        wanted: set[str] = set()
        for name in names:
            if valid_name(name):
                wanted.add(name)
            elif name not in self._bad_names:
                self._bad_names.add(name)
                self._reports.append(
                    DaemonReport("", "error", f"event name {name!r} not sent: empty, or has blanks")
                )
                self._wake.poke()
        new = frozenset(wanted)
        added, removed = sorted(new - self._names), sorted(self._names - new)
        self._names = new
        if not added and not removed:
            return
        text = "".join([*map(format_unsub, removed), *map(format_sub, added)]).encode()
        for slot in self._slots:
            run = slot.run
            if run is not None and run.kill_reason is None:
                self._send(run, text, None)

    def collect(self, now: float) -> tuple[list[tuple[str, Post]], list[DaemonReport]]:
        """What the children said since the last call, and what happened to them; restart
        the children whose backoff has passed; retry pending writes."""
        if self._closed:
            return [], []
        self._now = now
        self._wake.drain()
        posts: list[tuple[str, Post]] = []
        reports, self._reports = self._reports, []
        for slot in self._slots:
            run = slot.run
            if run is None:
                continue
            with self._lock:
                lines, run.lines = run.lines, deque()
                dropped, run.dropped = run.dropped, 0
                run.queued_bytes = 0
                finished = run.finished
            for kind, line in lines:
                decoded = decode_item(kind, line)
                if isinstance(decoded, Post):
                    posts.append((slot.label, decoded))
                elif decoded is not None:
                    reports.append(DaemonReport(slot.label, "error", decoded))
            if dropped:
                reports.append(
                    DaemonReport(
                        slot.label,
                        "error",
                        f"{dropped} line(s) dropped: written faster than they were read "
                        f"(at most {self.MAX_QUEUED_LINES} lines wait)",
                    )
                )
            if finished:
                self._reap(slot, run, now)
        reports.extend(self._reports)  # what reaping reported
        self._reports = []
        for slot in self._slots:
            if slot.run is None and slot.restart_at is not None and now >= slot.restart_at:
                self._spawn(slot, now)
            elif slot.run is not None and slot.run.kill_reason is None and slot.run.pending:
                self._flush(slot.run, now)
        reports.extend(self._reports)
        self._reports = []
        return posts, reports

    def next_due(self) -> float | None:
        """The earliest restart or write retry: collect() then has something to do."""
        due = []
        for slot in self._slots:
            run = slot.run
            if run is None:
                if slot.restart_at is not None:
                    due.append(slot.restart_at)
            elif run.pending and run.retry_at is not None and run.kill_reason is None:
                due.append(run.retry_at)
        return min(due) if due else None

    def close(self) -> None:
        """Stop every child: EOF on its stdin and SIGTERM to its process group, SIGKILL to
        what is left after TERM_GRACE seconds; reap them and join their threads."""
        if self._closed:
            return
        self._closed = True
        runs = [slot.run for slot in self._slots if slot.run is not None]
        for run in runs:
            assert run.process.stdin is not None
            with contextlib.suppress(OSError):
                run.process.stdin.close()
            killpg(run.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.TERM_GRACE
        while time.monotonic() < deadline and not all(self._exited(run, 0) for run in runs):
            time.sleep(0.01)
        for run in runs:
            killpg(run.pid, signal.SIGKILL)  # stray members of the group too
        stuck = False
        for run in runs:
            if run.thread is not None:
                run.thread.join(self.DRAIN_LIMIT + self.EOF_GRACE + 1.0)
                if run.thread.is_alive():  # an unkillable child: its descriptors stay open,
                    stuck = True  # rather than be reused under its thread
                    continue
            self._release(run)
        for slot in self._slots:
            slot.run = None
        if not stuck:
            self._wake.close()

    # -- starting and stopping ------------------------------------------------------------

    def _spawn(self, slot: _Slot, now: float) -> None:
        slot.restart_at = None
        if slot.invalid is not None:  # never runs: reported once, not retried
            if slot.problem is None:
                slot.problem = slot.invalid
                self._reports.append(DaemonReport(slot.label, "refused", slot.invalid))
            return
        refusal = check_command(slot.argv[0])
        if refusal is not None:
            self._failed_start(slot, "refused", refusal, now)
            return
        env = dict(os.environ if self.env is None else self.env)
        env["TOCK_EVENT_DAEMON"] = "1"
        try:
            process = subprocess.Popen(
                slot.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=None,
                bufsize=0,
                close_fds=True,
                start_new_session=True,
                preexec_fn=die_with_parent,
                env=env,
                cwd="/",
            )
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            self._failed_start(slot, "error", f"cannot start: {exc}", now)
            return
        pidfd = open_pidfd(process.pid)
        run = _Run(process, pidfd, now)
        os.set_blocking(run.stdin_fd, False)
        run.thread = threading.Thread(
            target=self._reader, args=(run,), name=f"tock-eventd-{run.pid}", daemon=True
        )
        try:
            run.thread.start()
        except RuntimeError as exc:  # no thread to be had: the child cannot be read
            killpg(run.pid, signal.SIGKILL)
            self._release(run)
            self._failed_start(slot, "error", f"cannot start its reader: {exc}", now)
            return
        slot.run = run
        slot.problem = None
        self._reports.append(DaemonReport(slot.label, "started", f"pid {run.pid}"))
        if self._names:
            self._send(run, "".join(map(format_sub, sorted(self._names))).encode(), now)

    def _failed_start(self, slot: _Slot, kind: str, detail: str, now: float) -> None:
        if detail != slot.problem:  # once per distinct reason, not at every retry
            slot.problem = detail
            self._reports.append(DaemonReport(slot.label, kind, detail))
        self._schedule(slot, now)

    def _schedule(self, slot: _Slot, now: float) -> None:
        slot.failures += 1
        exponent = min(slot.failures - 1, 64)
        slot.restart_at = now + min(self.backoff_max, self.backoff_initial * 2.0**exponent)

    def _kill(self, run: _Run, reason: str) -> None:
        """Kill a child's process group; its reader reports the exit, collect reaps it."""
        if run.kill_reason is None:
            run.kill_reason = reason
        run.pending.clear()
        killpg(run.pid, signal.SIGKILL)

    def _reap(self, slot: _Slot, run: _Run, now: float) -> None:
        returncode = self._release(run)
        slot.run = None
        why = run.kill_reason or run.thread_reason or describe_exit(returncode)
        self._reports.append(DaemonReport(slot.label, "exited", why))
        if now - run.started >= self.STABLE_AFTER:
            slot.failures = 0
        self._schedule(slot, now)

    def _release(self, run: _Run) -> int:
        """Reap the process and close its descriptors (its reader has finished)."""
        returncode = 0
        try:
            returncode = run.process.wait(timeout=self.TERM_GRACE)
        except subprocess.TimeoutExpired:  # unkillable (stuck in the kernel): leave it be
            returncode = -signal.SIGKILL
        for stream in (run.process.stdin, run.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if run.pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(run.pidfd)
        return returncode

    # -- writing --------------------------------------------------------------------------

    def _send(self, run: _Run, data: bytes, now: float | None) -> None:
        if not run.pending:
            run.progress_at = now
            run.retry_delay = 0.0
        run.pending += data
        self._flush(run, now)

    def _flush(self, run: _Run, now: float | None) -> None:
        """Write what the pipe takes. `now` is None from subscribe(), which is not told the
        time: the stall clock then starts at the next collect, which is due at once."""
        while run.pending:
            try:
                written = os.write(run.stdin_fd, run.pending)
            except BlockingIOError:
                break
            except BrokenPipeError:
                if not self._exited(run, 0):
                    self._kill(run, "closed its input")
                run.pending.clear()  # an exit the reader reports
                return
            except OSError as exc:
                self._kill(run, f"cannot write to its input: {exc.strerror}")
                return
            del run.pending[:written]
            run.progress_at = now
            run.retry_delay = 0.0
        if not run.pending:
            run.retry_at = None
            return
        if len(run.pending) > self.max_pending_output:
            self._kill(run, "not reading its input")
            return
        if now is None:
            run.retry_at = self._now  # collect as soon as possible
            return
        if run.progress_at is None:
            run.progress_at = now
        elif now - run.progress_at >= self.STALL_LIMIT:
            self._kill(run, "not reading its input")
            return
        run.retry_delay = min(
            self.WRITE_RETRY_MAX, max(self.WRITE_RETRY_FIRST, run.retry_delay * 2)
        )
        run.retry_at = now + run.retry_delay

    # -- reading --------------------------------------------------------------------------

    def _reader(self, run: _Run) -> None:
        """The thread: queue the child's lines until it has exited and its group is gone."""
        reason: str | None = None
        try:
            reason = self._read_until_exit(run)
        except Exception as exc:  # nothing may end the thread unreported
            reason = f"reading its output failed: {exc}"
            killpg(run.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                self._exited(run, None)
        with self._lock:
            run.thread_reason = reason
            run.finished = True
        self._wake.poke()

    def _read_until_exit(self, run: _Run) -> str | None:
        splitter = LineSplitter()
        watched = [run.stdout_fd] if run.pidfd is None else [run.stdout_fd, run.pidfd]
        timeout = self.POLL if run.pidfd is None else None
        while True:
            ready = readable(watched, timeout)
            if run.stdout_fd in ready:
                data = os.read(run.stdout_fd, 65536)
                if data:
                    self._queue(run, splitter.feed(data))
                    continue
                self._queue(run, splitter.finish())
                if self._exited(run, self.EOF_GRACE):
                    killpg(run.pid, signal.SIGKILL)
                    return None
                killpg(run.pid, signal.SIGKILL)
                self._exited(run, None)
                return "closed its output"
            if self._exited(run, 0):
                break
        # Exited: kill what is left of its group, then read what it wrote until EOF (which
        # never comes if something outside the group holds the pipe).
        killpg(run.pid, signal.SIGKILL)
        deadline = time.monotonic() + self.DRAIN_LIMIT
        while (left := deadline - time.monotonic()) > 0:
            ready = readable([run.stdout_fd], left)
            if not ready:
                break
            data = os.read(run.stdout_fd, 65536)
            if not data:
                break
            self._queue(run, splitter.feed(data))
        self._queue(run, splitter.finish())
        return None

    def _exited(self, run: _Run, timeout: float | None) -> bool:
        return has_exited(run.pid, run.pidfd, timeout, self.POLL)

    def _queue(self, run: _Run, items: list[tuple[str, bytes]]) -> None:
        if not items:
            return
        with self._lock:
            for item in items:
                size = len(item[1])
                if (
                    len(run.lines) >= self.MAX_QUEUED_LINES
                    or run.queued_bytes + size > self.MAX_QUEUED_BYTES
                ):
                    run.dropped += 1
                    continue
                run.lines.append(item)
                run.queued_bytes += size
        self._wake.poke()
