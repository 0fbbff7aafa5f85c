"""File events through the real daemon: creation-to-start latency, and the idle cost of watching.

Latency: a job waits on `file(arrival(<dir>/in<N>.dat))`; once the tick has applied it (its
file_events row is live) and, for inotify, once the daemon's inotify descriptor holds a
watch on <dir> (read from /proc/<pid>/fdinfo, not guessed), the file is created; latency is
the run's `job_runs.start_time` (the wrapper's wall clock at its claim) minus `time.time()`
taken just before the file was opened. Trials are sequential: the next one starts when the
job is DONE. This process does not read the database until 0.1 s after the creation, and
the figures come from the database afterwards, so our own polling is not what is measured.
Each trial's event is the only one, so the daemon replans (and restarts its watcher) for
every trial, the path a new target takes. The baseline is the same with the trial
directory under `file_poll_paths` and `file_poll_interval = 1`, in a second daemon in the
same run; there the creation waits a random fraction of the interval, so that it falls at
a uniform phase of the poll (sequential trials would otherwise line up with it).
Target with inotify: p50 < 50 ms, p99 < 150 ms.

Idle cost: 10,000 pending jobs, each on its own `file(exist(<dir>/f<i>))` (no file exists),
spread over 1,000 directories and then over 10,000. They are submitted with the API before
the daemon starts (one transaction per job; the time is printed), the daemon applies them
and watches; once every directory is watched and the daemon's CPU has gone quiet, its
CPU (utime+stime of /proc/<pid>/stat, all threads; its launcher child apart) is read
over a wall-time window. Between scans nothing is periodic but watchfiles' 10 ms step; the
reconciling scan (every `file_scan_interval`, default 60 s) stats every target, so its cost
is measured on a restart of the daemon on the same database with a scan every second, and
averaged over the default interval. Baseline: the same daemon on an empty database.
Target: under 1 % of one core.

Verdicts against the targets are printed; the exit status is 1 only when a run went wrong
(a daemon died or logged an error, a job never started), never for a timing.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from importlib.metadata import version
from pathlib import Path

from harness import CLOCK_TICKS, BenchError, DaemonProcess, wait_until

from engine.api import Tock
from engine.config import Config
from engine.watch_plan import fs_type, make_plan, parse_mountinfo

P50_TARGET_MS = 50.0
P99_TARGET_MS = 150.0
IDLE_TARGET_PERCENT = 1.0
MAX_RUNNING = 64
DEFAULT_SCAN_INTERVAL = Config().file_scan_interval
SCAN_PROBE_INTERVAL = 1.0  # seconds between scans on the restart that measures them


def cpu_ticks(pid: int) -> int:
    """utime + stime of every thread of `pid`, in clock ticks."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as f:
            found.extend(int(child) for child in f.read().split())
    return found


def wakeups(pid: int) -> int:
    """Context switches of every thread of `pid`: how often it was scheduled in."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/status", encoding="ascii") as f:
            total += sum(int(line.split()[1]) for line in f if "ctxt_switches:" in line)
    return total


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB."""
    values = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


def inotify_watches(pid: int) -> list[set[int]]:
    """Per inotify descriptor of `pid`, the inode numbers it watches (fdinfo `ino:`, hex)."""
    found: list[set[int]] = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:inotify":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii") as f:
                text = f.read()
        except OSError:
            continue  # closed meanwhile: a watcher being replaced
        inodes = set()
        for line in text.splitlines():
            if line.startswith("inotify wd:"):
                for item in line.split():
                    if item.startswith("ino:"):
                        inodes.add(int(item[4:], 16))
        found.append(inodes)
    return found


def watching(pid: int, inodes: set[int]) -> bool:
    """One inotify descriptor of the daemon watches all of these directories."""
    return any(inodes <= watched for watched in inotify_watches(pid))


def wait_quiet(pid: int, budget: float, window: float = 0.5) -> float:
    """Seconds until the process used no CPU for one whole `window`."""
    started = time.monotonic()
    while time.monotonic() - started < budget:
        before = cpu_ticks(pid)
        time.sleep(window)
        if cpu_ticks(pid) - before == 0:
            return time.monotonic() - started
    raise BenchError(f"the daemon (pid {pid}) was still busy after {budget:.0f} s")


# -- part 1 and 2: creation to start ---------------------------------------------------------


@dataclass
class Latencies:
    label: str
    ms: list[float]
    seconds: float  # wall time of the whole series

    def quantile(self, q: int) -> float:
        if len(self.ms) == 1:
            return self.ms[0]
        return statistics.quantiles(self.ms, n=100, method="inclusive")[q - 1]


