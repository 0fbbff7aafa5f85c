"""Checks of what users type (a command, a job name, any text bound for the database),
shared by every request; each failure is one TockError line naming what was wrong."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from engine.errors import TockError

DEFAULT_NAME_LENGTH = 60  # LSF: a job's default name is the last 60 characters of its command
MAX_NAME_LENGTH = 512


def command_line(command: str | Sequence[str]) -> str:
    """One argument is a shell command line used verbatim; several are quoted and joined."""
    if isinstance(command, str):
        line = command
    elif len(command) == 1:
        line = command[0]
    else:
        line = shlex.join(command)
    if not line.strip():
        raise TockError("the command is empty")
    return line


def utf8(what: str, text: str) -> str:
    """The database stores text as UTF-8; bytes that are not (from argv) are refused here."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end].encode("utf-8", "surrogateescape")
        raise TockError(
            f"{what} is not valid UTF-8 (byte {bad!r} at position {exc.start})"
        ) from None
    return text


def check_name(name: str) -> str:
    if not name or not name.strip():
        raise TockError("a job name cannot be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise TockError(f"a job name is at most {MAX_NAME_LENGTH} characters")
    if any(ch in name for ch in "\n\r\t\0"):
        raise TockError("a job name cannot hold control characters")
    if name.endswith("*"):
        raise TockError(f"job name '{name}': a name cannot end with '*' (the wildcard)")
    return name
