"""tock.toml: where it is found, and every bad value named with its key and file."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import Config, config_path, load_config, parse_config
from engine.errors import TockError


def test_defaults_without_a_file(tmp_path: Path) -> None:
    config = load_config(tmp_path / "tock.db", env={"HOME": str(tmp_path)})
    assert config == Config()
    assert config.max_running >= 1
    assert config.source is None


def test_lookup_order(tmp_path: Path) -> None:
    db = tmp_path / "state" / "tock.db"
    db.parent.mkdir()
    user = tmp_path / "xdg" / "tock" / "tock.toml"
    user.parent.mkdir(parents=True)
    user.write_text("")
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert config_path(db, env) == user
    beside = db.parent / "tock.toml"
    beside.write_text("")
    assert config_path(db, env) == beside
    explicit = tmp_path / "explicit.toml"
    assert config_path(db, {**env, "TOCK_CONFIG": str(explicit)}) == explicit


def test_every_key_parses(tmp_path: Path) -> None:
    source = tmp_path / "tock.toml"
    config = parse_config(
        'max_running = 3\nadmins = ["ops", "bob"]\norphan_grace_period = 90\n'
        'kill_grace_period = 2.5\noutput_dir = "/var/tmp/out"\nbusy_timeout = 1\n',
        source,
    )
    assert config.max_running == 3
    assert config.admins == ("ops", "bob")
    assert config.orphan_grace_period == 90.0
    assert config.kill_grace_period == 2.5
    assert config.output_dir == Path("/var/tmp/out")
    assert config.busy_timeout_ms == 1000
    assert config.source == source


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_runing = 3", "unknown key 'max_runing'"),
        ("max_running = 0", "key 'max_running' must be a whole number of at least 1, not 0"),
        ("max_running = true", "key 'max_running' must be a whole number"),
        ('admins = "bob"', "key 'admins' must be a list of user names"),
        ("orphan_grace_period = -1", "key 'orphan_grace_period' must be a number of seconds"),
        ("busy_timeout = 0", "key 'busy_timeout' must be a number of seconds greater than 0"),
        ('output_dir = "relative/dir"', "key 'output_dir' must be an absolute path"),
        ("max_running = ", "Invalid value"),
        (
            'universal_callback_path = "/srv/cb, cb"',
            "key 'universal_callback_path' names a relative directory 'cb'",
        ),
        ('event_daemons = ["eventd.py"]', "needs an absolute executable path"),
        ('public_events = ["two words"]', "must be a list of event names"),
    ],
)
def test_bad_values_name_key_and_file(tmp_path: Path, text: str, message: str) -> None:
    source = tmp_path / "tock.toml"
    with pytest.raises(TockError) as caught:
        parse_config(text, source)
    assert str(caught.value).startswith(f"{source}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
