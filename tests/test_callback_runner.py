"""Callbacks in child processes: real children, no mocks. Waits use select() on the pool
with generous limits; they bound a test, nothing asserts how fast a run is."""

from __future__ import annotations

import os
import select
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.callback_interface import (
    MAX_ACTION_BYTES,
    CallbackAction,
    CallbackRequest,
    CallbackResult,
    parse_actions,
)
from engine.callback_lib import qb
from engine.callback_runner import CallbackPool

LIMIT = 30.0  # seconds: an upper bound on any wait, never a timing assertion
ROWS: list[dict[str, Any]] = [
    {"id": 12, "name": "render", "status": "failed", "user": "alice", "exit_code": 3},
    {"id": 13, "name": "comp", "status": "blocked", "user": "alice", "exit_code": None},
]
EXTENSIONS = {"python": "py", "perl": "pl", "shell": "sh", "qcb": "qcb"}


@pytest.fixture
def pool() -> Iterator[CallbackPool]:
    with CallbackPool(size=4) as pool:
        yield pool


def script(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def request(
    path: Path,
    *,
    key: str = "k1",
    job_id: int = 12,
    work_id: int | None = None,
    timeout: float = LIMIT,
    spool_dir: str = "",
) -> CallbackRequest:
    language = {ext: lang for lang, ext in EXTENSIONS.items()}[path.suffix[1:]]
    return CallbackRequest(
        key=key,
        path=str(path),
        language=language,
        job_id=job_id,
        work_id=work_id,
        trigger="failed-job-self",
        transition="exit:EXIT",
        jobinfo=ROWS,
        timeout=timeout,
        user="alice",
        spool_dir=spool_dir,
    )


def wait(pool: CallbackPool, count: int) -> list[CallbackResult]:
    """Collect until `count` results came, sleeping in select() like the daemon does."""
    deadline = time.monotonic() + LIMIT
    results: list[CallbackResult] = []
    while len(results) < count:
        now = time.monotonic()
        assert now < deadline, f"only {len(results)} of {count} results"
        due = pool.next_due()
        timeout = deadline - now if due is None else min(deadline - now, max(0.0, due - now))
        select.select([pool.fileno()], [], [], timeout)
        results += pool.collect(time.monotonic())
    return results


def run(pool: CallbackPool, req: CallbackRequest) -> CallbackResult:
    pool.submit(req, time.monotonic())
    (result,) = wait(pool, 1)
    assert result.key == req.key
    return result


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (an orphan may wait for init to reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def group(pgid: int) -> list[int]:
    """The live processes of a process group."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            found.append(int(entry))
    return found


def gone(pids: list[int]) -> bool:
    deadline = time.monotonic() + LIMIT
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def read_pid(path: Path) -> int:
    deadline = time.monotonic() + LIMIT
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.01)
    return int(path.read_text())


# -- python ------------------------------------------------------------------------------------


def test_python_callback_reads_the_context_and_posts_actions(
    pool: CallbackPool, tmp_path: Path
) -> None:
    path = script(
        tmp_path,
        "cb.py",
        """\
        import os
        import sys

        import qb

        job = qb.jobinfo("-id", qb.jobid())[0]
        print(job["id"], job["name"], job["status"], qb.workid(), qb.trigger(), qb.transition())
        print(len(qb.jobinfo(id=13)), len(qb.jobinfo("-id", "12")), len(qb.jobinfo(id=99)))
        print(len(qb.jobinfo()), len(qb.jobinfo("-status", ["failed", "blocked"])))
        print("cwd", os.getcwd() == os.path.dirname(__file__), sys.argv == [__file__])
        qb.unblock(13)
        qb.retry([12, "13"])
        qb.retrywork(qb.jobid(), qb.workid())
        qb.failwork("12:8")
        """,
    )
    result = run(pool, request(path, work_id=7))
    assert result.error is None and result.exit_code == 0 and result.status == "done"
    assert result.output_tail.splitlines() == [
        "12 render failed 7 failed-job-self exit:EXIT",
        "1 1 0",
        "2 2",
        "cwd True True",
    ]
    assert result.actions == [
        CallbackAction("unblock", 13),
        CallbackAction("retry", 12),
        CallbackAction("retry", 13),
        CallbackAction("retry-work", 12, 7),
        CallbackAction("fail-work", 12, 8),
    ]
    assert result.output_bytes == len(result.output_tail.encode())


def test_qb_is_there_without_an_import_and_actions_before_a_failure_count(
    pool: CallbackPool, tmp_path: Path
) -> None:
    path = script(tmp_path, "cb.py", "qb.kill(qb.jobid())\nqb.unblock(0)\n")
    result = run(pool, request(path))
    assert result.actions == [CallbackAction("kill", 12)]
    assert result.exit_code == 1 and "is not a job id" in result.output_tail


def test_sys_exit_ends_only_that_run(pool: CallbackPool, tmp_path: Path) -> None:
    path = script(tmp_path, "cb.py", "import sys\nprint('bye')\nsys.exit(3)\n")
    result = run(pool, request(path))
    assert (result.exit_code, result.signal, result.timed_out) == (3, None, False)
    assert result.error is None and result.status == "failed" and result.output_tail == "bye\n"


def test_an_exception_gives_a_traceback_of_the_callback_alone(
    pool: CallbackPool, tmp_path: Path
) -> None:
    path = script(
        tmp_path,
        "cb.py",
        """\
        def check():
            raise ValueError("no such frame")

        check()
        """,
    )
    result = run(pool, request(path))
    assert result.exit_code == 1 and result.status == "failed"
    assert "Traceback (most recent call last)" in result.output_tail
    assert f'File "{path}", line 4' in result.output_tail
    assert "ValueError: no such frame" in result.output_tail
    assert "runpy" not in result.output_tail and "qb.py" not in result.output_tail


def test_an_endless_loop_is_killed_at_its_timeout_and_the_pool_goes_on(
    pool: CallbackPool, tmp_path: Path
) -> None:
    loop = script(tmp_path, "loop.py", "print('spinning', flush=True)\nwhile True:\n    pass\n")
    result = run(pool, request(loop, timeout=0.5))
    assert result.timed_out and result.status == "timeout"
    assert (result.exit_code, result.signal) == (None, 9)
    assert result.output_tail.startswith("spinning\n")  # then a note: it was CPU-throttled
    assert pool.running() == 0 and pool.next_due() is None
    fine = script(tmp_path, "fine.py", "qb.unblock(12)\n")
    after = run(pool, request(fine, key="k2"))
    assert after.exit_code == 0 and after.actions == [CallbackAction("unblock", 12)]


def test_a_blocking_os_system_is_killed_with_its_grandchild(
    pool: CallbackPool, tmp_path: Path
) -> None:
    path = script(
        tmp_path,
        "cb.py",
        f"""\
        import os
        open({str(tmp_path / "pid")!r}, "w").write(str(os.getpid()))
        os.system("echo $$ > {tmp_path / "grandchild"}; exec sleep 100")
        """,
    )
    pool.submit(request(path, timeout=0.5), time.monotonic())
    (result,) = wait(pool, 1)
    assert result.timed_out and result.signal == 9
    child, grandchild = read_pid(tmp_path / "pid"), read_pid(tmp_path / "grandchild")
    assert gone([child, grandchild])
    assert group(child) == []


def test_megabytes_of_output_keep_only_a_tail(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        "cb.py",
        """\
        import sys
        for _ in range(5 * 16):
            sys.stdout.write("x" * 65535 + "\\n")
        sys.stdout.write("THE END\\n")
        """,
    )
    with CallbackPool(size=1, output_cap=1000) as pool:
        result = run(pool, request(path))
    assert result.exit_code == 0
    assert result.output_bytes == 5 * (1 << 20) + len("THE END\n")
    assert len(result.output_tail) == 1000 and result.output_tail.endswith("x\nTHE END\n")


def test_a_flood_beyond_the_output_limit_is_killed(tmp_path: Path) -> None:
    path = script(tmp_path, "cb.sh", "while :; do echo yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy; done\n")
    with CallbackPool(size=1, output_cap=100, output_limit=1 << 20) as pool:
        result = run(pool, request(path))
    assert result.signal == 9 and not result.timed_out and result.status == "error"
    assert result.error is not None and "bytes of output" in result.error
    assert result.output_bytes > 1 << 20 and len(result.output_tail) == 100


def test_a_pool_of_two_never_runs_more_than_two(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    path = script(
        tmp_path,
        "cb.py",
        f"""\
        import os, time
        mine = os.path.join({str(marks)!r}, str(os.getpid()))
        open(mine, "w").close()
        time.sleep(0.2)
        print(len(os.listdir({str(marks)!r})))
        os.unlink(mine)
        """,
    )
    with CallbackPool(size=2) as pool:
        for index in range(5):
            pool.submit(request(path, key=f"k{index}"), time.monotonic())
            assert pool.running() <= 2
        assert (pool.running(), pool.queued()) == (2, 3)
        results: list[CallbackResult] = []
        deadline = time.monotonic() + LIMIT
        while len(results) < 5:
            assert time.monotonic() < deadline
            select.select([pool.fileno()], [], [], 1.0)
            results += pool.collect(time.monotonic())
            assert pool.running() <= 2
    assert sorted(result.key for result in results) == [f"k{index}" for index in range(5)]
    assert all(result.exit_code == 0 for result in results)
    assert max(int(result.output_tail) for result in results) <= 2


# -- perl, shell -----------------------------------------------------------------------------


def test_perl_callback(pool: CallbackPool, tmp_path: Path) -> None:
    path = script(
        tmp_path,
        "cb.pl",
        """\
        use strict;
        print "job $ENV{QB_JOBID} work '$ENV{QB_WORKID}' ";
        print "$ENV{TOCK_TRIGGER} $ENV{TOCK_JOB_STATUS}\\n";
        print "qb $qb::jobid\\n";
        qb::unblock($qb::jobid);
        qb::retrywork("12:4");
        open(my $actions, '>>', $ENV{TOCK_CALLBACK_ACTIONS}) or die "cannot: $!";
        print $actions "kill 13\\n";
        close($actions);
        """,
    )
    result = run(pool, request(path))
    assert result.exit_code == 0 and result.error is None
    assert result.output_tail == "job 12 work '' failed-job-self failed\nqb 12\n"
    assert result.actions == [
        CallbackAction("unblock", 12),
        CallbackAction("retry-work", 12, 4),
        CallbackAction("kill", 13),
    ]


def test_perl_die_exits_non_zero(pool: CallbackPool, tmp_path: Path) -> None:
    path = script(tmp_path, "cb.pl", 'die "broken\\n";\n')
    result = run(pool, request(path))
    assert result.exit_code not in (None, 0) and "broken" in result.output_tail


def test_shell_callback(pool: CallbackPool, tmp_path: Path) -> None:
    path = script(
        tmp_path,
        "cb.sh",
        """\
        echo "job $QB_JOBID work $QB_WORKID $TOCK_TRANSITION $TOCK_JOB_NAME" >&2
        echo "unblock $QB_JOBID" >> "$TOCK_CALLBACK_ACTIONS"
        echo "complete-work $QB_JOBID $QB_WORKID" >> "$TOCK_CALLBACK_ACTIONS"
        grep -c '"render"' "$TOCK_CALLBACK_CONTEXT"
        exit 4
        """,
    )
    result = run(pool, request(path, work_id=2))
    assert result.exit_code == 4 and result.error is None
    assert result.output_tail == "job 12 work 2 exit:EXIT render\n1\n"
    assert result.actions == [CallbackAction("unblock", 12), CallbackAction("complete-work", 12, 2)]


def test_bad_action_lines_are_named_and_the_others_stand(
    pool: CallbackPool, tmp_path: Path
) -> None:
    path = script(
        tmp_path,
        "cb.sh",
        """\
        A="$TOCK_CALLBACK_ACTIONS"
        echo "unblock 12" >> "$A"
        echo "explode 12" >> "$A"
        echo "retry-work 12" >> "$A"
        echo "error the disk is full" >> "$A"
        printf "block 13" >> "$A"
        """,
    )
    result = run(pool, request(path))
    assert result.exit_code == 0 and result.status == "error"
    assert result.actions == [CallbackAction("unblock", 12), CallbackAction("block", 13)]
    assert result.error is not None
    assert "unknown action 'explode'" in result.error
    assert "retry-work takes <job id> <work id>" in result.error
    assert "the disk is full" in result.error


# -- qcb -------------------------------------------------------------------------------------


def test_qcb_actions_and_mail_to_the_spool(pool: CallbackPool, tmp_path: Path) -> None:
    path = script(tmp_path, "cb.qcb", "# on failure\nunblock-self   MAIL-STATUS\nfail-work-self\n")
    spool = tmp_path / "spool"
    result = run(pool, request(path, key="7:12:-:99:exit", work_id=5, spool_dir=str(spool)))
    assert result.exit_code == 0 and result.error is None
    assert result.actions == [CallbackAction("unblock", 12), CallbackAction("fail-work", 12, 5)]
    (mail,) = spool.iterdir()
    assert mail.name == "7_12_-_99_exit.mail"
    text = mail.read_text()
    assert "To: alice" in text and "Subject: Tock job 12 (render): failed" in text
    assert "Trigger:    failed-job-self" in text and "Exit code:  3" in text


def test_qcb_mail_goes_through_sendmail_when_there_is_one(tmp_path: Path) -> None:
    sendmail = script(
        tmp_path, "sendmail", f'#!/bin/sh\necho "$@" > {tmp_path}/args\ncat > {tmp_path}/mail\n'
    )
    sendmail.chmod(0o755)
    path = script(tmp_path, "cb.qcb", "mail-status\n")
    with CallbackPool(size=1, sendmail=str(sendmail)) as pool:
        result = run(pool, request(path, spool_dir=str(tmp_path / "spool")))
    assert result.exit_code == 0 and result.error is None and result.actions == []
    assert (tmp_path / "args").read_text() == "-t -oi\n"
    assert "Subject: Tock job 12 (render): failed" in (tmp_path / "mail").read_text()
    assert not (tmp_path / "spool").exists()


@pytest.mark.parametrize(
    ("text", "work_id", "expected"),
    [
        ("unblock-self frobnicate mail-status\n", 5, "unknown action word 'frobnicate'"),
        ("unblock-self suspend-self\n", 5, "'suspend-self' is a Qube action word that Tock"),
        ("unblock-self retry-work-self\n", None, "retry-work-self: the trigger that fired"),
    ],
)
def test_a_bad_qcb_does_nothing(
    tmp_path: Path, text: str, work_id: int | None, expected: str
) -> None:
    path = script(tmp_path, "cb.qcb", text)
    spool = tmp_path / "spool"
    with CallbackPool(size=1) as pool:
        result = run(pool, request(path, work_id=work_id, spool_dir=str(spool)))
    assert result.actions == [] and result.exit_code == 2 and result.status == "error"
    assert result.error is not None and expected in result.error
    assert not spool.exists()


def test_qcb_mail_without_mta_or_spool_is_an_error(pool: CallbackPool, tmp_path: Path) -> None:
    path = script(tmp_path, "cb.qcb", "unblock-self mail-status\n")
    result = run(pool, request(path))
    assert result.actions == [CallbackAction("unblock", 12)]
    assert result.error is not None and "no spool directory" in result.error


# -- failures to start, close ----------------------------------------------------------------


def test_what_cannot_start_is_an_error_result(tmp_path: Path) -> None:
    perl = script(tmp_path, "cb.pl", "print 1;\n")
    with CallbackPool(size=1, perl=str(tmp_path / "no-perl")) as pool:
        pool.submit(request(perl), time.monotonic())
        bad = CallbackRequest("k2", "relative.py", "python", 1, None, "t", "x", [])
        pool.submit(bad, time.monotonic())
        pool.submit(CallbackRequest("k3", str(perl), "ruby", 1, None, "t", "x", []), 0.0)
        missing = request(tmp_path / "gone" / "cb.py", key="k4")
        pool.submit(missing, time.monotonic())
        results = {result.key: result for result in wait(pool, 4)}
    assert "cannot start" in (results["k1"].error or "")
    assert "not an absolute path" in (results["k2"].error or "")
    assert "unknown language 'ruby'" in (results["k3"].error or "")
    assert "cannot start" in (results["k4"].error or "")
    assert all(r.status == "error" and r.exit_code is None for r in results.values())


def test_close_leaves_no_processes(tmp_path: Path) -> None:
    sleepers = []
    pool = CallbackPool(size=2)
    for index in range(3):
        pidfile = tmp_path / f"pid{index}"
        path = script(
            tmp_path,
            f"cb{index}.sh",
            f"echo $$ > {pidfile}\nsleep 100 &\nsleep 100\n",
        )
        sleepers.append(pidfile)
        pool.submit(request(path, key=f"k{index}"), time.monotonic())
    assert (pool.running(), pool.queued()) == (2, 1)
    pids = [read_pid(pidfile) for pidfile in sleepers[:2]]
    assert all(group(pid) for pid in pids)  # the shell and its sleeps
    members = [member for pid in pids for member in group(pid)]
    pool.close()
    assert gone(members)  # SIGKILLed: they may take a moment to die
    assert all(group(pid) == [] for pid in pids)
    assert not sleepers[2].exists()  # the queued one never started
    assert pool.collect(time.monotonic()) == [] and pool.running() == 0
    with pytest.raises(RuntimeError):
        pool.submit(request(tmp_path / "cb0.sh"), 0.0)


# -- the protocol, without children ----------------------------------------------------------


def test_action_lines_round_trip() -> None:
    line = qb.format_action("retry-work", 12, 3)
    assert qb.parse_action(line.strip()) == ("retry-work", 12, 3)
    for bad in ("unblock", "unblock 0", "unblock 1 2", "kill x", "fail-work 1", "nope 1"):
        with pytest.raises(ValueError):
            qb.parse_action(bad)
    with pytest.raises(ValueError):
        qb.format_action("unblock", 1, 2)


def test_too_many_action_lines_apply_none() -> None:
    actions, problems = parse_actions(b"unblock 1\n" * 10, overflow=True)
    assert actions == [] and str(MAX_ACTION_BYTES) in problems[0]


def test_qcb_plan() -> None:
    text = "Unblock-Self # a comment kill-self\n\n  complete-work-self mail-status\n"
    assert qb.qcb_plan(text, 4, 9) == (
        [("unblock", 4, None), ("complete-work", 4, 9)],
        True,
        [],
    )
    assert qb.qcb_plan("# nothing\n", 4, None) == ([], False, [])


def test_a_busy_callback_gets_its_burst_then_a_small_share(tmp_path: Path) -> None:
    import resource

    from engine.cpu_budget import CpuBudget

    loop = script(tmp_path, "loop.py", "while True:\n    pass\n")
    budget = CpuBudget(burst=0.3, share=0.05)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with CallbackPool(size=1, cpu_budget=budget) as pool:
        result = run(pool, request(loop, timeout=3.0))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert result.timed_out
    # Without the budget it would use about 3 s: the burst, 5 % of its 3 s, and the
    # interpreter's start and a check interval of slack.
    assert used < 0.3 + 0.05 * 3.0 + 0.4, used
    assert "over its CPU budget of 0.3 s, then 5% of a core" in result.output_tail


def test_a_light_callback_is_never_stopped(pool: CallbackPool, tmp_path: Path) -> None:
    quick = script(tmp_path, "quick.py", "import time\ntime.sleep(0.3)\nprint('ok')\n")
    result = run(pool, request(quick))
    assert result.status == "done" and result.output_tail == "ok\n"


def test_the_budget_rule() -> None:
    from engine.cpu_budget import MAX_PAUSE, CpuBudget

    budget = CpuBudget(burst=1.0, share=0.1)
    assert budget.pause_for(0.9, 0.0) == 0.0
    assert budget.pause_for(1.19, 2.0) == 0.0  # within 1 + 0.1 * 2
    assert budget.pause_for(1.25, 2.0) == pytest.approx(0.5)  # 0.05 over at 10 %
    assert budget.pause_for(5.0, 0.0) == MAX_PAUSE
