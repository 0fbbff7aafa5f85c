"""Files the daemon may run: the one rule for callback files and site event daemons.

The daemon runs what they contain with its own rights, so whoever could change them could
act as the daemon. A file (and its own directory, where the caller asks) must be owned by
the daemon's user or root and not be writable by group or others; every directory above
must be too, except that a sticky directory such as /tmp may be writable by others (its
entries can be renamed only by their owners, and by its own owner, who is checked).
Directories are checked both as written and with symlinks resolved. Permission bits only;
ACLs are not read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator


def _upwards(directory: str) -> Iterator[str]:
    while True:
        yield directory
        up = os.path.dirname(directory)
        if up == directory:
            return
        directory = up


def refusal(path: str, st: os.stat_result, uid: int, what: str = "") -> str | None:
    """Why `st` (of `path`, or of `what` on its way) is not to be trusted, or None."""
    if st.st_mode & 0o022:
        mode = stat.S_IMODE(st.st_mode)
        return f"{path}: {what}writable by group or others (mode {mode:04o})"
    if st.st_uid not in (uid, 0):
        return f"{path}: {what}owned by uid {st.st_uid}, neither the daemon's user nor root"
    return None


def stat_problem(path: str) -> tuple[os.stat_result | None, str | None]:
    """(its stat, None), or (None, why it cannot be looked at)."""
    try:
        return os.stat(path), None
    except (OSError, ValueError) as exc:
        return None, f"{path}: {getattr(exc, 'strerror', None) or exc}"


def directories_refusal(subject: str, starts: Iterable[str], uid: int) -> str | None:
    """The first directory at or above each of `starts` that `subject` must not trust."""
    seen: set[str] = set()
    for start in starts:
        for directory in _upwards(start):
            if directory in seen:
                continue
            seen.add(directory)
            try:
                st = os.stat(directory)
            except OSError as exc:
                return f"{directory}: {exc.strerror}"
            if st.st_mode & 0o022 and st.st_mode & stat.S_ISVTX and st.st_uid in (uid, 0):
                continue  # sticky: others may write it, but not rename what is ours
            found = refusal(subject, st, uid, f"directory {directory} is ")
            if found is not None:
                return found
    return None


def check_command(argv0: str) -> str | None:
    """Why this executable must not run as an event daemon, or None if it may: an absolute
    path to a regular, executable file that engine/trust.py trusts, with every directory
    on the way to it (its own may be sticky, as /tmp is)."""
    if not os.path.isabs(argv0):
        return f"{argv0}: not an absolute path"
    st, problem = stat_problem(argv0)
    if st is None:
        return problem
    if not stat.S_ISREG(st.st_mode):
        return f"{argv0}: not a regular file"
    if not st.st_mode & 0o111 or not os.access(argv0, os.X_OK):
        return f"{argv0}: not executable"
    found = refusal(argv0, st, os.geteuid())
    if found is not None:
        return found
    starts = (os.path.dirname(os.path.normpath(argv0)), os.path.dirname(os.path.realpath(argv0)))
    return directories_refusal(argv0, starts, os.geteuid())
