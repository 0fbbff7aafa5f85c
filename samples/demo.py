"""`make demo`: a daemon on a fresh database under ./demo/, the sample pipeline, a live table.

Exits 0 when every job ends the way samples/pipeline.sh says it should, 1 otherwise, so
the demo doubles as a smoke test (tests/e2e/test_samples.py runs it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent
TOCK = str(Path(sys.executable).with_name("tock"))
EXPECTED = {
    "fetch": "DONE",
    "transform.1": "DONE",
    "transform.2": "DONE",
    "transform.3": "EXIT",
    "validate": "EXIT",
    "repair": "DONE",
    "publish": "DONE",
    "alert": "EXIT",
}


def tock(db: Path, *args: str) -> str:
    return subprocess.run(
        [TOCK, "--db", str(db), *args], check=True, capture_output=True, text=True
    ).stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", default="demo", help="where the demo database goes")
    parser.add_argument("--quiet", action="store_true", help="print only the final table")
    options = parser.parse_args()

    home = Path(options.dir).absolute()
    shutil.rmtree(home, ignore_errors=True)
    work = home / "work"
    work.mkdir(parents=True)
    db = home / "tock.db"
    (home / "tock.toml").write_text("max_running = 3\n")
    env = {**os.environ, "TOCK_DB": str(db), "TOCK": TOCK, "TOCK_CONFIG": str(home / "tock.toml")}

    with (home / "daemon.log").open("w") as log:
        daemon = subprocess.Popen([TOCK, "daemon"], env=env, stdout=log, stderr=log)
    try:
        subprocess.run([str(SAMPLES / "pipeline.sh")], cwd=work, env=env, check=True)
        live = sys.stdout.isatty() and not options.quiet
        deadline = time.monotonic() + 60
        while True:
            jobs = json.loads(tock(db, "jobs", "-a", "--json"))
            finished = all(job["state"] in ("DONE", "EXIT") for job in jobs)
            if live:
                print("\033[2J\033[H" + tock(db, "jobs", "-a"), flush=True)
            elif not options.quiet:
                print(" ".join(f"{job['name']}:{job['state']}" for job in jobs), flush=True)
            if finished or time.monotonic() > deadline:
                break
            time.sleep(0.3)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)

    print(tock(db, "jobs", "-a"))
    print(tock(db, "why", "publish"))
    print(tock(db, "hist", "alert"))
    outcome = {job["name"]: job["state"] for job in json.loads(tock(db, "jobs", "-a", "--json"))}
    if outcome != EXPECTED:
        print(f"demo: unexpected outcome {outcome}", file=sys.stderr)
        return 1
    published = (work / "published.txt").read_text().split()
    if published != [str(n) for n in range(1, 31)]:
        print("demo: the published file is incomplete", file=sys.stderr)
        return 1
    print(f"Demo finished: the database is {db}; try  tock --db {db} jobs -a -l")
    return 0


if __name__ == "__main__":
    sys.exit(main())
