"""The wheel carries the grammars and migrations, and an installed copy finds its own."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    (built,) = out.glob("tock-*.whl")
    return built


def test_the_wheel_ships_grammars_migrations_and_the_launcher(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for source in [*ROOT.glob("grammar/*.tx"), *ROOT.glob("migrations/*.sql")]:
        assert f"engine/{source.parent.name}/{source.name}" in names
    assert {"engine/launcher.py", "engine/wrapper.py", "engine/cli.py"} <= names
    assert not any(name.startswith(("tests/", "bench/")) for name in names)


def test_an_installed_copy_uses_its_own_resources(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from engine.resources import resource_dir;"
        "from engine.store import open_db; from pathlib import Path;"
        "print(resource_dir('grammar')); print(resource_dir('migrations'));"
        "open_db(Path(sys.argv[2]))"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe, str(target), str(tmp_path / "t.db")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == [
        str(target / "engine" / "grammar"),
        str(target / "engine" / "migrations"),
    ]
