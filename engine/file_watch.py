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

import contextlib
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from watchfiles._rust_notify import RustNotify

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


# Remote writes do not reach the local inotify on these: they are polled instead. FUSE file
# systems that front a remote store are listed by their `fuse.<name>` type; a local FUSE
# file system sees the writes made through it, and the scan covers the rest. autofs is here
# because what it mounts on demand is nearly always remote.
NO_INOTIFY_FS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ncpfs",
        "9p",
        "afs",
        "coda",
        "ceph",
        "fuse.ceph-fuse",
        "lustre",
        "gpfs",
        "beegfs",
        "orangefs",
        "pvfs2",
        "gfs2",
        "ocfs2",
        "glusterfs",
        "fuse.glusterfs",
        "fuse.sshfs",
        "fuse.s3fs",
        "fuse.rclone",
        "fuse.gcsfuse",
        "fuse.goofys",
        "fuse.mountpoint-s3",
        "fuse.blobfuse2",
        "fuse.juicefs",
        "fuse.mfs",
        "fuse.cvmfs",
        "davfs",
        "fuse.davfs",
        "vboxsf",
        "vmhgfs",
        "fuse.vmhgfs-fuse",
        "virtiofs",
        "drvfs",
        "autofs",
    }
)

_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """The kernel writes space, tab, newline and backslash in mount points as \\ooo."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[tuple[str, str]]:
    """(mount point, fs type) per line of /proc/self/mountinfo, in mount order.

    A line is `id parent major:minor root mountpoint options [optional...] - type source
    superoptions`; the optional fields vary in number, so the type is found after `-`.
    """
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        try:
            dash = fields.index("-", 6)
        except ValueError:
            continue  # malformed: nothing reliable to learn from it
        if dash + 1 < len(fields):
            mounts.append((_unescape(fields[4]), fields[dash + 1]))
    return mounts


def _fs_of(path: str, table: Mapping[str, str]) -> str:
    """The type of the mount `path` is on: its nearest ancestor-or-self that is a mount point."""
    while True:
        fs = table.get(path)
        if fs is not None:
            return fs
        up = os.path.dirname(path)
        if up == path:
            return ""
        path = up


def fs_type(path: str, mounts: list[tuple[str, str]]) -> str:
    """The fs of the longest mount point containing `path` ("" if none); of mounts stacked on
    one point, the last (topmost) one."""
    return _fs_of(os.path.normpath(path), dict(mounts))


def watch_root(path: str) -> str:
    """The directory to watch for `path`: its parent, or the nearest ancestor that exists."""
    return _root_of(os.path.dirname(os.path.normpath(path)), {})


def _root_of(directory: str, known: dict[str, bool]) -> str:
    """The nearest existing directory from `directory` up, '/' at worst; `known` caches
    isdir() across the targets of one plan (a thousand targets may share a parent)."""
    while True:
        exists = known.get(directory)
        if exists is None:
            exists = known[directory] = os.path.isdir(directory)
        if exists:
            return directory
        up = os.path.dirname(directory)
        if up == directory:
            return directory
        directory = up


def _within(path: str, prefix: str) -> bool:
    """Path-component aware: /mnt/a is within /mnt/a and / but not within /mnt/ab."""
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def _utf8(path: str) -> bool:
    """RustNotify takes UTF-8 paths only; a non-UTF-8 name (surrogate-escaped) is polled."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class WatchPlan:
    """Which directories to watch with inotify and which targets to poll."""

    targets: frozenset[str]
    dirs: frozenset[str]  # inotify watch roots (existing directories), for targets not polled
    polled: frozenset[str]  # targets on a file system inotify cannot see, or under a prefix
    # normalized path -> the targets spelled that way
    by_path: Mapping[str, tuple[str, ...]] = field(default_factory=dict, repr=False, compare=False)
    # directory from a watch root down to a target's parent (both included) -> targets below
    by_way: Mapping[str, frozenset[str]] = field(default_factory=dict, repr=False, compare=False)

    def affected(self, changed: str) -> set[str]:
        """The targets a reported change concerns: the target itself, or every target below a
        directory on the way (a missing directory created, a watched one removed)."""
        path = os.path.normpath(changed)
        found = set(self.by_path.get(path, ()))
        found.update(self.by_way.get(path, ()))
        return found

    def replan_needed(self, changed: str) -> bool:
        """A directory on a target's way appeared or went: the watch roots may move."""
        return os.path.normpath(changed) in self.by_way