def event_live(conn: sqlite3.Connection, job: int) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM job_file_events AS l JOIN file_events AS f "
        "ON f.event_id = l.event_id WHERE l.job_id = ? AND f.removed IS NULL",
        (job,),
    ).fetchone()
    return bool(row[0])


def finished(conn: sqlite3.Connection, job: int) -> bool:
    state = conn.execute("SELECT state FROM jobs WHERE id = ?", (job,)).fetchone()[0]
    return state in ("DONE", "EXIT")


def latency_series(
    label: str,
    root: Path,
    trials: int,
    poll_interval: float | None,
    rng: random.Random,
    floor_trials: int = 0,
) -> list[Latencies]:
    """`trials` sequential creations in `root`/watch; with `poll_interval`, polled there.
    Then `floor_trials` jobs without a condition, submit to start: what dispatch costs."""
    directory = root / "watch"
    directory.mkdir(parents=True)
    db = root / "tock.db"
    config = f"max_running = {MAX_RUNNING}\n"
    if poll_interval is not None:
        config += f'file_poll_paths = ["{directory}"]\nfile_poll_interval = {poll_interval}\n'
    created: dict[int, float] = {}
    started = time.perf_counter()
    with (
        DaemonProcess(db, config, "daemon") as daemon,
        Tock(db, config=Config(max_running=MAX_RUNNING)) as api,
    ):
        reader = sqlite3.connect(db, timeout=30)
        directory_inode = {directory.stat().st_ino}
        for n in range(trials):
            target = directory / f"in{n}.dat"
            job = api.submit("true", condition=f"file(arrival({target}))", env={})
            wait_until(f"the event of job {job}", partial(event_live, reader, job), 30)
            if poll_interval is None:
                wait_until("the watch", lambda: watching(daemon.pid, directory_inode), 10)
                time.sleep(0.02)
            else:
                time.sleep(0.02 + rng.uniform(0, poll_interval))  # a uniform phase of the poll
            created[job] = time.time()
            with target.open("wb") as f:
                f.write(b"data\n")
            time.sleep(0.1)
            wait_until(
                f"job {job} to finish",
                partial(finished, reader, job),
                30 + 3 * (poll_interval or 0),
                0.01,
            )
            daemon.alive()
        file_seconds = time.perf_counter() - started
        floor: dict[int, float] = {}
        floor_started = time.perf_counter()
        for _ in range(floor_trials):
            at = time.time()
            job = api.submit("true", env={})
            floor[job] = at
            time.sleep(0.05)
            wait_until(f"job {job} to finish", partial(finished, reader, job), 30, 0.01)
        floor_seconds = time.perf_counter() - floor_started
        rows = dict(
            reader.execute(
                "SELECT job_id, min(start_time) FROM job_runs "
                f"WHERE job_id IN ({','.join('?' * (len(created) + len(floor)))}) GROUP BY job_id",
                [*created, *floor],
            ).fetchall()
        )
        reader.close()
    missing = [job for job in [*created, *floor] if rows.get(job) is None]
    if missing:
        raise BenchError(f"{label}: jobs without a start time: {missing[:10]}")
    ms = [(rows[job] - at) * 1e3 for job, at in created.items()]
    found = [Latencies(label, ms, file_seconds)]
    if floor:
        ms = [(rows[job] - at) * 1e3 for job, at in floor.items()]
        found.append(Latencies("floor: submit, no -w -> start", ms, floor_seconds))
    return found


# -- part 3: idle cost ----------------------------------------------------------------------


@dataclass
class Idle:
    label: str
    events: int
    dirs: int
    submit_seconds: float | None
    settle_seconds: float
    watches: int
    idle_percent: float
    wakeups_per_second: float
    launcher_percent: float
    rss_kib: int
    hwm_kib: int
    scan_ms: float | None = None  # CPU per reconciling scan

    @property
    def average_percent(self) -> float:
        scans = 0.0 if self.scan_ms is None else self.scan_ms / 1e3 / DEFAULT_SCAN_INTERVAL * 100
        return self.idle_percent + scans


def measure_window(daemon: DaemonProcess, seconds: float) -> tuple[float, float, float]:
    """(% of one core, wake-ups per second, % of the launcher) over `seconds` of wall time."""
    helpers = children(daemon.pid)
    cpu0, wake0 = cpu_ticks(daemon.pid), wakeups(daemon.pid)
    helper0 = sum(cpu_ticks(pid) for pid in helpers)
    wall0 = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - wall0
    cpu, wake = cpu_ticks(daemon.pid) - cpu0, wakeups(daemon.pid) - wake0
    helper = sum(cpu_ticks(pid) for pid in helpers) - helper0
    daemon.alive()
    return (cpu / CLOCK_TICKS / wall * 100, wake / wall, helper / CLOCK_TICKS / wall * 100)


