"""What the bench scripts share: finding the `tock` command they measure."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def tock_executable() -> str:
    """The `tock` of this interpreter's environment, else the first one on PATH."""
    beside = Path(sys.executable).with_name("tock")
    found = str(beside) if beside.exists() else shutil.which("tock")
    if found is None:
        sys.exit(f"{Path(sys.argv[0]).name}: cannot find the `tock` executable")
    return found
