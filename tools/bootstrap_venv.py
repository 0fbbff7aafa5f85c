"""Create a virtual environment with pip, even where Debian's python3 lacks ensurepip.

Debian ships `venv` without `ensurepip` unless python3-venv is installed, so a bare
`python3 -m venv` fails on a fresh machine. In that case the environment is created
without pip and pip is installed from its wheel on PyPI (a wheel is runnable as a zip).
Only the standard library is used, because nothing else exists yet.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import urllib.request
import venv
from pathlib import Path

PYPI_PIP = "https://pypi.org/pypi/pip/json"


def has_pip(python: Path) -> bool:
    probe = subprocess.run([str(python), "-m", "pip", "--version"], capture_output=True)
    return probe.returncode == 0


def pip_wheel_url() -> str:
    with urllib.request.urlopen(PYPI_PIP, timeout=60) as reply:
        release = json.load(reply)
    for artifact in release["urls"]:
        if artifact["packagetype"] == "bdist_wheel":
            return str(artifact["url"])
    raise SystemExit("bootstrap_venv: PyPI lists no pip wheel")


def install_pip(python: Path) -> None:
    url = pip_wheel_url()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = Path(tmp) / url.rsplit("/", 1)[-1]
        urllib.request.urlretrieve(url, wheel)
        subprocess.run([str(python), f"{wheel}/pip", "install", "--quiet", str(wheel)], check=True)


def main(target: str) -> None:
    root = Path(target)
    python = root / "bin" / "python"
    if python.exists() and has_pip(python):
        return
    try:
        venv.EnvBuilder(with_pip=True, clear=python.exists()).create(root)
    except (subprocess.CalledProcessError, OSError):
        venv.EnvBuilder(with_pip=False, clear=True).create(root)
    if not has_pip(python):
        install_pip(python)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".venv")
