"""Watching target paths for file events: which may have changed, and their stat now.

The store names the target paths that some `file(...)` event reads. This module finds out,
cheaply, which of them may have changed, and stats them; the caller compares with what it
knew and journals the differences. It never touches the database.

Three sources, because none is enough alone:
- inotify, through one watchfiles `RustNotify` (one instance: `max_user_instances` is
  small) over the nearest existing directory above each target, never recursive (that
  directory may be `/`). A background thread queues the reported paths and writes a byte
  to a pipe, so the daemon's `select()` wakes at once (~step_ms after the change).
- polling, for targets on network file systems (inotify does not see writes made by other
  hosts) or under a configured prefix, every `poll_interval`.
- a reconciling scan of every target every `scan_interval`: inotify drops events on queue
  overflow, a watched directory renamed keeps reporting under its old name, and a watch can
  fail; the scan bounds how long any of that can go unnoticed.

The daemon registers `FileMonitor.fileno()` with its selector, includes `next_due()` in its
timeout, and calls `collect(now)` when either comes. Scheduling uses the `now` it is given.
Statting a target on a hung hard-mounted NFS server blocks the caller: that is the price of
polling in the daemon's thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from watchfiles._rust_notify import RustNotify

from engine.children import WakePipe
from engine.watch_plan import make_plan, parse_mountinfo, read_mounts

ADDED = 1  # watchfiles.Change.added: a name created, or renamed into place


@dataclass(frozen=True, slots=True)
class Stat:
    """A target now. `created`: inotify reported the name created (or renamed into place)
    since the last collect, so the file is new even when a stat before and after would
    both find one (deleted and created again within one batch, or replaced by rename)."""

    exists: bool
    size: int = 0
    mtime: float = 0.0
    created: bool = False
    inode: int = 0  # a new inode under the same name is a new file


def observe(path: str) -> Stat:
    """The target as a job would see it (symlinks followed); anything unreadable is absent."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):  # missing, permission, ENOTDIR, ELOOP; a NUL in the path
        return Stat(False)
    return Stat(True, st.st_size, st.st_mtime, inode=st.st_ino)


def _watchable(directory: str) -> bool:
    return os.path.isdir(directory) and os.access(directory, os.R_OK | os.X_OK)


