"""Site event daemons: the children that turn `event(name)` conditions into START/END posts.

LSF JobScheduler had one External Event Daemon (eeventd) speaking a line protocol with the
scheduler. Tock runs every command line configured in `event_daemons` as a child process
and speaks the same protocol over its stdin and stdout, one message a line:

- Tock to the child: `SUB name` when some job starts depending on event `name`, `UNSUB name`
  when none does any more. After a (re)start the child gets a `SUB` for every name
  subscribed at that moment.
- The child to Tock: `START name type [attribute]` (type `latched`, `pulse`, `pulseAll` or
  `exclusive`, any case), `END name`, `REJECT name [attribute]`. The attribute is the rest
  of the line after one blank and may hold blanks. Blank lines are ignored; anything else
  (an unknown verb, a missing name, a bad type, a line longer than MAX_LINE bytes, bytes
  that are not UTF-8) is reported as an error and ignored. Verbs are accepted in any case,
  a `\r` before the newline is dropped, and a last line without its newline still counts.

This module is the daemon's edge: it never touches the database. The daemon registers
`EventDaemons.fileno()` with its selector, includes `next_due()` in its timeout and calls
`collect(now)` when either comes; `subscribe(names)` gives the full set of names jobs wait
on. Times are always passed in; subscribe() is not given one, so when the pipe refuses
part of what it sends, next_due() is the last time it was told: collect() is due at once.

How the children are run:
- Each gets its own session and process group, stdin and stdout pipes, the daemon's stderr
  (inherited: what a child writes there lands in the daemon's log), no other descriptors,
  `/` as its working directory, and the configured environment plus TOCK_EVENT_DAEMON=1.
- Its executable must pass `check_command` (no file or directory on its path that another
  user could write); a refused command is reported once per distinct reason and checked
  again with backoff, so that a file being replaced during a deployment is not fatal.
- A reader thread per child splits its output into lines, queues them and writes a byte to
  a pipe so that the daemon's select() wakes. At most MAX_QUEUED_LINES lines (and
  MAX_QUEUED_BYTES bytes) wait per child; beyond that lines are dropped and one error says
  how many. The thread also sees the child exit (through a pidfd).
- Writing never blocks: the child's stdin is non-blocking and unsent bytes wait per child.
  A child that has read nothing of its unsent input for STALL_LIMIT seconds "hangs": its
  process group is killed and it is restarted. `max_pending_output` only bounds memory: a
  restart's SUB replay may well exceed a pipe's 64 KiB before the child reads a line.
  A child that closes its stdin (EPIPE) or its stdout while running is killed too.
- When a child exits, whatever is left of its process group is killed (a restart must
  never leave two copies running), and it is restarted after a backoff: `backoff_initial`
  after a run that had stayed up for STABLE_AFTER seconds or more, doubling with each
  consecutive shorter run (and each failed start) up to `backoff_max`.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import shlex
import signal
import stat
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from engine.orphans import die_with_parent

MAX_LINE = 4096  # bytes in one line from a child, without its newline
TYPES = {name.lower(): name for name in ("latched", "pulse", "pulseAll", "exclusive")}
ACTIONS = ("start", "end", "reject")


@dataclass(frozen=True, slots=True)
class Post:
    """One message from a site event daemon."""

    action: str  # 'start' | 'end' | 'reject'
    name: str
    type: str | None = None  # for start: 'latched' | 'pulse' | 'pulseAll' | 'exclusive'
    attribute: str | None = None


@dataclass(frozen=True, slots=True)
class DaemonReport:
    """Something to log about a child: 'started', 'exited', 'error' or 'refused'. `daemon`
    is the command line as configured; it is "" for a report about no one child (an event
    name that cannot be sent)."""

    daemon: str
    kind: str
    detail: str


# -- the protocol ---------------------------------------------------------------------------


def _token(line: str, pos: int) -> tuple[str | None, int]:
    """The blank-separated token from `pos` on (None at the end) and where it ends."""
    while pos < len(line) and line[pos].isspace():
        pos += 1
    start = pos
    while pos < len(line) and not line[pos].isspace():
        pos += 1
    return (line[start:pos] or None), pos


def _rest(line: str, pos: int) -> str | None:
    """The attribute: everything after the one blank that ends the previous token."""
    rest = line[pos + 1 :]
    return rest or None


def parse_line(line: str) -> Post | str:
    """A line from a child (without its newline) as a Post, or what is wrong with it.

    A blank line is an error here ("empty line"); the reader skips blank lines before.
    Control characters are refused: an attribute becomes a job's environment variable,
    which cannot hold a NUL."""
    bad = next((ch for ch in line if (ch < " " and ch != "\t") or ch == "\x7f"), None)
    if bad is not None:
        return f"control character {bad!r} in the line"
    verb, pos = _token(line, 0)
    if verb is None:
        return "empty line"
    action = verb.lower()
    if action not in ACTIONS:
        return f"unknown verb {verb!r} (START, END or REJECT)"
    name, pos = _token(line, pos)
    if name is None:
        return f"{verb}: missing event name"
    if action == "start":
        kind, pos = _token(line, pos)
        if kind is None:
            return f"{verb} {name}: missing event type (latched, pulse, pulseAll or exclusive)"
        canonical = TYPES.get(kind.lower())
        if canonical is None:
            return (
                f"{verb} {name}: unknown event type {kind!r} "
                "(latched, pulse, pulseAll or exclusive)"
            )
        return Post("start", name, canonical, _rest(line, pos))
    if action == "reject":
        return Post("reject", name, None, _rest(line, pos))
    extra, _ = _token(line, pos)
    if extra is not None:
        return f"{verb} {name}: unexpected {extra!r} (END takes only a name)"
    return Post("end", name)


def valid_name(name: str) -> bool:
    """An event name the protocol can carry: non-empty, no whitespace, encodable."""
    if not name or any(ch.isspace() for ch in name):
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def format_sub(name: str) -> str:
    if not valid_name(name):
        raise ValueError(f"{name!r}: an event name must be non-empty, without whitespace")
    return f"SUB {name}\n"


def format_unsub(name: str) -> str:
    if not valid_name(name):
        raise ValueError(f"{name!r}: an event name must be non-empty, without whitespace")
    return f"UNSUB {name}\n"


# -- which executables may run --------------------------------------------------------------


def _ancestors(directory: str) -> list[str]:
    found = [directory]
    while True:
        up = os.path.dirname(directory)
        if up == directory:
            return found
        found.append(up)
        directory = up


def _owner_ok(uid: int) -> bool:
    return uid in (os.geteuid(), 0)


def check_command(argv0: str) -> str | None:
    """Why this executable must not run as an event daemon, or None if it may.

    The file must be an absolute path to a regular, executable file that neither the group
    nor others may write, owned by the daemon's user or root. So must every directory on
    the way to it, both as written and with symlinks resolved (a sticky directory such as
    /tmp may be world-writable): whoever can rename an entry above the file can replace it.
    Permission bits only; ACLs are not read.
    """
    if not os.path.isabs(argv0):
        return f"{argv0}: not an absolute path"
    try:
        st = os.stat(argv0)
        real = os.path.realpath(argv0)
    except (OSError, ValueError) as exc:
        return f"{argv0}: {getattr(exc, 'strerror', None) or exc}"
    if not stat.S_ISREG(st.st_mode):
        return f"{argv0}: not a regular file"
    if not st.st_mode & 0o111 or not os.access(argv0, os.X_OK):
        return f"{argv0}: not executable"
    if st.st_mode & 0o022:
        return f"{argv0}: writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    if not _owner_ok(st.st_uid):
        return f"{argv0}: owned by uid {st.st_uid}, neither the daemon's user nor root"
    seen: set[str] = set()
    for start in (os.path.dirname(os.path.normpath(argv0)), os.path.dirname(real)):
        for directory in _ancestors(start):
            if directory in seen:
                continue
            seen.add(directory)
            try:
                dst = os.stat(directory)
            except OSError as exc:
                return f"{directory}: {exc.strerror}"
            mode = dst.st_mode
            if mode & 0o022 and not mode & stat.S_ISVTX:
                return (
                    f"{argv0}: directory {directory} is writable by group or others "
                    f"(mode {stat.S_IMODE(mode):04o})"
                )
            if not _owner_ok(dst.st_uid):
                return (
                    f"{argv0}: directory {directory} is owned by uid {dst.st_uid}, "
                    "neither the daemon's user nor root"
                )
    return None


# -- the children ---------------------------------------------------------------------------


def _describe_exit(returncode: int) -> str:
    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


def _readable(fds: list[int], timeout: float | None) -> list[int]:
    """The descriptors readable (or at their end) within `timeout` seconds. poll(), not
    select(): the daemon raises its descriptor limit and may hold numbers above 1024."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    wait = None if timeout is None else max(0, math.ceil(timeout * 1000))
    return [fd for fd, _ in poller.poll(wait)]