def submit_waiting(db: Path, root: Path, events: int, dirs: int) -> float:
    """`events` jobs on `file(exist(<root>/d<k>/f<i>))`, `dirs` directories; seconds taken."""
    for k in range(dirs):
        (root / f"d{k}").mkdir(parents=True)
    started = time.perf_counter()
    with Tock(db, config=Config(max_running=MAX_RUNNING)) as api:
        for i in range(events):
            api.submit("true", condition=f"file(exist({root}/d{i % dirs}/f{i}))", env={})
    return time.perf_counter() - started


def idle_cost(base: Path, events: int, dirs: int, window: float, extra: float) -> Idle:
    base.mkdir()
    db = base / "tock.db"
    root = base / "targets"
    submit_seconds = submit_waiting(db, root, events, dirs) if events else None
    if not events:
        with Tock(db, config=Config(max_running=MAX_RUNNING)) as api:
            api.conn.execute("SELECT 1")  # creates the database, as a submit would
    inodes = {(root / f"d{k}").stat().st_ino for k in range(dirs)}
    config = f"max_running = {MAX_RUNNING}\n"
    label = f"{events:,} events in {dirs:,} dirs" if events else "baseline: no file events"
    with DaemonProcess(db, config, "daemon") as daemon:
        reader = sqlite3.connect(db, timeout=30)

        def applied() -> bool:
            daemon.alive()
            paths = reader.execute("SELECT count(*) FROM file_paths").fetchone()[0]
            behind = reader.execute(
                "SELECT count(*) FROM journal WHERE id > (SELECT journal_cursor FROM tick_state)"
            ).fetchone()[0]
            return bool(paths == events and behind == 0)

        wait_until("the submissions to be applied", applied, 300, 0.05)
        reader.close()
        if inodes:
            wait_until("every directory to be watched", lambda: watching(daemon.pid, inodes), 120)
        wait_quiet(daemon.pid, 60)
        settle = time.monotonic() - daemon.started
        time.sleep(extra)
        watches = max((len(w) for w in inotify_watches(daemon.pid)), default=0)
        percent, wake, launcher = measure_window(daemon, window)
        rss, hwm = memory_kib(daemon.pid)
        problems = daemon.errors()
    if problems:
        raise BenchError(f"{label}: the daemon logged:\n" + "\n".join(problems[:10]))
    idle = Idle(
        label, events, dirs, submit_seconds, settle, watches, percent, wake, launcher, rss, hwm
    )
    if events:
        # Restart on the same database with a scan every second; the CPU above the idle rate
        # over the window, per scan (the window holds about window / interval scans).
        config += f"file_scan_interval = {SCAN_PROBE_INTERVAL}\n"
        with DaemonProcess(db, config, "daemon-scan") as daemon:
            wait_until("every directory to be watched", lambda: watching(daemon.pid, inodes), 120)
            time.sleep(extra)
            with_scans, _, _ = measure_window(daemon, window)
        scans = window / SCAN_PROBE_INTERVAL
        idle.scan_ms = max(0.0, (with_scans - percent) / 100 * window / scans * 1e3)
    return idle


# -- the report -----------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def machine_line(directory: Path) -> str:
    cores = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0))
    mounts = parse_mountinfo(Path("/proc/self/mountinfo").read_text(errors="surrogateescape"))
    fs = fs_type(str(directory), mounts) or "?"
    plan = make_plan([str(directory / "x")], mounts, ())
    how = "inotify" if plan.dirs else "polled (inotify cannot see it)"
    try:
        limit = Path("/proc/sys/fs/inotify/max_user_watches").read_text().strip()
    except OSError:
        limit = "?"
    return (
        f"machine: {cores} cores ({usable} usable), {platform.machine()}, Linux "
        f"{platform.release()}, Python {platform.python_version()}, watchfiles "
        f"{version('watchfiles')}; {directory} on {fs} ({how}); max_user_watches {limit}"
    )