class Watcher:
    """One RustNotify over a set of directories, in a background thread; changed paths are
    queued and a byte written to a pipe so the daemon's select() wakes at once."""

    START_ATTEMPTS = 3  # a directory may vanish between our check and the watch, repeatedly

    def __init__(self, *, step_ms: int = 10, debounce_ms: int = 200) -> None:
        self.step_ms = step_ms
        self.debounce_ms = debounce_ms
        self._wake = WakePipe()
        self._lock = threading.Lock()
        self._changed: set[str] = set()
        self._created: set[str] = set()
        self.errors: list[str] = []
        # True from a thread's death or a failed start until a watcher starts again.
        self.failed = False
        self.dirs: frozenset[str] = frozenset()  # what the running thread watches
        self._notify: RustNotify | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False

    def fileno(self) -> int:
        return self._wake.fileno()

    def watch(self, dirs: Iterable[str]) -> bool:
        """Watch exactly these directories (those that still exist). True when the watched
        set changed: reports in flight during the change may have been lost."""
        wanted = frozenset(d for d in dirs if _watchable(d))
        if wanted == self.dirs and not self.failed:
            return False
        notify = None
        for _ in range(self.START_ATTEMPTS):
            if not wanted:
                break
            try:
                # Started before the old one stops, so that no change falls between the two.
                notify = RustNotify(sorted(wanted), False, False, 0, False, False)
                break
            except (FileNotFoundError, PermissionError) as exc:
                still = frozenset(d for d in wanted if _watchable(d))
                if still == wanted:  # not a race we can step around
                    self._fail(f"cannot watch {len(wanted)} directories: {exc}")
                    return False
                wanted = still
            except (OSError, RuntimeError) as exc:  # inotify limits; WatchfilesRustInternalError
                self._fail(f"cannot watch {len(wanted)} directories: {exc}")
                return False  # the old watcher, if any, goes on
        else:
            self._fail(f"cannot watch {len(wanted)} directories: they keep vanishing")
            return False
        self._stop_thread()
        self.dirs = wanted
        self.failed = False
        if notify is not None:
            self._stop = threading.Event()
            self._notify = notify
            self._thread = threading.Thread(
                target=self._run, args=(notify, self._stop), name="tock-file-watch", daemon=True
            )
            self._thread.start()
        return True

    def _run(self, notify: RustNotify, stop: threading.Event) -> None:
        try:
            while True:
                # No timeout: watchfiles clears its pending changes when it returns one.
                result = notify.watch(self.debounce_ms, self.step_ms, 0, stop)
                if result == "stop":
                    return
                if isinstance(result, set):
                    with self._lock:
                        self._changed.update(path for _, path in result)
                        self._created.update(path for change, path in result if change == ADDED)
                    self._wake.poke()
                # 'signal' only ever happens in the main thread.
        except Exception as exc:  # whatever kills the thread must reach the daemon's log
            self._fail(f"file watcher stopped: {exc}")

    def _fail(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)
            self.failed = True
        self._wake.poke()

    def take(self) -> set[str]:
        """Every path reported since the last take."""
        return self.take_reports()[0]

    def take_reports(self) -> tuple[set[str], set[str]]:
        """(every path reported, those reported created) since the last take."""
        self._wake.drain()
        with self._lock:
            changed, self._changed = self._changed, set()
            created, self._created = self._created, set()
        return changed, created

    def take_errors(self) -> list[str]:
        # The pipe is left alone: only take() may drain it, or a report could lose its byte.
        with self._lock:
            errors, self.errors = self.errors, []
        return errors

    def _stop_thread(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        if self._notify is not None:
            self._notify.close()
            self._notify = None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop_thread()
        self._wake.close()


class FileMonitor:
    """What may have changed, and its stat now: inotify reports, polled targets when their
    poll is due, every target at a reconciling scan."""

    def __init__(
        self,
        *,
        poll_prefixes: Sequence[str] = (),
        poll_interval: float = 5.0,
        scan_interval: float = 60.0,
        step_ms: int = 10,
        mounts_text: str | None = None,
    ) -> None:
        self.poll_prefixes = tuple(poll_prefixes)
        self.poll_interval = poll_interval
        self.scan_interval = scan_interval
        # Given mounts are fixed; otherwise they are read again at every replan, so that a
        # file system mounted later is seen for what it is.
        self._mounts = None if mounts_text is None else parse_mountinfo(mounts_text)
        self._watcher = Watcher(step_ms=step_ms)
        self.plan = make_plan((), [], ())
        self._plan_mounts: list[tuple[str, str]] = []
        self._queued: set[str] = set()
        self._queued_at: float | None = None
        self._poll_due = 0.0
        self._scan_due = 0.0
        self._errors: list[str] = []

    def fileno(self) -> int:
        return self._watcher.fileno()

    def set_targets(self, targets: Iterable[str], now: float) -> None:
        """Watch these targets; the new ones are stat'ed at the next collect."""
        wanted = frozenset(targets)
        if wanted == self.plan.targets:
            return
        if not self.plan.targets:
            self._poll_due = now + self.poll_interval
            self._scan_due = now + self.scan_interval
        self._queue(wanted - self.plan.targets, now)
        self._replan(wanted, now)

    def next_due(self) -> float | None:
        """When collect() has something to do without a report: a poll, a scan, or targets
        queued for their first stat."""
        if not self.plan.targets:
            return None
        due = [self._scan_due]
        if self.plan.polled or self._watcher.failed:
            due.append(self._poll_due)
        if self._queued_at is not None:
            due.append(self._queued_at)
        return min(due)

    def collect(self, now: float) -> dict[str, Stat]:
        """The targets that may have changed, each stat'ed once."""
        self._errors.extend(self._watcher.take_errors())
        if not self.plan.targets:
            self._watcher.take()  # a report still in flight from the last watcher
            return {}
        due: set[str] = set()
        replan = False
        reported, created = self._watcher.take_reports()
        for path in reported:
            due.update(self.plan.affected(path))
            replan = replan or self.plan.replan_needed(path)
        new = {target for path in created for target in self.plan.by_path.get(path, ())}
        if now >= self._scan_due:
            # A mount or a watched directory that went without a report moves the plan;
            # re-walking every root each time would cost a realpath per directory.
            due.update(self.plan.targets)
            replan = replan or self._layout_moved()
            self._scan_due = now + self.scan_interval
        if now >= self._poll_due:
            replan = replan or self._watcher.failed  # try the watcher again, once per poll
            self._poll_due = now + self.poll_interval
            due.update(self.plan.targets if self._watcher.failed else self.plan.polled)
        if replan:
            self._replan(self.plan.targets, now)
            if self._watcher.failed:
                due.update(self.plan.targets)  # it failed again: poll everything meanwhile
        due.update(self._queued)
        self._queued.clear()
        self._queued_at = None
        due &= self.plan.targets
        found = {target: observe(target) for target in due}
        for target in new & due:
            if found[target].exists:
                found[target] = replace(found[target], created=True)
        return found

    def _replan(self, targets: frozenset[str], now: float) -> None:
        mounts = self._mounts if self._mounts is not None else read_mounts()
        self._plan_mounts = mounts
        self.plan = make_plan(targets, mounts, self.poll_prefixes)
        if self._watcher.watch(self.plan.dirs):
            self._queue(self.plan.targets, now)  # a change may have fallen between watchers
        self._errors.extend(self._watcher.take_errors())

    def _layout_moved(self) -> bool:
        mounts = self._mounts if self._mounts is not None else read_mounts()
        if mounts != self._plan_mounts:
            return True
        return not all(os.path.isdir(directory) for directory in self.plan.dirs)

    def _queue(self, targets: Iterable[str], now: float) -> None:
        self._queued.update(targets)
        if self._queued and self._queued_at is None:
            self._queued_at = now

    def errors(self) -> list[str]:
        """What went wrong with the watcher since the last call (the targets are polled
        until it works again)."""
        self._errors.extend(self._watcher.take_errors())
        errors, self._errors = self._errors, []
        return errors

    def close(self) -> None:
        self._watcher.close()
