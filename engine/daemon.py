"""The daemon: tick, dispatch, sleep until there is something to do. Single-threaded.

This module is the loop that wires the stages together: engine/tick.py decides,
engine/dispatch.py acts on the outbox, engine/liveness.py watches the wrappers.

Each turn of the loop runs ticks until the journal is consumed, carries out the committed
actions, then sleeps in one `select()` on everything that can bring new input: the wake-up
FIFO (the CLI and wrappers), the launcher (wrapper exits), a pidfd per running wrapper, and
the signal pipe. The timeout is the next time-driven decision (an orphan's grace period);
with none, the daemon sleeps until woken and uses no CPU. When a timeout expires, the
daemon records the time as a `clock` journal row, so the passage of time is an input too.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import selectors
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any, Protocol, TextIO

from engine import journal
from engine.clock import SYSTEM_CLOCK, Clock
from engine.config import Config, load_config
from engine.dispatch import Dispatcher
from engine.errors import TockError
from engine.liveness import Watch, requeue_unclaimed, watch_wrapper, wrapper_ended
from engine.paths import Layout, layout_for
from engine.runner import Launcher, LauncherGone
from engine.store import StoreError, open_db, translated_errors, write
from engine.tick import run_until_caught_up
from engine.users import current_user
from engine.wake import WakeFifo

RETRY_AFTER_ERROR = 1.0
RETRY_DEFERRED = 0.5  # seconds before work deferred by a passing failure is tried again


class Edge(Protocol):
    """An input from outside the journal's writers (engine/edge_*.py)."""

    def fileno(self) -> int: ...
    def next_due(self, now: float) -> float | None: ...
    def start(self, pending: journal.PendingRows) -> None: ...
    def collect(self, pending: journal.PendingRows) -> None: ...
    def sync(self, pending: journal.PendingRows) -> bool: ...
    def close(self) -> None: ...