def make_plan(
    targets: Iterable[str], mounts: list[tuple[str, str]], poll_prefixes: Sequence[str]
) -> WatchPlan:
    """Group the targets by parent, find each parent's watch root once, and index every
    directory on the way so that a report maps to its targets in one lookup."""
    table = dict(mounts)
    prefixes = [os.path.normpath(prefix) for prefix in poll_prefixes]
    by_path: dict[str, list[str]] = {}
    for target in targets:
        if not os.path.isabs(target):
            raise ValueError(f"{target!r}: a target path must be absolute")
        by_path.setdefault(os.path.normpath(target), []).append(target)
    by_parent: dict[str, list[str]] = {}
    for path in by_path:
        by_parent.setdefault(os.path.dirname(path), []).append(path)

    known: dict[str, bool] = {}
    inotify_sees: dict[str, bool] = {}  # watch root -> inotify can watch it
    dirs: set[str] = set()
    polled: set[str] = set()
    by_way: dict[str, set[str]] = {}
    for parent, paths in by_parent.items():
        # The literal path's mount decides without any I/O on a remote file system.
        parent_fs = _fs_of(parent, table)
        watched = []
        for path in paths:
            if (
                table.get(path, parent_fs) in NO_INOTIFY_FS
                or any(_within(path, prefix) for prefix in prefixes)
                or not _utf8(path)
            ):
                polled.update(by_path[path])
            else:
                watched.append(path)
        if not watched:
            continue
        root = _root_of(parent, known)
        if root not in inotify_sees:
            inotify_sees[root] = _inotify_sees(root, table)
        if not inotify_sees[root]:
            polled.update(target for path in watched for target in by_path[path])
            continue
        dirs.add(root)
        below = {target for path in watched for target in by_path[path]}
        way = parent
        while True:
            by_way.setdefault(way, set()).update(below)
            if way == root:
                break
            way = os.path.dirname(way)
    return WatchPlan(
        targets=frozenset(t for spelled in by_path.values() for t in spelled),
        dirs=frozenset(dirs),
        polled=frozenset(polled),
        by_path={path: tuple(spelled) for path, spelled in by_path.items()},
        by_way={way: frozenset(below) for way, below in by_way.items()},
    )


def _inotify_sees(root: str, table: Mapping[str, str]) -> bool:
    """inotify needs read permission on the directory and a UTF-8 name (for RustNotify), and
    through a symlink the directory may live on another mount."""
    if not (_utf8(root) and os.access(root, os.R_OK | os.X_OK)):
        return False
    return _fs_of(os.path.realpath(root), table) not in NO_INOTIFY_FS


def _watchable(directory: str) -> bool:
    return os.path.isdir(directory) and os.access(directory, os.R_OK | os.X_OK)


class Watcher:
    """One RustNotify over a set of directories, in a background thread; changed paths are
    queued and a byte written to a pipe so the daemon's select() wakes at once."""

    START_ATTEMPTS = 3  # a directory may vanish between our check and the watch, repeatedly

    def __init__(self, *, step_ms: int = 10, debounce_ms: int = 200) -> None:
        self.step_ms = step_ms
        self.debounce_ms = debounce_ms
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
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
        return self._read

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
                    self._poke()
                # 'signal' only ever happens in the main thread.
        except Exception as exc:  # whatever kills the thread must reach the daemon's log
            self._fail(f"file watcher stopped: {exc}")

    def _fail(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)
            self.failed = True
        self._poke()

    def _poke(self) -> None:
        with contextlib.suppress(BlockingIOError):  # a full pipe already holds a wake-up
            os.write(self._write, b"!")

    def take(self) -> set[str]:
        """Every path reported since the last take."""
        return self.take_reports()[0]

    def take_reports(self) -> tuple[set[str], set[str]]:
        """(every path reported, those reported created) since the last take."""
        self._drain()
        with self._lock:
            changed, self._changed = self._changed, set()
            created, self._created = self._created, set()
        return changed, created

    def take_errors(self) -> list[str]:
        # The pipe is left alone: only take() may drain it, or a report could lose its byte.
        with self._lock:
            errors, self.errors = self.errors, []
        return errors

    def _drain(self) -> None:
        # Drained before the queue is taken: a report queued after this leaves its byte.
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read, 4096):
                pass

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
        os.close(self._read)
        os.close(self._write)


def _read_mounts() -> list[tuple[str, str]]:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            return parse_mountinfo(f.read())
    except OSError:
        return []


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
        mounts = self._mounts if self._mounts is not None else _read_mounts()
        self._plan_mounts = mounts
        self.plan = make_plan(targets, mounts, self.poll_prefixes)
        if self._watcher.watch(self.plan.dirs):
            self._queue(self.plan.targets, now)  # a change may have fallen between watchers
        self._errors.extend(self._watcher.take_errors())

    def _layout_moved(self) -> bool:
        mounts = self._mounts if self._mounts is not None else _read_mounts()
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
