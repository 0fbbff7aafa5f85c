"""Which directories to watch with inotify and which targets to poll, for the file watcher
(engine/file_watch.py): pure planning, apart from the stats and mount table it reads.

A target's watch root is the nearest existing directory above it (never watched
recursively: it may be `/`). Targets on file systems where inotify misses remote writes,
or under a configured prefix, are polled instead. Every directory on the way from a watch
root down to a target is indexed, so that a report maps to its targets in one lookup.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

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


def read_mounts() -> list[tuple[str, str]]:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            return parse_mountinfo(f.read())
    except OSError:
        return []
