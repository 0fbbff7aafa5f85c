"""The `tock` command as users type it: output, JSON, errors and exit codes."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TOCK, tock_cli

JOB_FIELDS = {
    "id",
    "name",
    "user",
    "state",
    "exit_code",
    "command",
    "condition",
    "pending_reason",
    "submit_time",
    "start_time",
    "end_time",
}


def submit(db: Path, *args: str) -> int:
    result = tock_cli(db, "submit", "--json", *args)
    return int(json.loads(result.stdout)["id"])


def counts(db: Path) -> tuple[int, int]:
    conn = sqlite3.connect(db)
    try:
        jobs = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
        rows = conn.execute("SELECT count(*) FROM journal").fetchone()[0]
    finally:
        conn.close()
    return jobs, rows


def test_submit_prints_the_lsf_line(db_path: Path) -> None:
    result = tock_cli(db_path, "submit", "-J", "first", "--", "echo", "a b")
    assert result.stdout == "Job <1> is submitted.\n"
    listing = json.loads(tock_cli(db_path, "jobs", "--json").stdout)
    assert listing[0]["command"] == "echo 'a b'"  # several arguments are quoted and joined
    tock_cli(db_path, "submit", "--", "echo $HOME && true")
    second = json.loads(tock_cli(db_path, "jobs", "2", "--json").stdout)[0]
    assert second["command"] == "echo $HOME && true"  # one argument is used verbatim
    assert second["name"] == "echo $HOME && true"  # default name: the command's end


def test_jobs_json_has_the_documented_fields(db_path: Path) -> None:
    first = submit(db_path, "-J", "a", "--", "true")
    submit(db_path, "-J", "b", "-w", "done(a)", "-H", "--", "true")
    listing = json.loads(tock_cli(db_path, "jobs", "--json").stdout)
    assert [job["id"] for job in listing] == [first, first + 1]
    for job in listing:
        assert set(job) >= JOB_FIELDS
        assert job["submit_time"].endswith(("+00:00", "Z")) or job["submit_time"][-6] in "+-"
        assert job["start_time"] is None
    assert listing[1]["state"] == "PSUSP"
    assert listing[1]["condition"] == "done(a)"


def test_jobs_table_and_long_format(db_path: Path) -> None:
    submit(db_path, "-J", "alpha", "--", "true")
    table = tock_cli(db_path, "jobs").stdout.splitlines()
    assert table[0].split() == ["JOBID", "USER", "STAT", "EXIT", "JOB_NAME", "SUBMIT_TIME"]
    assert table[1].split()[:5] == ["1", table[1].split()[1], "PEND", "-", "alpha"]
    long = tock_cli(db_path, "jobs", "-l", "1").stdout
    assert long.startswith("Job <1>, Job Name <alpha>")
    assert "PENDING REASONS:" in long


def test_unknown_job_is_refused_and_nothing_is_created(db_path: Path) -> None:
    submit(db_path, "-J", "a", "--", "true")
    before = counts(db_path)
    result = tock_cli(db_path, "submit", "-w", "done(nosuch)", "--", "true", check=False)
    assert result.returncode == 1
    assert result.stderr == "tock: no job named 'nosuch' (names refer to your own jobs)\n"
    assert counts(db_path) == before
    result = tock_cli(db_path, "submit", "-w", "done(99)", "--", "true", check=False)
    assert result.stderr == "tock: job <99> does not exist\n"
    assert submit(db_path, "--", "true") == 2  # no id was used up by the refusals


def test_a_syntax_error_names_the_column(db_path: Path) -> None:
    result = tock_cli(db_path, "submit", "-w", "done(a) &&", "--", "true", check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("tock: -w:1:11: syntax error: expected ")
    assert result.stderr.count("\n") == 1
    assert not db_path.exists()  # refused before anything was opened


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["submit", "--bogus", "--", "true"], "No such option '--bogus'"),
        (["submit"], "Missing argument"),
        (["jobs", "-x"], "No such option '-x'"),
        (["frobnicate"], "No such command 'frobnicate'"),
        (["modify", "1"], "give exactly one of -w COND and -wn"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    db_path: Path, args: list[str], fragment: str
) -> None:
    result = tock_cli(db_path, *args, check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("tock: ")
    assert fragment in result.stderr
    assert result.stderr.count("\n") == 1


def test_ti_needs_a_condition(db_path: Path) -> None:
    result = tock_cli(db_path, "submit", "-ti", "--", "true", check=False)
    assert (result.returncode, result.stderr) == (
        1,
        "tock: -ti needs a dependency condition (-w)\n",
    )


def test_why_shows_every_node(db_path: Path) -> None:
    submit(db_path, "-J", "a", "--", "true")
    submit(db_path, "-J", "part1", "--", "true")
    submit(db_path, "-J", "part2", "--", "true")
    job = submit(db_path, "-w", "done(a) && (exit(a, > 2) || ended(part*))", "--", "true")
    tree = json.loads(tock_cli(db_path, "why", str(job), "--json").stdout)
    assert tree["expr"] == "done(a) && (exit(a, > 2) || ended(part*))"
    assert tree["value"] == "false"
    left, right = tree["children"]
    assert left == {
        "expr": "done(a)",
        "value": "false",
        "job": {
            "id": 1,
            "name": "a",
            "user": left["job"]["user"],
            "state": "PEND",
            "exit_code": None,
        },
        "children": [],
    }
    assert [c["expr"] for c in right["children"][1]["children"]] == ["ended(part1)", "ended(part2)"]
    text = tock_cli(db_path, "why", str(job)).stdout
    assert "the dependency condition is not satisfied (false)" in text
    assert "└── ended(part2)" in text


def test_hist_lists_the_state_changes(db_path: Path) -> None:
    job = submit(db_path, "-H", "--", "true")
    tock_cli(db_path, "kill", str(job))
    tock_cli(db_path, "daemon", "--exit-when-idle")
    entries = json.loads(tock_cli(db_path, "hist", str(job), "--json").stdout)
    assert [e["event"] for e in entries] == ["submitted", "killed"]
    assert [e["to_state"] for e in entries] == ["PSUSP", "EXIT"]
    text = tock_cli(db_path, "hist", str(job)).stdout
    assert "Submitted by user" in text and "Killed by user" in text


def test_kill_delete_resume_messages_and_refusals(db_path: Path) -> None:
    held = submit(db_path, "-J", "held", "-H", "--", "true")
    assert tock_cli(db_path, "resume", "held").stdout == f"Job <{held}> is being resumed.\n"
    other = submit(db_path, "--", "true")
    result = tock_cli(db_path, "resume", str(other), check=False)
    assert (result.returncode, result.stderr) == (
        1,
        f"tock: Job <{other}>: Job is not held (it is PEND)\n",
    )
    assert tock_cli(db_path, "kill", str(other)).stdout == f"Job <{other}> is being terminated.\n"
    assert tock_cli(db_path, "del", str(held)).stdout == f"Job <{held}> is being deleted.\n"
    missing = tock_cli(db_path, "kill", "4242", str(other), check=False)
    assert missing.returncode == 1
    assert missing.stderr == "tock: Job <4242>: No matching job found\n"
    assert missing.stdout == f"Job <{other}> is being terminated.\n"  # the others still go


def test_modify_checks_and_refuses_cycles(db_path: Path) -> None:
    a = submit(db_path, "-J", "a", "-H", "--", "true")
    b = submit(db_path, "-J", "b", "-w", "done(a)", "--", "true")
    result = tock_cli(db_path, "modify", str(a), "-w", "done(b)", check=False)
    assert result.returncode == 1
    assert (
        result.stderr
        == f"tock: Job <{a}>: the condition would make a cycle: <{a}> -> <{b}> -> <{a}>\n"
    )
    ok = tock_cli(db_path, "modify", str(b), "-wn")
    assert ok.stdout == f"Parameters of job <{b}> are being changed.\n"
    bad = tock_cli(db_path, "modify", str(b), "-w", "done(b", check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("tock: -w:1:7: syntax error")


@pytest.fixture
def shared_db() -> Iterator[Path]:
    """A database another OS user can reach (pytest's tmp_path is private to root)."""
    directory = Path(tempfile.mkdtemp(prefix="tock-shared-"))
    directory.chmod(0o777)
    yield directory / "tock.db"
    shutil.rmtree(directory)


def as_nobody(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [TOCK, "--db", str(db), *args]
    if os.geteuid() == 0:
        command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]
    env = {**os.environ, "HOME": "/nonexistent", "XDG_CONFIG_HOME": "/nonexistent"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as a second user")
def test_other_users_jobs_are_refused(shared_db: Path) -> None:
    job = submit(shared_db, "-H", "--", "true")
    for path in shared_db.parent.iterdir():
        path.chmod(0o666)
    for verb in ("kill", "del", "resume"):
        result = as_nobody(shared_db, verb, str(job))
        assert result.returncode == 1, result.stderr
        assert (
            result.stderr == f"tock: Job <{job}>: user nobody may not change a job of user root\n"
        )
    result = as_nobody(shared_db, "modify", str(job), "-wn")
    assert "may not change a job of user root" in result.stderr
    own = as_nobody(shared_db, "submit", "--json", "-H", "--", "true")
    assert own.returncode == 0, own.stderr
    mine = json.loads(own.stdout)["id"]
    assert as_nobody(shared_db, "resume", str(mine)).returncode == 0
    # root, like an administrator, may change anybody's job
    assert tock_cli(shared_db, "kill", str(mine)).returncode == 0


def test_a_corrupt_database_is_one_line(tmp_path: Path) -> None:
    db = tmp_path / "broken.db"
    db.write_bytes(b"this is not sqlite at all" * 100)
    result = tock_cli(db, "jobs", check=False)
    assert result.returncode == 1
    assert result.stderr == f"tock: {db}: not a usable Tock database (file is not a database)\n"


def test_a_bad_configuration_names_the_key_and_the_file(db_path: Path, tmp_path: Path) -> None:
    config = tmp_path / "tock.toml"
    config.write_text("max_running = 0\n")
    result = tock_cli(db_path, "submit", "--", "true", check=False)
    assert result.returncode == 1
    assert result.stderr == (
        f"tock: {config}: key 'max_running' must be a whole number of at least 1, not 0\n"
    )


def test_default_database_path_follows_the_environment(tmp_path: Path) -> None:
    def run(*args: str, **env: str) -> None:
        subprocess.run(
            [TOCK, *args, "jobs"], env={**os.environ, **env}, check=True, capture_output=True
        )

    run(XDG_STATE_HOME=str(tmp_path / "xdg"))
    assert (tmp_path / "xdg" / "tock" / "tock.db").exists()
    run(TOCK_DB=str(tmp_path / "env.db"), XDG_STATE_HOME=str(tmp_path / "unused"))
    assert (tmp_path / "env.db").exists() and not (tmp_path / "unused").exists()
    run("--db", str(tmp_path / "flag.db"), TOCK_DB=str(tmp_path / "other.db"))
    assert (tmp_path / "flag.db").exists() and not (tmp_path / "other.db").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run jobs as another user")
def test_a_root_daemon_runs_each_job_as_its_owner(shared_db: Path) -> None:
    proof = shared_db.parent / "who"
    submitted = as_nobody(shared_db, "submit", "--json", "--cwd", "/", "--", f"id -un > {proof}")
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)["id"]
    tock_cli(shared_db, "daemon", "--exit-when-idle")
    info = json.loads(tock_cli(shared_db, "jobs", str(job), "--json").stdout)[0]
    assert info["state"] == "DONE", info
    assert proof.read_text() == "nobody\n"
    output = Path(info["stdout"])
    assert output.parent == shared_db.parent / "output" / "nobody"
    assert output.stat().st_uid == pwd.getpwnam("nobody").pw_uid


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (["--", "echo \udcff"], "the command"),
        (["-J", "n\udcff", "--", "true"], "the job name"),
        (["-w", "done(\udcff)", "--", "true"], "the condition"),
        (["-o", "/tmp/\udcff", "--", "true"], "the -o file name"),
    ],
)
def test_bytes_that_are_not_utf8_are_refused_in_one_line(
    db_path: Path, args: list[str], what: str
) -> None:
    raw = [os.fsencode(arg) for arg in args]
    result = subprocess.run(
        [os.fsencode(TOCK), b"--db", os.fsencode(db_path), b"submit", *raw],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 1
    expected = f"tock: {what} is not valid UTF-8 (byte b'\\xff' at position "
    assert result.stderr.startswith(expected.encode())
    assert result.stderr.count(b"\n") == 1


def test_jobs_filters_by_name_user_and_finished(db_path: Path) -> None:
    submit(db_path, "-J", "build.1", "--", "true")
    submit(db_path, "-J", "build.2", "--", "true")
    submit(db_path, "-J", "other", "-H", "--", "true")
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE jobs SET user = 'somebody' WHERE name = 'other'")
    conn.execute("UPDATE jobs SET state = 'DONE' WHERE name = 'build.1'")
    conn.commit()
    conn.close()

    def names(*args: str) -> list[str]:
        return [
            job["name"] for job in json.loads(tock_cli(db_path, "jobs", "--json", *args).stdout)
        ]

    assert names() == ["build.2"]  # mine, unfinished
    assert names("-a") == ["build.1", "build.2"]
    assert names("-a", "-J", "build.*") == ["build.1", "build.2"]
    assert names("-u", "all") == ["build.2", "other"]
    assert names("-u", "somebody") == ["other"]
    assert names("build.1") == ["build.1"]  # a name means my newest job of that name
    assert tock_cli(db_path, "jobs", "-J", "nothing").stdout == "No unfinished job found\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["kill", "99999999999999999999999"], "Job <99999999999999999999999>: No matching job"),
        (["why", "99999999999999999999999"], "No matching job found"),
        (["hist", "0"], "Job <0>: No matching job found"),
        (["kill", "²"], "Job <²>: No matching job found"),
        (["submit", "-w", "done(99999999999999999999999)", "--", "true"], "does not exist"),
        (["submit", "-w", "(" * 400 + "a" + ")" * 400, "--", "true"], "nested too deeply"),
        (["submit", "-w", "!" * 2000 + "a", "--", "true"], "nested too deeply"),
    ],
)
def test_hostile_arguments_get_one_line(db_path: Path, args: list[str], message: str) -> None:
    result = tock_cli(db_path, *args, check=False)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("tock: ") and message in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("where", ["/proc/tock/t.db", "/etc/passwd/t.db"])
def test_impossible_database_paths_get_one_line(where: str) -> None:
    for command in (["jobs"], ["daemon", "--exit-when-idle"]):
        result = tock_cli(Path(where), *command, check=False)
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith("tock: /") and result.stderr.count("\n") == 1