class DaemonLock:
    """One daemon per database: an exclusive flock on `<db>.lock`, holding our pid."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise TockError(f"{path}: cannot take the daemon lock: {exc.strerror}") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(self.fd, 32).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            raise TockError(
                f"a daemon is already running on {path.with_suffix('')} (pid {holder})"
            ) from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        os.close(self.fd)


class Daemon:
    """The scheduler loop. Run it in the main thread: it installs SIGTERM and SIGINT
    handlers (and puts the previous ones back when it returns)."""

    def __init__(
        self,
        db: str | os.PathLike[str] | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        config: Config | None = None,
        log: TextIO = sys.stderr,
    ) -> None:
        self.layout: Layout = layout_for(db)
        self.clock = clock
        self.config = config if config is not None else load_config(self.layout.db)
        self.log_stream = log
        self.stopping = False
        self.watches: dict[int, Watch] = {}  # run id -> pidfd watch
        self.ended: set[tuple[int, int]] = set()  # wrapper exits (run, pid) not yet recorded
        self.retry_soon = False  # some work was deferred by a passing failure
        self.selector = selectors.DefaultSelector()

    # -- plumbing -----------------------------------------------------------------------

    def log(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        print(f"{stamp} tock daemon[{os.getpid()}]: {message}", file=self.log_stream, flush=True)

    def _on_signal(self, number: int, frame: Any) -> None:
        self.stopping = True

    def _open(self) -> None:
        try:
            self.layout.db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TockError(f"{self.layout.db.parent}: {exc.strerror}") from None
        self.lock = DaemonLock(self.layout.daemon_lock)
        # One pidfd per running wrapper: the daemon itself may need many descriptors.
        # Jobs get the usual limit back (the launcher restores it).
        self.nofile, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        try:
            self.conn = open_db(self.layout.db, busy_timeout_ms=self.config.busy_timeout_ms)
        except StoreError:
            self.lock.release()
            raise
        output_dir = self.config.output_dir or self.layout.default_output_dir
        output_dir.mkdir(parents=True, exist_ok=True)
        self.fifo = WakeFifo(self.layout.wake_fifo)
        self.signal_read, self.signal_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._previous_wakeup = signal.set_wakeup_fd(self.signal_write)
        self._previous_handlers = {
            number: signal.signal(number, self._on_signal)
            for number in (signal.SIGTERM, signal.SIGINT)
        }
        from engine.edge_callbacks import CallbackEdge
        from engine.edge_events import SiteDaemonEdge
        from engine.edge_files import FileEdge

        # The inputs from outside besides requests and wrappers: each wakes select() through
        # its fileno(), reports rows into `pending`, and follows the tick's state in sync().
        self.pending = journal.PendingRows()
        self.edges: list[Edge] = [
            FileEdge(self.conn, self.clock, self.config, self.log),
            SiteDaemonEdge(self.conn, self.clock, self.config, self.log),
            CallbackEdge(self.conn, self.clock, self.config, self.layout, self.log),
        ]
        for edge in self.edges:
            self.selector.register(edge.fileno(), selectors.EVENT_READ, "edge")
        self.selector.register(self.fifo.fd, selectors.EVENT_READ, "fifo")
        self.selector.register(self.signal_read, selectors.EVENT_READ, "signal")
        self.launcher: Launcher | None = None
        self.dispatcher = Dispatcher(
            self.conn, self.clock, output_dir, self._new_launcher, self.log
        )

    def _close(self) -> None:
        for watch in self.watches.values():
            watch.close()
        if self.launcher is not None:
            self.launcher.close()
        for edge in self.edges:
            edge.close()
        self.selector.close()
        signal.set_wakeup_fd(self._previous_wakeup)
        for number, handler in self._previous_handlers.items():
            signal.signal(number, handler)
        os.close(self.signal_read)
        os.close(self.signal_write)
        self.fifo.close()
        self.conn.close()
        self.lock.release()

    # -- the loop -----------------------------------------------------------------------

    def run(self, *, exit_when_idle: bool = False) -> int:
        self._open()
        recorded = False
        try:
            while not self.stopping:
                try:
                    if not recorded:
                        self._record_start()
                        self._load_system_calendars()
                        for edge in self.edges:
                            edge.start(self.pending)
                        requeue_unclaimed(self.conn)  # a previous daemon's starts may be lost
                        recorded = True
                        self.log(
                            f"started on {self.layout.db} (max_running "
                            f"{self.config.max_running}, config {self.config.source or 'defaults'})"
                        )
                    if self.turn(exit_when_idle=exit_when_idle):
                        self.log("idle: nothing runs and nothing can start without new input")
                        break
                except (StoreError, sqlite3.Error) as exc:
                    # A locked or damaged database must not end the daemon: wait and retry.
                    self.log(f"error: {exc}; retrying in {RETRY_AFTER_ERROR:.0f} s")
                    time.sleep(RETRY_AFTER_ERROR)
            self.log("stopped")
        finally:
            self._close()
        return 0

    def turn(self, *, exit_when_idle: bool = False) -> bool:
        """One pass: decide, act, sleep until something happens. True when idle and done."""
        with translated_errors(self.layout.db):
            self._record_ended()
            deferred = 0
            # Dispatching and watching may write rows themselves (run_lost, dispatch_failed):
            # tick again until nothing new is left, so they are not left waiting for input.
            while True:
                for edge in self.edges:
                    edge.collect(self.pending)
                self.pending.flush(self.conn)
                result = run_until_caught_up(self.conn)
                if result.errors:
                    self.log(
                        f"{result.errors} journal row(s) could not be applied; see tick_errors"
                    )
                deferred = self.dispatcher.run_pending()
                self._watch_running()
                changed = [edge.sync(self.pending) for edge in self.edges]
                if not (journal.pending_count(self.conn) or any(changed) or self.pending.rows):
                    break
            if exit_when_idle and self.idle():
                return True
            wakeup = self.next_wakeup()
        now = self.clock.now()
        due = [wakeup] if wakeup is not None else []
        edges = [edge.next_due(now) for edge in self.edges]
        due.extend(t for t in edges if t is not None)
        if deferred or self.retry_soon:
            due.append(now + RETRY_DEFERRED)
            self.retry_soon = False
        self._wait(max(0.0, min(due) - now) if due else None)
        if wakeup is not None and self.clock.now() >= wakeup:
            self._tick_clock()
        return False

    def _wait(self, timeout: float | None) -> None:
        for key, _ in self.selector.select(timeout):
            source = key.data
            if source == "fifo":
                self.fifo.drain()
            elif source == "edge":
                pass  # the next turn collects what it reported
            elif source == "signal":
                with contextlib.suppress(BlockingIOError):
                    while os.read(self.signal_read, 4096):
                        pass
            elif source == "launcher":
                self._read_launcher()
            elif isinstance(source, Watch):
                self.selector.unregister(source.fd)
                self.watches.pop(source.run_id, None)
                source.close()
                self.ended.add((source.run_id, source.pid))

    def _new_launcher(self) -> Launcher:
        """Start a launcher, replacing the current one; the dispatcher calls this too."""
        if self.launcher is not None:
            self.selector.unregister(self.launcher.fileno())
            self.launcher.close()
        self.launcher = Launcher(self.layout, self.config.kill_grace_period, self.nofile)
        self.selector.register(self.launcher.fileno(), selectors.EVENT_READ, "launcher")
        return self.launcher

    def _read_launcher(self) -> None:
        assert self.launcher is not None
        try:
            exits = self.launcher.read()
        except LauncherGone as exc:
            self.log(f"{exc}; starting a new launcher")
            self.dispatcher.launcher = self._new_launcher()
            requeue_unclaimed(self.conn)
            return
        self.ended.update((gone.run_id, gone.pid) for gone in exits)

    # -- journal rows the daemon writes ----------------------------------------------------

    def _record_start(self) -> None:
        with write(self.conn):
            journal.append(
                self.conn,
                time=self.clock.now(),
                kind=journal.DAEMON_START,
                user=current_user(),
                payload={
                    "pid": os.getpid(),
                    "max_running": self.config.max_running,
                    "orphan_grace_period": self.config.orphan_grace_period,
                    "admins": list(self.config.admins),
                    "public_events": list(self.config.public_events),
                },
            )

    def _load_system_calendars(self) -> None:
        """Read the calendars file; SYS calendars become what it holds. Ids are allocated
        here, in the transaction that writes the row, so a replay reuses them."""
        from engine.calendar_store import SYSTEM_OWNER, CalendarDef, allocate, find_calendar
        from engine.syscalendars import parse_calendars_file

        path = self.config.calendars_file or self.layout.db.parent / "lsb.calendars"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            if self.config.calendars_file is not None:
                self.log(f"error: {path}: no such file; system calendars left as they were")
                return
            text = ""
        except (OSError, UnicodeDecodeError) as exc:
            self.log(f"error: {path}: cannot read ({exc}); system calendars left as they were")
            return
        parsed = parse_calendars_file(text, str(path))
        for diagnostic in parsed.diagnostics:
            self.log(f"error: {diagnostic} (section skipped)")
        for warning in parsed.warnings:
            self.log(f"warning: {warning}")
        with write(self.conn):
            live = self.conn.execute(
                "SELECT count(*) FROM calendars WHERE kind = 'system' AND deleted = 0"
            ).fetchone()[0]
            if not parsed.calendars and not live:
                return
            defs = []
            for item in parsed.calendars:
                row = find_calendar(self.conn, item.name, SYSTEM_OWNER)
                if row is not None:
                    calendar_id, event_id = int(row["id"]), int(row["event_id"])
                else:
                    calendar_id = allocate(self.conn, "calendar")
                    event_id = allocate(self.conn, "event")
                defs.append(
                    CalendarDef(
                        id=calendar_id,
                        event_id=event_id,
                        name=item.name,
                        owner=SYSTEM_OWNER,
                        kind="system",
                        expression=item.expression,
                        compiled=item.compiled,
                        timezone=item.timezone,
                        description=item.description,
                    ).payload()
                )
            journal.append(
                self.conn,
                time=self.clock.now(),
                kind=journal.SYSTEM_CALENDARS,
                user=current_user(),
                payload={"source": str(path), "calendars": defs},
            )
        self.log(f"{len(defs)} system calendar(s) from {path}")

    def _tick_clock(self) -> None:
        """A timer expired: the time is recorded as an input, and the tick acts on it."""
        with write(self.conn):
            journal.append(
                self.conn, time=self.clock.now(), kind=journal.CLOCK, user=current_user()
            )

    def _record_ended(self) -> None:
        """Record the wrapper exits seen so far; one kept until its write succeeds."""
        for run_id, pid in sorted(self.ended):
            wrapper_ended(self.conn, self.clock.now(), current_user(), run_id, pid)
            self.ended.discard((run_id, pid))

    # -- liveness -----------------------------------------------------------------------

    def _watch_running(self) -> None:
        """Keep a pidfd on every claimed run's wrapper."""
        rows = self.conn.execute(
            "SELECT id, pid, pid_start FROM job_runs WHERE status = 'running'"
        ).fetchall()
        live = {row["id"] for row in rows}
        for run_id in list(self.watches):
            if run_id not in live:
                watch = self.watches.pop(run_id)
                self.selector.unregister(watch.fd)
                watch.close()
        for row in rows:
            if row["id"] in self.watches or row["pid"] is None:
                continue
            try:
                new = watch_wrapper(row["id"], row["pid"], row["pid_start"])
            except OSError as exc:
                self.log(f"cannot watch the wrapper of run {row['id']} yet: {exc.strerror}")
                self.retry_soon = True
                continue
            if new is None:
                self.ended.add((row["id"], row["pid"]))
                self._record_ended()
                continue
            self.watches[row["id"]] = new
            self.selector.register(new.fd, selectors.EVENT_READ, new)

    # -- when to wake, when to stop ---------------------------------------------------------

    def next_wakeup(self) -> float | None:
        """The next time a decision falls due with no other input: an orphan's grace end,
        a boundary (start or end of a time event) of a calendar some job waits on, an
        age() or stable() threshold of a file event, or a run's timeout."""
        row = self.conn.execute(
            "SELECT (SELECT min(invalid_since) FROM jobs WHERE invalid_since IS NOT NULL) "
            "+ orphan_grace FROM tick_state"
        ).fetchone()
        calendar = self.conn.execute(
            "SELECT min(c.next_change) FROM calendars AS c WHERE c.deleted = 0 "
            "AND c.next_change IS NOT NULL AND EXISTS (SELECT 1 FROM job_calendars AS jc "
            "JOIN jobs AS j ON j.id = jc.job_id WHERE jc.event_id = c.event_id "
            "AND j.state IN ('PEND', 'PSUSP', 'RUN'))"
        ).fetchone()
        files = self.conn.execute(
            "SELECT min(next_check) FROM file_events WHERE removed IS NULL "
            "AND next_check IS NOT NULL"
        ).fetchone()
        timeout = self.conn.execute("SELECT min(timeout_at) FROM job_runs").fetchone()
        due = [
            float(value)
            for value in (row[0], calendar[0], files[0], timeout[0])
            if value is not None
        ]
        return min(due) if due else None

    def idle(self) -> bool:
        """Nothing runs, nothing is queued, and no timer is set: only new input can help."""
        busy = self.conn.execute(
            "SELECT (SELECT count(*) FROM journal"
            "         WHERE id > (SELECT journal_cursor FROM tick_state))"
            " + (SELECT count(*) FROM actions WHERE status = 'pending')"
            " + (SELECT count(*) FROM job_runs WHERE status IN ('dispatched', 'running'))"
            " + (SELECT count(*) FROM callback_runs WHERE status = 'pending')"
        ).fetchone()[0]
        return busy == 0 and self.next_wakeup() is None
