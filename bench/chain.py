"""Hop rate of a chain of `true` jobs through the real daemon.

A chain is the worst case for an event-driven scheduler: nothing overlaps, so every hop
pays the whole path once (wrapper report, wake-up, tick, dispatch, fork, claim, exec) and
any polling delay or extra fsync shows up directly as ms/hop. Running `true` N times with
plain subprocess is the floor no scheduler can beat; the ratio says what the scheduler adds.
Target: a 200-job chain in under 5 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import tock_executable

from engine.api import Tock
from engine.config import Config

TARGET_SECONDS_PER_200 = 5.0


def submit_chain(db: Path, jobs: int) -> list[int]:
    ids: list[int] = []
    with Tock(db, config=Config(max_running=4)) as api:
        for _ in range(jobs):
            condition = f"done({ids[-1]})" if ids else None
            ids.append(api.submit("true", condition=condition, env={}))
    return ids


def run_daemon(db: Path, config: Path, timeout: float) -> float:
    env = {**os.environ, "TOCK_CONFIG": str(config)}
    command = [tock_executable(), "--db", str(db), "daemon", "--exit-when-idle"]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"the daemon failed with status {done.returncode}:\n{done.stderr}")
    return elapsed


def run_baseline(jobs: int) -> float:
    true = shutil.which("true") or "/bin/true"
    started = time.perf_counter()
    for _ in range(jobs):
        subprocess.run([true], check=True)
    return time.perf_counter() - started


def row(label: str, jobs: int, seconds: float) -> str:
    return (
        f"{label:<28} {jobs:>6} {seconds:>9.3f} {jobs / seconds:>9.1f} {seconds / jobs * 1e3:>8.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200, help="chain length (default 200)")
    parser.add_argument("--timeout", type=float, default=100.0, help="daemon time limit (s)")
    args = parser.parse_args()
    jobs: int = args.jobs

    with tempfile.TemporaryDirectory(prefix="tock-bench-chain-") as tmp:
        db = Path(tmp) / "tock.db"
        config = Path(tmp) / "tock.toml"
        config.write_text("max_running = 4\n", encoding="utf-8")

        started = time.perf_counter()
        ids = submit_chain(db, jobs)
        submit_seconds = time.perf_counter() - started

        daemon_seconds = run_daemon(db, config, args.timeout)

        with Tock(db, config=Config(max_running=4)) as api:
            infos = api.jobs(ids, include_finished=True)
        states = [info.state for info in infos]
        first_start = min(i.start_time for i in infos if i.start_time is not None)
        last_end = max(i.end_time for i in infos if i.end_time is not None)

    baseline_seconds = run_baseline(jobs)

    print(f"{'run':<28} {'jobs':>6} {'wall s':>9} {'hops/s':>9} {'ms/hop':>8}")
    print("-" * 64)
    print(row("tock submit (API, -w)", jobs, submit_seconds))
    print(row("tock daemon (start to exit)", jobs, daemon_seconds))
    print(row("tock first start..last end", jobs, last_end - first_start))
    print(row("baseline: subprocess `true`", jobs, baseline_seconds))
    print("-" * 64)
    print(f"overhead ratio (daemon / baseline): {daemon_seconds / baseline_seconds:.1f}x")

    not_done = sum(state != "DONE" for state in states) + (jobs - len(states))
    if not_done:
        print(f"FAIL: {not_done} of {jobs} jobs are not DONE")
        return 1
    budget = TARGET_SECONDS_PER_200 * jobs / 200
    verdict = "PASS" if daemon_seconds < budget else "FAIL"
    print(f"{verdict}: {jobs}-job chain in {daemon_seconds:.2f} s (target < {budget:.2f} s)")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
