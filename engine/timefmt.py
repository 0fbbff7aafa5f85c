"""Timestamps for people and for JSON.

The database stores REAL seconds since the epoch (UTC). Output shows local time: ISO 8601
with its offset in JSON, LSF's short form in tables.
"""

from __future__ import annotations

from datetime import datetime


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="milliseconds")


def short(ts: float | None) -> str:
    """`Nov 21 14:30:15`, as bjobs prints it."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts).strftime("%b %d %H:%M:%S")
