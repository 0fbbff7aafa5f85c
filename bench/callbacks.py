"""Dispatch rate with universal callbacks: `true` jobs through the real daemon, with and without.

Each variant starts its own `tock daemon` on a temporary database with its own tock.toml
(`universal_callback_path` naming a directory with a callbacks.conf, or "" for none) and
waits until the daemon has loaded the callbacks (their rows are live), so that every job
submitted afterwards gets them attached. Then this process submits N independent `true`
jobs with the API (`Tock(db).submit("true", env={})`, one transaction each) while the
daemon runs: the submission time is included in every figure below, which are measured
from just before the first submit. It is also printed on its own.

- baseline: no callbacks; time until the last job is DONE -> jobs/s.
- mixed: a trivial shell callback on `submit-job-self` and a trivial Python one on
  `done-job-self`: jobs/s as above, against the baseline with as many jobs (by design it
  should stay close: a callback run is an outbox row, and no job waits for one; but the
  runs share the cores and the daemon's thread), and the time until every one of the
  2 x N runs has its result recorded -> callbacks/s, overall and per language.
- shell-only and python-only: both triggers on `.sh` files, or on `.py` files (fewer
  jobs there by default: a Python callback starts an interpreter; a baseline with as
  many jobs runs before it). The daemon's own CPU time is printed for each.

The times come from the database afterwards: a job's `end_time` (its wrapper's report)
and a run's `callback_runs.finished` (the time of its `callback_finished` journal row,
written by the daemon when it collected the result). This process only polls a count
every 20 ms to know when to stop. Callbacks run in the daemon's pool of child processes
(engine/callback_runner.py), at most `size` at once.

No target: the figures are printed. The exit status is 1 only when a run went wrong (the
daemon died or logged an error, a job did not end DONE, a callback run is missing or did
not end `done`), never for a timing.
"""

from __future__ import annotations

import argparse
import inspect
import os
import platform
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import BenchError, DaemonProcess, wait_until

from engine.api import Tock
from engine.callback_runner import CallbackPool
from engine.config import Config

POOL_SIZE = inspect.signature(CallbackPool).parameters["size"].default  # the daemon's pool
SHELL_BODY = ': "$QB_JOBID"\n'
PYTHON_BODY = "import qb\n\nqb.jobid()\n"


@dataclass
class Variant:
    label: str
    jobs: int
    files: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (trigger, body)


@dataclass
class Result:
    variant: Variant
    submit_seconds: float
    jobs_seconds: float  # first submit -> last job's end
    daemon_cpu: float  # seconds of CPU the daemon used, from its start
    runs: int = 0
    runs_seconds: float = 0.0  # first submit -> last result recorded
    by_language: dict[str, tuple[int, float, float]] = field(default_factory=dict)
    # language -> (runs, first submit -> its last result, mean run duration s)


def callback_dir(root: Path, files: dict[str, tuple[str, str]]) -> Path:
    """A callback directory only its owner can write, as the daemon requires."""
    directory = root / "callback"
    directory.mkdir()
    lines = [f"{name} = {trigger}" for name, (trigger, _) in files.items()]
    (directory / "callbacks.conf").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name, (_, body) in files.items():
        (directory / name).write_text(body, encoding="utf-8")
    for path in directory.iterdir():
        path.chmod(0o644)
    directory.chmod(0o755)
    return directory


def count(reader: sqlite3.Connection, sql: str) -> int:
    return int(reader.execute(sql).fetchone()[0] or 0)


def run_variant(root: Path, variant: Variant, max_running: int, budget: float) -> Result:
    root.mkdir()
    db = root / "tock.db"
    config = f"max_running = {max_running}\n"
    if variant.files:
        config += f'universal_callback_path = "{callback_dir(root, variant.files)}"\n'
    else:
        config += 'universal_callback_path = ""\n'  # no callbacks at all
    expected_runs = variant.jobs * len(variant.files)
    with DaemonProcess(db, config) as daemon:
        reader = sqlite3.connect(db, timeout=30)
        try:
            live = "SELECT count(*) FROM callbacks WHERE scope = 'universal' AND retired IS NULL"

            def loaded() -> bool:
                daemon.alive()
                return count(reader, live) == len(variant.files)

            wait_until("the universal callbacks to be loaded", loaded, 30)

            first_submit = time.time()
            started = time.perf_counter()
            with Tock(db, config=Config(max_running=max_running)) as api:
                ids = [api.submit("true", env={}) for _ in range(variant.jobs)]
            submit_seconds = time.perf_counter() - started

            def settled() -> bool:
                daemon.alive()
                ended = count(reader, "SELECT count(*) FROM jobs WHERE state IN ('DONE', 'EXIT')")
                recorded = count(
                    reader, "SELECT count(*) FROM callback_runs WHERE status != 'pending'"
                )
                return ended == variant.jobs and recorded >= expected_runs

            wait_until(f"{variant.label}: the jobs and callback runs to finish", settled, budget)
            time.sleep(0.2)  # a stray extra run would show up now
            daemon.alive()
            daemon_cpu = daemon.cpu_seconds()
            states = dict(
                reader.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall()
            )
            last_end = reader.execute("SELECT max(end_time) FROM jobs").fetchone()[0]
            runs = reader.execute(
                "SELECT c.language, r.status, count(*), max(r.finished), avg(r.duration) "
                "FROM callback_runs AS r JOIN callbacks AS c ON c.id = r.callback_id "
                "GROUP BY c.language, r.status"
            ).fetchall()
        finally:
            reader.close()
        problems = daemon.errors()
    if problems:
        raise BenchError(f"{variant.label}: the daemon logged:\n" + "\n".join(problems[:10]))
    if states.get("DONE", 0) != len(ids):
        raise BenchError(f"{variant.label}: {len(ids)} jobs, by state {states}")
    bad = {(language, status): n for language, status, n, _, _ in runs if status != "done"}
    total = sum(row[2] for row in runs)
    if bad or total != expected_runs:
        raise BenchError(
            f"{variant.label}: {total} callback runs (expected {expected_runs}); "
            f"not done: {bad or 'none'}"
        )
    result = Result(variant, submit_seconds, last_end - first_submit, daemon_cpu, total)
    if runs:
        result.runs_seconds = max(row[3] for row in runs) - first_submit
        result.by_language = {
            language: (n, finished - first_submit, mean) for language, _, n, finished, mean in runs
        }
    return result


