"""The callback directories: where they are (config, environment, default), and loading
each one's callbacks.conf with the security checks that a file running as the daemon's
user needs (engine/trust.py's rule; a bad or refused line is skipped, the others load).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from engine.callbacks_conf import (
    CallbackEntry,
    ConfResult,
    filename_problem,
    parse_callbacks_conf,
)
from engine.errors import Diagnostic
from engine.trust import directories_refusal, refusal, stat_problem

CONF_NAME = "callbacks.conf"
PATH_ENV = "TOCK_CALLBACK_PATH"


def callback_path(config_value: str | None, env: Mapping[str, str], state_dir: Path) -> list[Path]:
    """The callback directories, in order.

    A non-empty `$TOCK_CALLBACK_PATH` wins over the configured `universal_callback_path`,
    as Tock's other environment variables win over tock.toml; with neither, the one
    directory `<state dir>/callback`. A list is comma-separated; empty parts are ignored,
    so a configured "" turns universal callbacks off, and a directory named twice counts
    once. A relative directory is a ValueError: it would depend on where the daemon was
    started.
    """
    value, origin = env.get(PATH_ENV), PATH_ENV
    if not value:
        value, origin = config_value, "universal_callback_path"
    if value is None:
        return [state_dir / "callback"]
    found: list[Path] = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        directory = Path(part).expanduser()
        if not directory.is_absolute():
            raise ValueError(f"{origin}: '{part}' is not an absolute directory")
        if directory not in found:
            found.append(directory)
    return found


def _check_directory(directory: Path, uid: int) -> str | None:
    """Why files in `directory` must not be trusted, or None: engine/trust.py's rule, and
    the directory itself may not be writable by group or others even if sticky (whoever
    can add a file there can supply a missing callbacks.conf)."""
    written = os.path.normpath(str(directory))
    if not os.path.isabs(written):
        return f"{written}: not an absolute path"
    st, problem = stat_problem(written)
    if st is None:
        return problem
    if not stat.S_ISDIR(st.st_mode):
        return f"{written}: not a directory"
    found = refusal(written, st, uid)
    if found is not None:
        return found
    starts = (os.path.dirname(written), os.path.dirname(os.path.realpath(written)))
    return directories_refusal(written, starts, uid)


def _check_file(path: str, uid: int) -> str | None:
    st, problem = stat_problem(path)
    if st is None:
        return problem
    if not stat.S_ISREG(st.st_mode):
        return f"{path}: not a regular file"
    found = refusal(path, st, uid)
    if found is not None:
        return found
    if not os.access(path, os.R_OK):
        return f"{path}: not readable"
    return None


def check_callback_file(directory: Path, filename: str, *, uid: int | None = None) -> str | None:
    """Why `directory/filename` must not run as a callback, or None if it may.

    The file must be a regular file that neither the group nor others may write, owned by
    `uid` (the daemon's user: the current effective uid unless given) or root, and so must
    its directory and those above it (see _check_directory). Callbacks run through their
    interpreter (or are read, for .qcb), so the file need not be executable.
    """
    owner = os.geteuid() if uid is None else uid
    problem = filename_problem(filename)
    if problem is not None:
        return problem
    found = _check_directory(directory, owner) or _check_file(
        os.path.join(os.path.normpath(str(directory)), filename), owner
    )
    if found is not None:
        return found
    path = os.path.join(os.path.normpath(str(directory)), filename)
    real = os.path.realpath(path)
    if os.path.dirname(real) != os.path.realpath(directory):  # a symlink out of it
        return _check_directory(Path(os.path.dirname(real)), owner)
    return None


def load_callback_dir(directory: Path, *, uid: int | None = None) -> ConfResult:
    """The callbacks of one directory, each file checked as check_callback_file does.

    No directory or no callbacks.conf is no callbacks and no diagnostic (the default
    directory usually does not exist). A directory or callbacks.conf that fails the
    security check (the daemon would run what it names), or a file that cannot be read, is
    one diagnostic at line 1 col 1 and no entries. A line whose file is refused is skipped
    with a diagnostic at its file name.
    """
    owner = os.geteuid() if uid is None else uid
    conf = directory / CONF_NAME
    source = str(conf)
    if not os.path.lexists(directory):
        return ConfResult()
    if not os.path.isdir(directory):
        return ConfResult([], [Diagnostic(source, 1, 1, f"{directory}: not a directory")])
    if not os.path.lexists(conf):
        return ConfResult()
    refused = check_callback_file(directory, CONF_NAME, uid=owner)
    if refused is not None:
        return ConfResult([], [Diagnostic(source, 1, 1, f"refused: {refused}")])
    try:
        text = conf.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return ConfResult([], [Diagnostic(source, 1, 1, f"not UTF-8 ({exc.reason})")])
    except OSError as exc:
        return ConfResult([], [Diagnostic(source, 1, 1, exc.strerror or str(exc))])
    parsed = parse_callbacks_conf(text, source)
    entries: list[CallbackEntry] = []
    diagnostics = list(parsed.diagnostics)
    for entry in parsed.entries:
        refused = check_callback_file(directory, entry.filename, uid=owner)
        if refused is None:
            entries.append(entry)
        else:
            diagnostics.append(Diagnostic(source, entry.line, entry.col, f"refused: {refused}"))
    diagnostics.sort(key=lambda d: (d.line, d.col))
    return ConfResult(entries, diagnostics)