def print_latencies(series: list[Latencies]) -> None:
    print(
        f"{'create -> job start':<34} {'trials':>6} {'p50 ms':>8} {'p90 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8} {'min ms':>8} {'wall s':>7}"
    )
    print("-" * 95)
    for s in series:
        print(
            f"{s.label:<34} {len(s.ms):>6} {s.quantile(50):>8.1f} {s.quantile(90):>8.1f} "
            f"{s.quantile(99):>8.1f} {max(s.ms):>8.1f} {min(s.ms):>8.1f} {s.seconds:>7.1f}"
        )
    print("-" * 95)
    watched = series[0]
    print(
        f"{verdict(watched.quantile(50) < P50_TARGET_MS)}: inotify p50 "
        f"{watched.quantile(50):.1f} ms (target < {P50_TARGET_MS:.0f} ms); "
        f"{verdict(watched.quantile(99) < P99_TARGET_MS)}: p99 {watched.quantile(99):.1f} ms "
        f"(target < {P99_TARGET_MS:.0f} ms)"
    )
    if len(series) > 1:
        polled = series[1]
        print(
            f"inotify p50 is {polled.quantile(50) / watched.quantile(50):.0f}x faster than "
            f"the 1 s poll (expected p50 there ~500 ms)"
        )


def print_idle(rows: list[Idle], window: float) -> None:
    print(
        f"{'idle daemon':<30} {'submit s':>8} {'ms/job':>6} {'settle s':>8} {'watches':>7} "
        f"{'CPU %':>6} {'wake/s':>6} {'scan ms':>7} {'avg %':>6} {'RSS MiB':>7} {'peak':>6}"
    )
    print("-" * 106)
    for r in rows:
        submit = "-" if r.submit_seconds is None else f"{r.submit_seconds:.1f}"
        per_job = "-" if r.submit_seconds is None else f"{r.submit_seconds / r.events * 1e3:.2f}"
        scan = "-" if r.scan_ms is None else f"~{r.scan_ms:.0f}"
        print(
            f"{r.label:<30} {submit:>8} {per_job:>6} {r.settle_seconds:>8.1f} {r.watches:>7} "
            f"{r.idle_percent:>6.2f} {r.wakeups_per_second:>6.0f} {scan:>7} "
            f"{r.average_percent:>6.2f} {r.rss_kib / 1024:>7.1f} {r.hwm_kib / 1024:>6.1f}"
        )
    print("-" * 106)
    print(
        f"CPU %: daemon (all threads) over {window:.0f} s between scans; wake/s: its context "
        f"switches; scan ms: CPU per reconciling scan (restart with a scan every "
        f"{SCAN_PROBE_INTERVAL:.0f} s); avg %: CPU % + one scan per {DEFAULT_SCAN_INTERVAL:.0f} s "
        f"(the default file_scan_interval). Launcher child, not counted: "
        + ", ".join(f"{r.launcher_percent:.2f} %" for r in rows)
    )
    worst = max((r for r in rows if r.events), key=lambda r: r.average_percent, default=None)
    if worst is not None:
        print(
            f"{verdict(worst.average_percent < IDLE_TARGET_PERCENT)}: idle CPU with "
            f"{worst.events:,} file events at most {worst.average_percent:.2f} % of one core "
            f"(target < {IDLE_TARGET_PERCENT:.0f} %)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="inotify trials (default 100)")
    parser.add_argument("--poll-trials", type=int, default=30, help="1 s poll trials (30)")
    parser.add_argument(
        "--floor", type=int, default=30, help="trials without a file event (default 30)"
    )
    parser.add_argument("--events", type=int, default=10_000, help="idle file events (10,000)")
    parser.add_argument(
        "--dirs", type=int, nargs="+", default=[1_000, 10_000], help="directory counts"
    )
    parser.add_argument("--window", type=float, default=10.0, help="idle CPU window (s)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the poll phases")
    args = parser.parse_args()
    began = time.perf_counter()
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory(prefix="tock-bench-file-") as tmp:
        base = Path(tmp).resolve()
        print(machine_line(base))
        print()
        try:
            series = latency_series(
                "inotify (real daemon)", base / "inotify", args.trials, None, rng, args.floor
            )
            series[1:1] = latency_series(
                "baseline: polled, 1 s interval", base / "polled", args.poll_trials, 1.0, rng
            )
            print_latencies(series)
            print()
            rows = [idle_cost(base / "empty", 0, 0, args.window, 2.0)]
            rows.extend(
                idle_cost(base / f"idle{dirs}", args.events, dirs, args.window, 2.0)
                for dirs in args.dirs
            )
            print_idle(rows, args.window)
        except BenchError as exc:
            print(f"FAIL: {exc}")
            return 1
    print()
    print(f"elapsed: {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
