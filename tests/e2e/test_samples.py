"""`make demo` must keep working: it runs the sample pipeline and checks its outcome."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "samples" / "demo.py"


def test_the_demo_pipeline_ends_as_designed(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(DEMO), "--dir", str(tmp_path / "demo"), "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "publish" in result.stdout
    assert "done(validate) || done(repair)  true" in result.stdout
    assert (tmp_path / "demo" / "work" / "published.txt").read_text().split()[-1] == "30"
