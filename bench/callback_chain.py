"""A chain of `true` jobs beside misbehaving callbacks, against the same chain alone.

Issue 6 asks that callbacks which `sys.exit()`, loop for ever, or block in
`os.system('sleep 100')` leave a 100-job `done(prev)` chain as fast as without them. Each
trial starts its own `tock daemon` on a temporary database and times the chain from its
first submit to its last job's end, in three setups, interleaved so that the machine's
drift hits them alike:

- alone: no callbacks;
- beside: the three callbacks on `done-job-self` of every job, with the default CPU
  budget (`callback_cpu_burst`, `callback_cpu_share`: docs/config.md);
- unbudgeted: the same callbacks with the budget turned off (a burst of 1000 s), which is
  how callbacks ran before the budget existed.

No target and exit status 0 unless something broke: the figures are printed.
"""

from __future__ import annotations

import argparse
import itertools
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import BenchError, DaemonProcess, wait_until

from engine.api import Tock

BAD = {
    "callbacks.conf": (
        "exits.py = done-job-self\nloops.py = done-job-self\nsleeps.py = done-job-self\n"
    ),
    "exits.py": "import sys\nsys.exit(3)\n",
    "loops.py": "while True:\n    pass\n",
    "sleeps.py": "import os\nos.system('sleep 100')\n",
}
SETUPS = {
    "alone": None,
    "beside": "",
    "unbudgeted": "callback_cpu_burst = 1000\n",
}


def decision_ms(db: Path, ids: list[int]) -> float:
    """Median milliseconds from a link's end (its wrapper's report) to the start of the next
    link handed to the launcher: the scheduler's own part of a hop (wake, tick, commit,
    dispatch), without the processes' start and end."""
    conn = sqlite3.connect(db)
    try:
        ends = dict(conn.execute("SELECT id, end_time FROM jobs").fetchall())
        dispatched = dict(
            conn.execute(
                "SELECT job_id, min(dispatched_at) FROM actions WHERE kind = 'start' "
                "GROUP BY job_id"
            ).fetchall()
        )
    finally:
        conn.close()
    gaps = [(dispatched[b] - ends[a]) * 1000 for a, b in itertools.pairwise(ids)]
    return float(statistics.median(gaps))


def trial(root: Path, setup: str, jobs: int) -> tuple[float, float]:
    """Seconds for the chain under `setup`, and the median decision time of a hop (ms)."""
    directory = Path(tempfile.mkdtemp(dir=root))
    callbacks = directory / "callback"
    callbacks.mkdir(mode=0o755)
    for name, text in BAD.items():
        (callbacks / name).write_text(text)
        (callbacks / name).chmod(0o644)
    extra = SETUPS[setup]
    path = "" if extra is None else str(callbacks)
    config = f'max_running = 4\nuniversal_callback_path = "{path}"\n{extra or ""}'
    db = directory / "tock.db"
    with DaemonProcess(db, config) as daemon:
        if extra is not None:
            wait_until("the callbacks to load", lambda: "universal callback" in daemon.text(), 30)
        api = Tock(db)
        try:
            started = time.monotonic()
            ids: list[int] = []
            for _ in range(jobs):
                condition = f"done({ids[-1]})" if ids else None
                ids.append(api.submit("true", condition=condition, env={}))
            finished = api.wait(ids, timeout=300)
            elapsed = time.monotonic() - started
        finally:
            api.close()
        if {job.state for job in finished} != {"DONE"}:
            raise BenchError(f"{setup}: a job of the chain did not end DONE")
        daemon.alive()
    # The daemon is gone, and its callbacks with it (they die with their parent).
    subprocess.run(["pkill", "-f", str(callbacks)], check=False)
    return elapsed, decision_ms(db, ids)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100, help="chain length (default 100)")
    parser.add_argument("--trials", type=int, default=3, help="trials per setup (default 3)")
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in SETUPS}
    decisions: dict[str, list[float]] = {name: [] for name in SETUPS}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for _ in range(args.trials):
                for name in SETUPS:
                    elapsed, decision = trial(Path(tmp), name, args.jobs)
                    times[name].append(elapsed)
                    decisions[name].append(decision)
        except BenchError as exc:
            print(f"FAIL: {exc}")
            return 1
    base = statistics.median(times["alone"])
    print(f"{args.jobs}-job chain, {args.trials} trials each, seconds")
    print(f"{'setup':<12} {'median':>8} {'min':>8} {'max':>8} {'vs alone':>9} {'decide ms':>10}")
    for name, values in times.items():
        median, decide = statistics.median(values), statistics.median(decisions[name])
        spread = f"{median:8.2f} {min(values):8.2f} {max(values):8.2f}"
        print(f"{name:<12} {spread} {median / base:8.2f}x {decide:10.2f}")
    print("decide ms: median from a link's end (wrapper report) to the next handed to the launcher")
    return 0


if __name__ == "__main__":
    sys.exit(main())
