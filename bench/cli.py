"""Wall time of `tock submit` and `tock jobs` as a user types them (aim: under 120 ms).

These commands run interactively and in shell loops, so what counts is the whole process:
interpreter start, imports, opening the database, one transaction, exit. Most of it is not
Tock's: `python -c pass` is the floor any Python CLI pays, and `import click` is the price of
the argument parser. The gap between those baselines and a command is what Tock adds; a
`-w` submit also loads textX and builds the condition grammar.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import tock_executable

from engine.api import Tock
from engine.config import Config

AIM_MS = 120.0


def wall_ms(command: list[str], env: dict[str, str], runs: int) -> list[float]:
    """Each run's wall time; one untimed warm-up run first (bytecode caches, page cache)."""
    times: list[float] = []
    for i in range(runs + 1):
        started = time.perf_counter()
        done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        elapsed = (time.perf_counter() - started) * 1e3
        if done.returncode != 0:
            sys.exit(f"{' '.join(command)} failed: {done.stderr.decode().strip()}")
        if i:
            times.append(elapsed)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command")
    args = parser.parse_args()
    runs: int = max(args.runs, 2)

    with tempfile.TemporaryDirectory(prefix="tock-bench-cli-") as tmp:
        db = Path(tmp) / "tock.db"
        with Tock(db, config=Config()) as api:
            first = api.submit("true", env={})
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOCK_")}
        env["XDG_CONFIG_HOME"] = str(Path(tmp) / "config")  # no user tock.toml
        tock = [tock_executable(), "--db", str(db)]
        python = sys.executable
        commands: list[tuple[str, list[str], bool]] = [
            ("baseline: python -c pass", [python, "-c", "pass"], False),
            ("baseline: python -c 'import click'", [python, "-c", "import click"], False),
            ("tock submit -- true", [*tock, "submit", "--", "true"], True),
            (
                f"tock submit -w 'done({first})' -- true",
                [*tock, "submit", "-w", f"done({first})", "--", "true"],
                True,
            ),
            ("tock jobs", [*tock, "jobs"], True),
        ]
        rows = [(label, wall_ms(cmd, env, runs), judged) for label, cmd, judged in commands]

    print(f"{'command':<38} {'runs':>5} {'median ms':>10} {'p90 ms':>8} {'verdict':>8}")
    print("-" * 73)
    for label, times, judged in rows:
        median = statistics.median(times)
        p90 = statistics.quantiles(times, n=10)[-1]
        verdict = ("PASS" if median < AIM_MS else "FAIL") if judged else "-"
        print(f"{label:<38} {len(times):>5} {median:>10.1f} {p90:>8.1f} {verdict:>8}")
    print("-" * 73)
    print(f"aim: median under {AIM_MS:.0f} ms per tock command (an aim: the exit status stays 0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
