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
from typing import Any, TextIO

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
        from engine.file_watch import FileMonitor

        self.files = FileMonitor(
            poll_prefixes=self.config.file_poll_paths,
            poll_interval=self.config.file_poll_interval,
            scan_interval=self.config.file_scan_interval,
        )
        self.file_generation: int | None = None
        # What the watcher and the site daemons reported, kept until it is in the journal.
        self.unwritten_observations: list[dict[str, Any]] = []
        self.unwritten_posts: list[dict[str, Any]] = []
        from engine.event_daemons import EventDaemons

        self.eventd = EventDaemons(self.config.event_daemons)
        self.user_generation: int | None = None
        self.selector.register(self.eventd.fileno(), selectors.EVENT_READ, "eventd")
        from engine.callback_runner import CallbackPool

        self.callbacks = CallbackPool()
        self.callbacks_sent: set[str] = set()  # keys in the pool, until their result is written
        self.callbacks_seen = 0  # the highest callback_runs.id handed to the pool
        self.unwritten_results: list[tuple[str, dict[str, Any], int | None]] = []
        self.callback_confs: dict[str, float | None] = {}  # callbacks.conf -> mtime loaded
        self.callback_check_at = 0.0  # monotonic time of the next look at them
        self.selector.register(self.callbacks.fileno(), selectors.EVENT_READ, "callbacks")
        self.selector.register(self.files.fileno(), selectors.EVENT_READ, "files")
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
        self.files.close()
        self.eventd.close()
        self.callbacks.close()
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
                        self.eventd.start(self.clock.now())
                        self._load_callbacks()
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
            self._reload_callbacks_now_and_then()
            while True:
                self._observe_files()
                self._read_event_daemons()
                self._collect_callbacks()
                result = run_until_caught_up(self.conn)
                if result.errors:
                    self.log(
                        f"{result.errors} journal row(s) could not be applied; see tick_errors"
                    )
                deferred = self.dispatcher.run_pending()
                self._start_callbacks()
                self._watch_running()
                targets_changed = self._sync_file_targets()
                self._sync_subscriptions()
                if journal.pending_count(self.conn) == 0 and not targets_changed:
                    break
            if exit_when_idle and self.idle():
                return True
            wakeup = self.next_wakeup()
        now = self.clock.now()
        due = [wakeup] if wakeup is not None else []
        edges = (self.files.next_due(), self.eventd.next_due(), self.callbacks.next_due())
        due.extend(t for t in edges if t is not None)
        if self.callback_confs and any(stamp is not None for stamp in self.callback_confs.values()):
            due.append(now + self.CALLBACK_CHECK)  # a callbacks.conf exists: watch it change
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
            elif source in ("files", "eventd", "callbacks"):
                pass  # the next turn collects what the watcher or the site daemons reported
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

    # -- file events ------------------------------------------------------------------------

    def _sync_file_targets(self) -> bool:
        """Give the watcher the paths live file events read, when the tick changed them.
        True when it did (their first stat is then due)."""
        generation = int(self.conn.execute("SELECT file_generation FROM tick_state").fetchone()[0])
        if generation == self.file_generation:
            return False
        self.file_generation = generation
        targets = [
            row[0]
            for row in self.conn.execute(
                "SELECT DISTINCT p.path FROM file_event_paths AS p JOIN file_events AS f "
                "ON f.event_id = p.event_id WHERE f.removed IS NULL"
            )
        ]
        self.files.set_targets(targets, self.clock.now())
        return True

    def _observe_files(self) -> None:
        """Stat what may have changed and journal what did: the tick never reads the file
        system, so a replay needs none."""
        now = self.clock.now()
        stats = self.files.collect(now)
        for error in self.files.errors():
            self.log(f"file watcher: {error}; polling every file event path until it restarts")
        if not stats and not self.unwritten_observations:
            return
        known: dict[str, tuple[bool, int, float, int]] = {}
        paths = sorted(stats)
        for start in range(0, len(paths), 500):
            chunk = paths[start : start + 500]
            rows = self.conn.execute(
                "SELECT path, present, size, mtime, inode FROM file_paths "
                f"WHERE path IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            known.update((row[0], (bool(row[1]), row[2], row[3], row[4])) for row in rows)
        changes = self.unwritten_observations
        for path in paths:
            stat = stats[path]
            seen = (True, stat.size, stat.mtime, stat.inode) if stat.exists else (False, 0, 0.0, 0)
            if known.get(path) != seen:
                changes.append(
                    {
                        "path": path,
                        "exists": seen[0],
                        "size": seen[1],
                        "mtime": seen[2],
                        "inode": seen[3],
                    }
                )
        if not changes:
            return
        with write(self.conn):
            journal.append(
                self.conn,
                time=now,
                kind=journal.FILE_OBSERVED,
                user=current_user(),
                payload={"observations": changes},
            )
        # Kept until written: a locked database must not lose what the watcher saw.
        self.unwritten_observations = []

    # -- callbacks ---------------------------------------------------------------------------

    CALLBACK_CHECK = 2.0  # seconds between looks at the callbacks.conf files

    def _reload_callbacks_now_and_then(self) -> None:
        now = time.monotonic()
        if now >= self.callback_check_at:
            self.callback_check_at = now + self.CALLBACK_CHECK
            self._load_callbacks()

    def _load_callbacks(self) -> None:
        """Read every callbacks.conf of the callback path; journal the set when it changed.
        Bad lines and refused files are logged and skipped; the good lines load."""
        from engine.callback_store import CallbackDef, find_universal, live_universal
        from engine.callbacks_conf import callback_path, format_trigger, load_callback_dir, to_json

        try:
            directories = callback_path(
                self.config.universal_callback_path, os.environ, self.layout.db.parent
            )
        except ValueError as exc:
            self.log(f"error: {exc}; universal callbacks left as they were")
            return
        stamps: dict[str, float | None] = {}
        for directory in directories:
            conf = directory / "callbacks.conf"
            try:
                stamps[str(conf)] = conf.stat().st_mtime
            except OSError:
                stamps[str(conf)] = None
        if stamps == self.callback_confs:
            return
        self.callback_confs = stamps
        from engine.calendar_store import allocate

        with write(self.conn):
            defs = []
            for directory in directories:
                result = load_callback_dir(directory)
                for diagnostic in result.diagnostics:
                    self.log(f"error: {diagnostic} (skipped)")
                for entry in result.entries:
                    path = str(directory / entry.filename)
                    text = format_trigger(entry.trigger)
                    known = find_universal(self.conn, path, text)
                    defs.append(
                        CallbackDef(
                            known if known is not None else allocate(self.conn, "callback"),
                            "universal",
                            path,
                            entry.language,
                            text,
                            to_json(entry.trigger),
                            f"{directory / 'callbacks.conf'}:{entry.line}",
                        ).payload()
                    )
            live = {int(row["id"]) for row in live_universal(self.conn)}
            if {item["id"] for item in defs} == live:
                return
            journal.append(
                self.conn,
                time=self.clock.now(),
                kind=journal.CALLBACKS_LOADED,
                user=current_user(),
                payload={"callbacks": defs},
            )
        self.log(f"{len(defs)} universal callback(s) from {len(directories)} director(ies)")

    def _start_callbacks(self) -> None:
        """Hand the pending runs of the outbox to the pool (again after a restart: a run
        is at least once, and the tick records one result per key)."""
        from engine.callback_fire import pending_runs
        from engine.callback_runner import CallbackRequest

        now = self.clock.now()
        for run in pending_runs(self.conn, after=self.callbacks_seen):
            self.callbacks_seen = max(self.callbacks_seen, int(run["id"]))
            if run["key"] in self.callbacks_sent:
                continue
            job = self.conn.execute("SELECT * FROM jobs WHERE id = ?", (run["job_id"],)).fetchone()
            scope = self.conn.execute(
                "SELECT scope FROM callbacks WHERE id = ?", (run["callback_id"],)
            ).fetchone()[0]
            if scope == "job" and job["user"] not in (current_user(), "root"):
                # A callback runs as the daemon's user: another user's own callback file
                # would run with rights its owner does not have.
                self.unwritten_results.append(
                    (
                        journal.CALLBACK_FINISHED,
                        {
                            "key": run["key"],
                            "status": "error",
                            "exit_code": None,
                            "duration": 0.0,
                            "output_tail": f"[refused: a --callback of {job['user']} does not "
                            f"run under a daemon of {current_user()}]",
                        },
                        None,
                    )
                )
                self.callbacks_sent.add(run["key"])
                continue
            info = {
                "id": job["id"],
                "name": job["name"],
                # As the job was when the callback fired (the transition's state), not
                # as it is now: the run may start later, or after a restart.
                "status": run["transition"].partition(":")[2] or job["state"],
                "user": job["user"],
                "command": job["command"],
                "exit_code": job["exit_code"],
                "cwd": job["cwd"],
            }
            self.callbacks.submit(
                CallbackRequest(
                    key=run["key"],
                    path=run["path"],
                    language=run["language"],
                    job_id=run["job_id"],
                    work_id=run["work_id"],
                    trigger=run["trigger"],
                    transition=run["transition"],
                    jobinfo=[info],
                    user=job["user"],
                    spool_dir=str(self.layout.db.parent / "mail"),
                ),
                now,
            )
            self.callbacks_sent.add(run["key"])

    def _collect_callbacks(self) -> None:
        """Results, and the actions callbacks asked for, as journal rows: an action is a
        request of the job's owner like any other (unblock is a resume, kill a kill)."""
        for result in self.callbacks.collect(self.clock.now()):
            self.callbacks_sent.discard(result.key)
            owner = self.conn.execute(
                "SELECT j.user FROM callback_runs AS r JOIN jobs AS j ON j.id = r.job_id "
                "WHERE r.key = ?",
                (result.key,),
            ).fetchone()
            user = owner[0] if owner is not None else current_user()
            unsupported = []
            for action in result.actions:
                kind = {"unblock": journal.RESUME, "kill": journal.KILL}.get(action.action)
                if kind is None:
                    unsupported.append(action.action)
                    continue
                self.unwritten_results.append((kind, {"user": user}, action.job_id))
            tail = result.output_tail
            if result.error:
                tail = f"{tail}\n[{result.error}]" if tail else f"[{result.error}]"
            if unsupported:
                tail += f"\n[not supported yet: {', '.join(unsupported)}]"
            self.unwritten_results.append(
                (
                    journal.CALLBACK_FINISHED,
                    {
                        "key": result.key,
                        "status": result.status,
                        "exit_code": result.exit_code,
                        "duration": round(result.duration, 6),
                        "output_tail": tail[-4096:],
                    },
                    None,
                )
            )
        if not self.unwritten_results:
            return
        now = self.clock.now()
        with write(self.conn):
            for kind, payload, job_id in self.unwritten_results:
                if kind == journal.CALLBACK_FINISHED:
                    journal.append(
                        self.conn, time=now, kind=kind, user=current_user(), payload=payload
                    )
                else:
                    journal.append(
                        self.conn, time=now, kind=kind, user=payload["user"], job_id=job_id
                    )
        self.unwritten_results = []

    # -- site event daemons ------------------------------------------------------------------

    def _sync_subscriptions(self) -> None:
        """SUB and UNSUB: the site daemons hear of every user event some job waits on."""
        generation = int(self.conn.execute("SELECT user_generation FROM tick_state").fetchone()[0])
        if generation == self.user_generation:
            return
        self.user_generation = generation
        names = [
            row[0] for row in self.conn.execute("SELECT name FROM user_events WHERE subscribed = 1")
        ]
        self.eventd.subscribe(names)

    def _read_event_daemons(self) -> None:
        """What the site daemons said, as journal rows; their trouble, in the log."""
        posts, reports = self.eventd.collect(self.clock.now())
        for report in reports:
            self.log(f"event daemon {report.daemon}: {report.kind}: {report.detail}")
        for daemon, post in posts:
            self.unwritten_posts.append(
                {
                    "kind": journal.EVENT_POST,
                    "payload": {
                        "name": post.name,
                        "action": post.action,
                        "type": post.type,
                        "attribute": post.attribute,
                        "source": "daemon",
                        "daemon": daemon,
                    },
                }
            )
        for report in reports:
            if report.kind == "exited":
                self.unwritten_posts.append(
                    {
                        "kind": journal.EVENT_DAEMON,
                        "payload": {
                            "daemon": report.daemon,
                            "state": "exited",
                            "detail": report.detail,
                        },
                    }
                )
        if not self.unwritten_posts:
            return
        now, user = self.clock.now(), current_user()
        with write(self.conn):
            for item in self.unwritten_posts:
                journal.append(
                    self.conn, time=now, kind=item["kind"], user=user, payload=item["payload"]
                )
        # Kept until written: a locked database must not lose a START or an END.
        self.unwritten_posts = []

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
        a boundary (start or end of a time event) of a calendar some job waits on, or an
        age() or stable() threshold of a file event."""
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
        due = [float(value) for value in (row[0], calendar[0], files[0]) if value is not None]
        return min(due) if due else None

    def idle(self) -> bool:
        """Nothing runs, nothing is queued, and no timer is set: only new input can help."""
        busy = self.conn.execute(
            "SELECT (SELECT count(*) FROM journal"
            "         WHERE id > (SELECT journal_cursor FROM tick_state))"
            " + (SELECT count(*) FROM actions WHERE status = 'pending')"
            " + (SELECT count(*) FROM jobs WHERE state = 'RUN')"
            " + (SELECT count(*) FROM callback_runs WHERE status = 'pending')"
        ).fetchone()[0]
        return busy == 0 and self.next_wakeup() is None