def _killpg(pid: int, number: int) -> None:
    """Signal a child's process group. Only ever called before the child is reaped: its pid,
    the group's id, cannot have been reused."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, number)


class _Splitter:
    """Bytes into lines; a line longer than MAX_LINE becomes one ('long', first bytes)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.skipping = False  # inside an overlong line, until its newline

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        items: list[tuple[str, bytes]] = []
        self.buffer += data
        start = 0
        while True:
            end = self.buffer.find(b"\n", start)
            if end < 0:
                break
            line = bytes(self.buffer[start:end])
            start = end + 1
            if self.skipping:
                self.skipping = False
                continue
            items.append(self._item(line))
        del self.buffer[:start]
        if len(self.buffer) > MAX_LINE + 1:  # +1: a '\r' that a '\n' may still follow
            if not self.skipping:
                items.append(("long", bytes(self.buffer[:80])))
                self.skipping = True
            self.buffer.clear()
        return items

    def finish(self) -> list[tuple[str, bytes]]:
        """A last line without its newline still counts."""
        line = bytes(self.buffer)
        self.buffer.clear()
        if self.skipping or not line:
            return []
        return [self._item(line)]

    @staticmethod
    def _item(line: bytes) -> tuple[str, bytes]:
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > MAX_LINE:
            return ("long", line[:80])
        return ("line", line)


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
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._now = 0.0
        self._started = False
        self._closed = False

    def __enter__(self) -> EventDaemons:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def fileno(self) -> int:
        """Readable when lines, exits or reports are waiting for collect()."""
        return self._read

    # -- the daemon's calls ---------------------------------------------------------------

    def start(self, now: float) -> None:
        """Start every child (once; later starts are restarts, done by collect)."""
        if self._started or self._closed:
            return
        self._started = True
        self._now = now
        for slot in self._slots:
            self._spawn(slot, now)
        self._poke()

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
                self._poke()
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
        self._drain()
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
                self._parse(slot.label, kind, line, posts, reports)
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
            _killpg(run.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.TERM_GRACE
        while time.monotonic() < deadline and not all(self._exited(run, 0) for run in runs):
            time.sleep(0.01)
        for run in runs:
            _killpg(run.pid, signal.SIGKILL)  # stray members of the group too
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
            os.close(self._read)
            os.close(self._write)

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
        try:
            pidfd: int | None = os.pidfd_open(process.pid)
        except (OSError, AttributeError):
            pidfd = None  # an old kernel: the reader polls instead
        run = _Run(process, pidfd, now)
        os.set_blocking(run.stdin_fd, False)
        run.thread = threading.Thread(
            target=self._reader, args=(run,), name=f"tock-eventd-{run.pid}", daemon=True
        )
        try:
            run.thread.start()
        except RuntimeError as exc:  # no thread to be had: the child cannot be read
            _killpg(run.pid, signal.SIGKILL)
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
        _killpg(run.pid, signal.SIGKILL)

    def _reap(self, slot: _Slot, run: _Run, now: float) -> None:
        returncode = self._release(run)
        slot.run = None
        why = run.kill_reason or run.thread_reason or _describe_exit(returncode)
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

    def _parse(
        self,
        label: str,
        kind: str,
        raw: bytes,
        posts: list[tuple[str, Post]],
        reports: list[DaemonReport],
    ) -> None:
        if kind == "long":
            reports.append(
                DaemonReport(label, "error", f"line longer than {MAX_LINE} bytes ignored: {raw!r}")
            )
            return
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            reports.append(DaemonReport(label, "error", f"not UTF-8, ignored: {raw[:200]!r}"))
            return
        if not line.strip():
            return
        parsed = parse_line(line)
        if isinstance(parsed, Post):
            posts.append((label, parsed))
        else:
            shown = line if len(line) <= 200 else line[:200] + "..."
            reports.append(DaemonReport(label, "error", f"{parsed}; line ignored: {shown!r}"))

    def _reader(self, run: _Run) -> None:
        """The thread: queue the child's lines until it has exited and its group is gone."""
        reason: str | None = None
        try:
            reason = self._read_until_exit(run)
        except Exception as exc:  # nothing may end the thread unreported
            reason = f"reading its output failed: {exc}"
            _killpg(run.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                self._exited(run, None)
        with self._lock:
            run.thread_reason = reason
            run.finished = True
        self._poke()

    def _read_until_exit(self, run: _Run) -> str | None:
        splitter = _Splitter()
        watched = [run.stdout_fd] if run.pidfd is None else [run.stdout_fd, run.pidfd]
        timeout = self.POLL if run.pidfd is None else None
        while True:
            ready = _readable(watched, timeout)
            if run.stdout_fd in ready:
                data = os.read(run.stdout_fd, 65536)
                if data:
                    self._queue(run, splitter.feed(data))
                    continue
                self._queue(run, splitter.finish())
                if self._exited(run, self.EOF_GRACE):
                    _killpg(run.pid, signal.SIGKILL)
                    return None
                _killpg(run.pid, signal.SIGKILL)
                self._exited(run, None)
                return "closed its output"
            if self._exited(run, 0):
                break
        # Exited: kill what is left of its group, then read what it wrote until EOF (which
        # never comes if something outside the group holds the pipe).
        _killpg(run.pid, signal.SIGKILL)
        deadline = time.monotonic() + self.DRAIN_LIMIT
        while (left := deadline - time.monotonic()) > 0:
            ready = _readable([run.stdout_fd], left)
            if not ready:
                break
            data = os.read(run.stdout_fd, 65536)
            if not data:
                break
            self._queue(run, splitter.feed(data))
        self._queue(run, splitter.finish())
        return None

    def _exited(self, run: _Run, timeout: float | None) -> bool:
        """Whether the child has exited (it is left unreaped), waiting up to `timeout`."""
        if run.pidfd is not None:
            return bool(_readable([run.pidfd], timeout))
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                if os.waitid(os.P_PID, run.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                    return True
            except ChildProcessError:
                return True
            left = self.POLL if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(self.POLL, left))

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
        self._poke()

    def _poke(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):  # a full pipe holds a wake-up
            os.write(self._write, b"!")

    def _drain(self) -> None:
        # Drained before the queues are taken: a line queued after this leaves its byte.
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read, 4096):
                pass
