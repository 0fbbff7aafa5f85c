"""Process identity on Linux: a pid plus its start time, so a reused pid is never mistaken.

Standard library only (the wrapper uses it).
"""

from __future__ import annotations

import os


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; it ends at the last ')'.
    fields = stat[stat.rindex(b")") + 2 :].split()
    return int(fields[19])


def is_alive(pid: int, started: int | None) -> bool:
    """True while that very process exists (zombies count as ended).

    Only a missing /proc entry means the process is gone; any other failure (out of file
    descriptors, say) raises, because declaring a live job lost would be worse than waiting.
    """
    if started is None:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    fields = stat[stat.rindex(b")") + 2 :].split()
    return fields[0] != b"Z" and int(fields[19]) == started


def hostname() -> str:
    return os.uname().nodename