def machine_line(max_running: int) -> str:
    cores = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0))
    return (
        f"machine: {cores} cores ({usable} usable), {platform.machine()}, Linux "
        f"{platform.release()}, Python {platform.python_version()}; daemon max_running "
        f"{max_running}, callback pool {POOL_SIZE}"
    )


def print_table(results: list[Result]) -> None:
    # Each variant against the baseline with as many jobs (a short run ramps up less).
    baselines = {
        r.variant.jobs: r.variant.jobs / r.jobs_seconds for r in results if not r.variant.files
    }
    print(
        f"{'variant':<30} {'jobs':>5} {'submit s':>8} {'DONE s':>7} {'jobs/s':>7} "
        f"{'vs base':>7} {'CPU s':>6} {'runs':>5} {'runs s':>7} {'cb/s':>7}"
    )
    print("-" * 99)
    for r in results:
        rate = r.variant.jobs / r.jobs_seconds
        baseline = baselines.get(r.variant.jobs) or next(iter(baselines.values()))
        line = (
            f"{r.variant.label:<30} {r.variant.jobs:>5} {r.submit_seconds:>8.2f} "
            f"{r.jobs_seconds:>7.2f} {rate:>7.1f} {rate / baseline:>6.2f}x {r.daemon_cpu:>6.1f}"
        )
        if r.runs:
            line += f" {r.runs:>5} {r.runs_seconds:>7.2f} {r.runs / r.runs_seconds:>7.1f}"
        print(line)
    print("-" * 99)
    print(
        "From just before the first submit (submission included; 'submit s' is the submit "
        "loop alone):\nDONE s to the last job's end, runs s to the last callback result "
        "recorded; cb/s = runs / runs s.\nCPU s: the daemon's own threads, from its start "
        "(callback children and the launcher apart)."
    )
    if not any(r.by_language for r in results):
        return
    print()
    print(
        f"{'callback runs, by language':<30} {'runs':>5} {'last s':>7} {'cb/s':>7} {'mean ms':>8}"
    )
    print("-" * 61)
    for r in results:
        for language, (n, last, mean) in sorted(r.by_language.items()):
            label = f"{r.variant.label.partition(':')[0]}: {language}"
            print(f"{label:<30} {n:>5} {last:>7.2f} {n / last:>7.1f} {mean * 1e3:>8.1f}")
    print("-" * 61)
    print("last s: first submit to that language's last result; mean ms: one run, start to exit.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs per variant (1,000)")
    parser.add_argument(
        "--python-jobs", type=int, default=250, help="jobs of the python-only variant (250)"
    )
    parser.add_argument("--max-running", type=int, default=4, help="daemon max_running (4)")
    parser.add_argument("--timeout", type=float, default=120.0, help="per-variant limit (s)")
    args = parser.parse_args()
    began = time.perf_counter()

    small = args.python_jobs != args.jobs
    variants = [
        Variant("baseline: no callbacks", args.jobs),
        Variant(
            "mixed: .sh submit, .py done",
            args.jobs,
            {"a.sh": ("submit-job-self", SHELL_BODY), "b.py": ("done-job-self", PYTHON_BODY)},
        ),
        Variant(
            "shell-only: 2 x .sh",
            args.jobs,
            {"a.sh": ("submit-job-self", SHELL_BODY), "b.sh": ("done-job-self", SHELL_BODY)},
        ),
        *([Variant("baseline: no callbacks", args.python_jobs)] if small else []),
        Variant(
            "python-only: 2 x .py",
            args.python_jobs,
            {"a.py": ("submit-job-self", PYTHON_BODY), "b.py": ("done-job-self", PYTHON_BODY)},
        ),
    ]
    print(machine_line(args.max_running))
    print()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="tock-bench-callbacks-") as tmp:
        base = Path(tmp).resolve()
        try:
            for number, variant in enumerate(variants):
                results.append(
                    run_variant(base / f"v{number}", variant, args.max_running, args.timeout)
                )
        except BenchError as exc:
            if results:
                print_table(results)
                print()
            print(f"FAIL: {exc}")
            return 1
    print_table(results)
    print()
    print(f"elapsed: {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
