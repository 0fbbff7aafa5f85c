"""Who is asking, and may they touch this job."""

from __future__ import annotations

import os
import pwd
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
