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


def output_paths(
    directory: Path,
    job_id: int,
    workdir: Path,
    stdout: str | None,
    stderr: str | None,
    items: bool = False,
) -> tuple[str, str]:
    """A job's output files. `%J` is the job id; `%I`, a work item's index, is replaced by
    each item's wrapper (0 for a plain job, as LSF). Items write to files of their own by
    default, in `directory`, the user's output directory."""

    def resolve(path: str) -> str:
        path = path.replace("%J", str(job_id))
        return str(workdir / Path(path).expanduser())

    stem = f"{job_id}.%I" if items else str(job_id)
    out = resolve(stdout) if stdout else str(directory / f"{stem}.out")
    if stderr:
        err = resolve(stderr)
    elif stdout:
        err = out  # LSF: -o without -e collects both streams
    else:
        err = str(directory / f"{stem}.err")
    return out, err
