"""Work items end to end: `tock submit -J 'name[...]%N'` under the real daemon, each item a
real process with its index, per-item output files, `tock work`, item requests, and a
num*() condition released by the items' ends."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from conftest import DaemonProcess, tock_cli, wait_until

from engine.api import Tock

Start = Callable[..., DaemonProcess]


def submit(db: Path, *args: str) -> int:
    out = tock_cli(db, "submit", "--json", *args).stdout
    return int(json.loads(out)["id"])


def test_items_run_with_their_index_and_cap(db_path: Path, tmp_path: Path, daemon: Start) -> None:
    daemon()
    log = tmp_path / "starts.log"
    # Each item records how many items run beside it (`%2` caps that at 2).
    script = (
        f"echo start >> {log}; n=$(grep -c start {log}); e=$(grep -c end {log} || true); "
        f'echo "$LSB_JOBINDEX $QB_FRAME_NUMBER $((n - e))"; sleep 0.2; echo end >> {log}'
    )
    job = submit(db_path, "-J", "frames[1-5]%2", "--", "sh", "-c", script)
    after = submit(db_path, "-w", f"numdone({job}, >= 5)", "--", "true")
    api = Tock(db_path)
    try:
        api.wait([job, after], timeout=60)
        info = api.job(job)
    finally:
        api.close()
    assert info.state == "DONE"
    outputs = sorted(Path(info.stdout.replace("%I", "*")).parent.glob(f"{job}.*.out"))
    assert [path.name for path in outputs] == [f"{job}.{i}.out" for i in range(1, 6)]
    for index, path in enumerate(outputs, 1):
        frame, number, running = path.read_text().split()
        assert (frame, number) == (str(index), str(index))
        assert int(running) <= 2
    table = tock_cli(db_path, "jobs", "-a").stdout
    assert "frames[1-5]%2" in table
    items = json.loads(tock_cli(db_path, "work", str(job), "--json").stdout)
    assert [(item["index"], item["state"], item["runs"]) for item in items] == [
        (i, "DONE", 1) for i in range(1, 6)
    ]
    hist = tock_cli(db_path, "hist", str(job)).stdout
    assert hist.count("Work item <") == 10  # started and done, for each
    assert "Done successfully" in hist.splitlines()[-1]


def test_a_failed_item_is_retried_from_the_command_line(
    db_path: Path, tmp_path: Path, daemon: Start
) -> None:
    daemon()
    flag = tmp_path / "fixed"
    job = submit(
        db_path, "-J", "r[1-3]", "--", "sh", "-c", f'[ "$LSB_JOBINDEX" != 2 ] || [ -e {flag} ]'
    )
    api = Tock(db_path)
    try:
        api.wait([job], timeout=30)
        assert (api.job(job).state, api.job(job).exit_code) == ("EXIT", 1)
        flag.touch()
        assert (
            tock_cli(db_path, "retry", f"{job}[2]").stdout == f"Job <{job}[2]> is being retried.\n"
        )
        wait_until(lambda: api.job(job).state == "DONE", 30, "the retried item")
    finally:
        api.close()
    failed = tock_cli(db_path, "retry", f"{job}[9]", check=False)
    assert failed.returncode == 1
    assert failed.stderr == f"tock: Job <{job}[9]>: No matching work item found\n"
    bad = tock_cli(db_path, "submit", "-J", "r[1-x]", "--", "true", check=False)
    assert (bad.returncode, bad.stderr) == (
        1,
        "tock: -J:1:5: expected the end of a range, found 'x]'\n",
    )


def test_killing_one_item_leaves_the_others(db_path: Path, daemon: Start) -> None:
    daemon()
    job = submit(
        db_path, "-J", "r[1-3]", "--", "sh", "-c", 'if [ "$LSB_JOBINDEX" = 2 ]; then sleep 60; fi'
    )
    api = Tock(db_path)
    try:
        wait_until(lambda: [i.state for i in api.work(job)] == ["DONE", "RUN", "DONE"], 30, "items")
        wait_until(lambda: api.work(job)[1].start_time is not None, 30, "item 2 to start")
        tock_cli(db_path, "kill", f"{job}[2]")
        api.wait([job], timeout=30)
        items = api.work(job)
    finally:
        api.close()
    assert [item.state for item in items] == ["DONE", "EXIT", "DONE"]
    assert items[1].reason is not None and items[1].reason.startswith("kill by user")


def test_a_timeout_callback_kills_an_overrunning_job(
    db_path: Path, tmp_path: Path, daemon: Start
) -> None:
    daemon()
    action = tmp_path / "overrun.qcb"
    action.write_text("kill-self  # the job ran past --timeout\n")
    action.chmod(0o644)
    job = submit(
        db_path, "--timeout", "0.3", "--callback", f"timeout-job-self={action}", "--", "sleep 30"
    )
    api = Tock(db_path)
    try:
        (info,) = api.wait([job], timeout=20)
        events = [entry.event for entry in api.history(job)]
    finally:
        api.close()
    assert info.state == "EXIT"
    assert events.index("timeout") < events.index("kill_requested")
