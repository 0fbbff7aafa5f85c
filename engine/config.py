"""tock.toml: the one configuration file, validated key by key.

Lookup order: `$TOCK_CONFIG`, else `tock.toml` beside the database, else
`$XDG_CONFIG_HOME/tock/tock.toml`. No file at all means defaults, but a `$TOCK_CONFIG` that
names a missing file is an error (it was asked for). An unknown key or a bad value is an
error that names the key and the file. Every key is in docs/config.md.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import TockError


@dataclass(frozen=True, slots=True)
class Config:
    """Settings from tock.toml; every key is described in docs/config.md."""

    max_running: int = field(default_factory=lambda: os.cpu_count() or 1)
    admins: tuple[str, ...] = ()
    orphan_grace_period: float | None = None
    kill_grace_period: float = 10.0
    busy_timeout: float = 5.0
    output_dir: Path | None = None
    calendars_file: Path | None = None  # None: `lsb.calendars` beside the database, if any
    file_poll_paths: tuple[str, ...] = ()  # prefixes whose file events are polled, not watched
    file_poll_interval: float = 5.0
    file_scan_interval: float = 60.0
    event_daemons: tuple[str, ...] = ()  # site event daemons: command lines
    public_events: tuple[str, ...] = ()  # user events anyone may post to
    universal_callback_path: str | None = None  # comma-separated directories
    callback_cpu_burst: float = 0.1  # CPU seconds a callback run uses at full speed
    callback_cpu_share: float = 0.05  # of a core, for a callback run past its burst
    source: Path | None = None  # the file it came from, None for defaults

    @property
    def busy_timeout_ms(self) -> int:
        return int(self.busy_timeout * 1000)


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("must be a whole number of at least 1")
    return value


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError("must be a number of seconds, 0 or more")
    return float(value)


def _positive_seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError("must be a number of seconds greater than 0")
    return float(value)


def _user_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError("must be a list of user names")
    return tuple(value)


def _path(value: Any) -> Path:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a path")
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise ValueError("must be an absolute path")
    return path


def _path_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of absolute paths")
    return tuple(str(_path(v)) for v in value)


def _commands(value: Any) -> tuple[str, ...]:
    import shlex

    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of command lines")
    for command in value:
        try:
            words = shlex.split(command)
        except ValueError as exc:
            raise ValueError(
                f"has a command line that does not split ({exc}): {command!r}"
            ) from None
        if not words or not words[0].startswith("/"):
            raise ValueError(f"needs an absolute executable path in {command!r}")
    return tuple(value)


def _share(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValueError("must be a fraction of a core, more than 0 and at most 1")
    return float(value)


def _directories(value: Any) -> str:
    """Comma-separated absolute directories; "" turns universal callbacks off."""
    if not isinstance(value, str):
        raise ValueError("must be a comma-separated list of absolute directories")
    for part in (p.strip() for p in value.split(",")):
        if part and not Path(part).expanduser().is_absolute():
            raise ValueError(f"names a relative directory '{part}'")
    return value


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(
        isinstance(v, str) and v and not any(c.isspace() for c in v) for v in value
    ):
        raise ValueError("must be a list of event names")
    return tuple(value)


_KEYS: dict[str, Callable[[Any], Any]] = {
    "max_running": _positive_int,
    "admins": _user_list,
    "orphan_grace_period": _seconds,
    "kill_grace_period": _seconds,
    "busy_timeout": _positive_seconds,
    "output_dir": _path,
    "calendars_file": _path,
    "file_poll_paths": _path_list,
    "file_poll_interval": _positive_seconds,
    "file_scan_interval": _positive_seconds,
    "event_daemons": _commands,
    "public_events": _names,
    "universal_callback_path": _directories,
    "callback_cpu_burst": _seconds,
    "callback_cpu_share": _share,
}


def config_path(db: Path, env: dict[str, str] | None = None) -> Path | None:
    env = dict(os.environ) if env is None else env
    if env.get("TOCK_CONFIG"):
        return Path(env["TOCK_CONFIG"]).expanduser()
    beside = db.parent / "tock.toml"
    if beside.is_file():
        return beside
    config_home = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")) / ".config")
    user_file = Path(config_home).expanduser() / "tock" / "tock.toml"
    return user_file if user_file.is_file() else None


def parse_config(text: str, source: Path) -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TockError(f"{source}: {exc}") from None
    values: dict[str, Any] = {}
    for key, value in raw.items():
        check = _KEYS.get(key)
        if check is None:
            known = ", ".join(sorted(_KEYS))
            raise TockError(f"{source}: unknown key '{key}' (known keys: {known})")
        try:
            values[key] = check(value)
        except ValueError as exc:
            raise TockError(f"{source}: key '{key}' {exc}, not {value!r}") from None
    return Config(source=source, **values)


def load_config(db: Path, env: dict[str, str] | None = None) -> Config:
    path = config_path(db, env)
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TockError(f"{path}: cannot read configuration: {exc.strerror}") from None
    return parse_config(text, path)
