"""Where a Tock installation keeps its files.

Everything hangs off the database path: the wake-up FIFO and the daemon lock sit beside
it, and job output defaults to `output/` in the same directory (the state directory).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def default_db_path(env: dict[str, str] | None = None) -> Path:
    """`$TOCK_DB`, else `$XDG_STATE_HOME/tock/tock.db`, else `~/.local/state/tock/tock.db`."""
    env = dict(os.environ) if env is None else env
    if env.get("TOCK_DB"):
        return Path(env["TOCK_DB"]).expanduser()
    state_home = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME", "~")) / ".local" / "state")
    return Path(state_home).expanduser() / "tock" / "tock.db"


@dataclass(frozen=True, slots=True)
class Layout:
    db: Path

    @property
    def state_dir(self) -> Path:
        return self.db.parent

    @property
    def wake_fifo(self) -> Path:
        return self.db.with_name(self.db.name + ".wake")

    @property
    def daemon_lock(self) -> Path:
        return self.db.with_name(self.db.name + ".lock")

    @property
    def wrapper_log(self) -> Path:
        return self.db.with_name(self.db.name + ".wrapper.log")

    @property
    def default_output_dir(self) -> Path:
        return self.state_dir / "output"


def layout_for(db: str | os.PathLike[str] | None) -> Layout:
    """Resolved, so that one database reached by two names still has one lock and FIFO."""
    path = default_db_path() if db is None else Path(db).expanduser()
    return Layout(path.resolve())
