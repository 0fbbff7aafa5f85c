"""Who is asking, and may they touch this job."""

from __future__ import annotations

import json
import os
import pwd
import sqlite3
from collections.abc import Collection


def current_user() -> str:
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def may_change(actor: str, owner: str, admins: Collection[str]) -> bool:
    """LSF's rule: the owner, root, or a configured administrator."""
    return actor == owner or actor == "root" or actor in admins


def recorded_public_events(conn: sqlite3.Connection) -> list[str]:
    """The user events anyone may post to, as the daemon recorded them (see recorded_admins)."""
    return list(json.loads(conn.execute("SELECT public_events FROM tick_state").fetchone()[0]))


def recorded_admins(conn: sqlite3.Connection) -> list[str]:
    """The administrators of the daemon's configuration, as it recorded them in the database,
    not those of whatever configuration the requester's environment names."""
    return list(json.loads(conn.execute("SELECT admins FROM tick_state").fetchone()[0]))
