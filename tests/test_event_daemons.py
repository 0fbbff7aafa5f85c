"""Site event daemons: real child processes on real pipes, times driven by hand.

Waits are selects on `EventDaemons.fileno()` with generous upper bounds; nothing here
asserts on timing. The `now` given to the daemons is a made-up clock that only moves when
a test moves it, so backoff is checked exactly.
"""

from __future__ import annotations

import os
import select
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.event_daemons import DaemonReport, EventDaemons
from engine.eventd_protocol import MAX_LINE, Post, format_sub, format_unsub, parse_line
from engine.trust import check_command

WAIT = 10.0  # seconds: only an upper bound for what should take milliseconds
NOW = 1000.0
SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "eventd" / "diskisfull.py"

# Answers SUB x with START x, UNSUB x with END x; `probe` describes its surroundings.
# Given a marker path, `SUB quit-once` makes it exit with code 3 unless the marker exists.
ECHO = """
import os, sys
marker = sys.argv[1] if len(sys.argv) > 1 else None
for line in sys.stdin:
    verb, _, name = line.strip().partition(" ")
    if verb == "SUB" and name == "quit-once" and marker and not os.path.exists(marker):
        open(marker, "w").close()
        sys.exit(3)
    if verb == "SUB" and name == "probe":
        env = os.environ.get("TOCK_EVENT_DAEMON")
        leader = os.getpgid(0) == os.getpid() == os.getsid(0)
        print(f"START probe latched {env} {leader} {os.getcwd()}", flush=True)
    elif verb == "SUB":
        print(f"START {name} latched attr with spaces", flush=True)
    elif verb == "UNSUB":
        print(f"END {name}", flush=True)
"""


def script(directory: Path, name: str, body: str, *, shell: bool = False) -> str:
    path = directory / name
    shebang = "#!/bin/sh" if shell else f"#!{sys.executable}"
    path.write_text(f"{shebang}\n{body}")
    path.chmod(0o755)
    return str(path)


class Feed:
    """Everything the daemons have said, collected at a given `now`."""

    def __init__(self, daemons: EventDaemons) -> None:
        self.daemons = daemons
        self.posts: list[tuple[str, Post]] = []
        self.reports: list[DaemonReport] = []

    def collect(self, now: float) -> None:
        posts, reports = self.daemons.collect(now)
        self.posts += posts
        self.reports += reports

    def until(self, now: float, done: Callable[[Feed], bool]) -> None:
        deadline = time.monotonic() + WAIT
        while True:
            self.collect(now)
            if done(self):
                return
            left = deadline - time.monotonic()
            assert left > 0, f"gave up waiting; posts {self.posts}, reports {self.reports}"
            # A pending write is retried at collect: wake for it (the clock stands still).
            timeout = left if self.daemons.next_due() is None else min(left, 0.05)
            select.select([self.daemons.fileno()], [], [], timeout)

    def kinds(self, kind: str) -> list[DaemonReport]:
        return [report for report in self.reports if report.kind == kind]

    def names(self, action: str) -> list[str]:
        return [post.name for _, post in self.posts if post.action == action]


def has(kind: str, count: int = 1) -> Callable[[Feed], bool]:
    return lambda feed: len(feed.kinds(kind)) >= count


@pytest.fixture
def make() -> Iterator[Callable[..., EventDaemons]]:
    made: list[EventDaemons] = []

    def factory(commands: list[str], **options: Any) -> EventDaemons:
        daemons = EventDaemons(commands, **options)
        made.append(daemons)
        return daemons

    yield factory
    for daemons in made:
        daemons.close()


def gone(pid: int) -> bool:
    """No such process, or a zombie that is not ours to reap (PID 1 may never reap it)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except FileNotFoundError:
        return True
    return fields[0] == b"Z"


def not_our_child(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


# -- the protocol ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "post"),
    [
        ("START x latched", Post("start", "x", "latched")),
        ("START x latched attr with spaces", Post("start", "x", "latched", "attr with spaces")),
        ("START x PULSEALL a", Post("start", "x", "pulseAll", "a")),
        ("START x pulseall  two  blanks ", Post("start", "x", "pulseAll", " two  blanks ")),
        ("start tape:XYZ Pulse", Post("start", "tape:XYZ", "pulse")),
        ("START x Exclusive", Post("start", "x", "exclusive")),
        ("END x", Post("end", "x")),
        ("  END x  ", Post("end", "x")),
        ("REJECT x", Post("reject", "x")),
        ("REJECT x bad syntax: 'y'", Post("reject", "x", None, "bad syntax: 'y'")),
    ],
)
def test_parse_line_accepts(line: str, post: Post) -> None:
    assert parse_line(line) == post


@pytest.mark.parametrize(
    ("line", "token"),
    [
        ("", "empty line"),
        ("   ", "empty line"),
        ("FIRE x", "'FIRE'"),
        ("SUB x", "'SUB'"),
        ("START", "missing event name"),
        ("START x", "missing event type"),
        ("START x bogus attr", "'bogus'"),
        ("END", "missing event name"),
        ("END x y", "'y'"),
        ("REJECT", "missing event name"),
    ],
)
def test_parse_line_names_the_offending_token(line: str, token: str) -> None:
    error = parse_line(line)
    assert isinstance(error, str)
    assert token in error


def test_format_sub_and_unsub() -> None:
    assert format_sub("diskisfull") == "SUB diskisfull\n"
    assert format_unsub("diskisfull:/tmp:0") == "UNSUB diskisfull:/tmp:0\n"
    for bad in ("", "two words", "tab\there", "new\nline"):
        with pytest.raises(ValueError):
            format_sub(bad)


# -- which executables may run --------------------------------------------------------------


def test_check_command_accepts_a_private_executable(tmp_path: Path) -> None:
    assert check_command(script(tmp_path, "ok", "")) is None
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)  # like /tmp: others may write, but not replace our file
    assert check_command(script(sticky, "ok", "")) is None


def test_check_command_refusals(tmp_path: Path) -> None:
    good = script(tmp_path, "good", "")
    assert "not an absolute path" in (check_command("good") or "")
    assert "No such file" in (check_command(str(tmp_path / "missing")) or "")
    assert "not a regular file" in (check_command(str(tmp_path)) or "")

    plain = script(tmp_path, "plain", "")
    os.chmod(plain, 0o644)
    assert "not executable" in (check_command(plain) or "")

    shared = script(tmp_path, "shared", "")
    os.chmod(shared, 0o775)
    assert "writable by group or others" in (check_command(shared) or "")
    os.chmod(shared, 0o757)
    assert "writable by group or others" in (check_command(shared) or "")

    open_dir = tmp_path / "open"
    open_dir.mkdir()
    inside = script(open_dir, "inside", "")
    open_dir.chmod(0o757)
    refusal = check_command(inside) or ""
    assert f"directory {open_dir} is writable by group or others" in refusal
    open_dir.chmod(0o775)
    assert "writable by group or others" in (check_command(inside) or "")

    # A symlink from a safe place into an unsafe one: where the file really is counts.
    link = tmp_path / "link"
    link.symlink_to(inside)
    assert f"directory {open_dir}" in (check_command(str(link)) or "")
    assert check_command(good) is None


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")
def test_check_command_refuses_files_of_other_users(tmp_path: Path) -> None:
    theirs = script(tmp_path, "theirs", "")
    os.chown(theirs, 4242, -1)
    assert "owned by uid 4242" in (check_command(theirs) or "")
    their_dir = tmp_path / "their_dir"
    their_dir.mkdir()
    inside = script(their_dir, "inside", "")
    os.chown(their_dir, 4242, -1)
    assert f"directory {their_dir} is owned by uid 4242" in (check_command(inside) or "")


# -- children -------------------------------------------------------------------------------


def test_sub_start_unsub_end(tmp_path: Path, make: Callable[..., EventDaemons]) -> None:
    command = script(tmp_path, "echo", ECHO)
    daemons = make([command])
    feed = Feed(daemons)
    daemons.subscribe({"x"})  # before the start: replayed to the new child
    daemons.start(NOW)
    feed.until(NOW, lambda f: "x" in f.names("start"))
    assert feed.posts == [(command, Post("start", "x", "latched", "attr with spaces"))]
    assert [r.kind for r in feed.reports] == ["started"]
    assert feed.reports[0].daemon == command

    daemons.subscribe({"x", "y"})
    feed.until(NOW, lambda f: "y" in f.names("start"))
    daemons.subscribe({"y"})
    feed.until(NOW, lambda f: "x" in f.names("end"))
    assert feed.names("start") == ["x", "y"]  # x was not sent again
    assert feed.names("end") == ["x"]
    assert daemons.next_due() is None


def test_children_run_in_their_own_session_with_the_marker(
    tmp_path: Path, make: Callable[..., EventDaemons]
) -> None:
    daemons = make([script(tmp_path, "echo", ECHO)], env={"PATH": "/usr/bin:/bin"})
    feed = Feed(daemons)
    daemons.start(NOW)
    daemons.subscribe({"probe"})
    feed.until(NOW, lambda f: bool(f.posts))
    assert feed.posts[0][1].attribute == "1 True /"


def test_garbage_is_reported_and_valid_lines_pass(
    tmp_path: Path, make: Callable[..., EventDaemons]
) -> None:
    body = f"""
import os, sys
out = sys.stdout.buffer
out.write(b"hello\\n\\nSTART\\nEND early\\nSTART y weird\\n   \\nEND a b\\n")
out.write(b"START \\xff\\xfe latched\\n" + b"x" * {MAX_LINE + 10} + b"\\nEND crlf\\r\\n")
out.write(b"START z pulse " + b"a" * {MAX_LINE} + b"\\n")
out.write(b"REJECT w " + b"a" * {MAX_LINE - 9} + b"\\n")
out.write(b"END last")  # no newline: the end of the output ends the line
out.flush()
os._exit(0)
"""
    command = script(tmp_path, "garbage", body)
    daemons = make([command])
    feed = Feed(daemons)
    daemons.start(NOW)
    feed.until(NOW, has("exited"))
    assert [post for _, post in feed.posts] == [
        Post("end", "early"),
        Post("end", "crlf"),
        Post("reject", "w", None, "a" * (MAX_LINE - 9)),  # exactly MAX_LINE bytes
        Post("end", "last"),
    ]
    errors = [r.detail for r in feed.kinds("error")]
    assert len(errors) == 7, errors
    assert "'hello'" in errors[0]
    assert "missing event name" in errors[1]
    assert "'weird'" in errors[2]
    assert "unexpected 'b'" in errors[3]
    assert "not UTF-8" in errors[4]
    assert f"longer than {MAX_LINE} bytes" in errors[5]
    assert f"longer than {MAX_LINE} bytes" in errors[6]
    assert all(r.daemon == command for r in feed.kinds("error"))
    assert feed.kinds("exited") == [DaemonReport(command, "exited", "exit code 0")]


def test_an_exited_child_is_restarted_after_backoff_and_gets_every_sub(
    tmp_path: Path, make: Callable[..., EventDaemons]
) -> None:
    marker = tmp_path / "quit-done"
    command = f"{script(tmp_path, 'echo', ECHO)} {marker}"
    daemons = make([command], backoff_initial=1.0)
    feed = Feed(daemons)
    daemons.start(NOW)
    daemons.subscribe({"x"})
    feed.until(NOW, lambda f: "x" in f.names("start"))
    daemons.subscribe({"x", "quit-once"})
    feed.until(NOW, has("exited"))
    assert feed.kinds("exited") == [DaemonReport(command, "exited", "exit code 3")]
    assert daemons.next_due() == NOW + 1.0

    feed.collect(NOW + 0.5)
    assert len(feed.kinds("started")) == 1  # not yet
    feed.collect(NOW + 1.0)
    assert len(feed.kinds("started")) == 2
    # The new child is told about every subscribed name: it answers both now.
    feed.until(NOW + 1.0, lambda f: f.names("start").count("x") == 2)
    feed.until(NOW + 1.0, lambda f: "quit-once" in f.names("start"))
    assert daemons.next_due() is None


def test_a_child_that_exits_at_once_does_not_spin(
    tmp_path: Path, make: Callable[..., EventDaemons]
) -> None:
    command = script(tmp_path, "false", "exit 1\n", shell=True)
    daemons = make([command], backoff_initial=1.0, backoff_max=8.0)
    feed = Feed(daemons)
    now = NOW
    daemons.start(now)
    delays = []
    for attempt in range(1, 6):
        feed.until(now, has("exited", attempt))
        assert feed.kinds("exited")[-1].detail == "exit code 1"
        due = daemons.next_due()
        assert due is not None
        delays.append(due - now)
        feed.collect(due - 0.01)
        assert len(feed.kinds("started")) == attempt  # no restart before its time
        now = due
        feed.collect(now)
        assert len(feed.kinds("started")) == attempt + 1
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]

    # An exit seen a long time after the start resets the backoff.
    now += EventDaemons.STABLE_AFTER
    feed.until(now, has("exited", 6))
    assert daemons.next_due() == now + 1.0


def test_a_child_that_does_not_read_is_killed_and_restarted(
    tmp_path: Path, make: Callable[..., EventDaemons]
) -> None:
    body = 'import time\nprint("START ready latched", flush=True)\ntime.sleep(1000)\n'
    command = script(tmp_path, "deaf", body)
    daemons = make([command], max_pending_output=1000, backoff_initial=1.0)
    feed = Feed(daemons)
    daemons.start(NOW)
    feed.until(NOW, lambda f: "ready" in f.names("start"))
    pid = int(feed.kinds("started")[0].detail.split()[1])
    # Far more than the pipe holds: the child never reads it.
    daemons.subscribe(f"event-{i:06d}" for i in range(20_000))
    feed.until(NOW, has("exited"))
    assert feed.kinds("exited") == [DaemonReport(command, "exited", "not reading its input")]
    assert not_our_child(pid) and gone(pid)

    daemons.subscribe({"one"})  # little enough for the next child
    assert daemons.next_due() == NOW + 1.0
    feed.collect(NOW + 1.0)
    feed.until(NOW + 1.0, lambda f: f.names("start").count("ready") == 2)
    assert len(feed.kinds("started")) == 2
    assert len(feed.kinds("exited")) == 1


def test_a_child_that_leaves_its_input_unread_is_killed_after_the_stall_limit(
    tmp_path: Path, make: Callable[..., EventDaemons]
) -> None:
    body = 'import time\nprint("START ready latched", flush=True)\ntime.sleep(1000)\n'
    command = script(tmp_path, "slow", body)
    daemons = make([command], max_pending_output=1 << 20)
    feed = Feed(daemons)
    daemons.start(NOW)
    feed.until(NOW, lambda f: "ready" in f.names("start"))
    # More than a pipe holds (64 KiB), less than the limit: some input waits.
    daemons.subscribe(f"event-{i:06d}" for i in range(5_000))
    assert daemons.next_due() == NOW  # subscribe() has no clock: collect at once
    feed.collect(NOW)
    due = daemons.next_due()
    assert due is not None and NOW < due <= NOW + EventDaemons.WRITE_RETRY_MAX
    feed.collect(NOW + EventDaemons.STALL_LIMIT - 1)
    assert not feed.kinds("exited")
    feed.until(NOW + EventDaemons.STALL_LIMIT, has("exited"))
    assert feed.kinds("exited") == [DaemonReport(command, "exited", "not reading its input")]


def test_a_child_that_closes_its_input_is_killed(
    tmp_path: Path, make: Callable[..., EventDaemons]
) -> None:
    body = (
        'import os, time\nos.close(0)\nprint("START ready latched", flush=True)\ntime.sleep(1000)\n'
    )
    command = script(tmp_path, "closer", body)
    daemons = make([command])
    feed = Feed(daemons)
    daemons.start(NOW)
    feed.until(NOW, lambda f: "ready" in f.names("start"))
    daemons.subscribe({"x"})
    feed.until(NOW, has("exited"))
    assert feed.kinds("exited")[0].detail == "closed its input"


def test_a_child_that_closes_its_output_is_killed(
    tmp_path: Path, make: Callable[..., EventDaemons]
) -> None:
    command = script(tmp_path, "mute", "import os, time\nos.close(1)\ntime.sleep(1000)\n")
    daemons = make([command])
    daemons.EOF_GRACE = 0.1
    feed = Feed(daemons)
    daemons.start(NOW)
    feed.until(NOW, has("exited"))
    assert feed.kinds("exited") == [DaemonReport(command, "exited", "closed its output")]


def test_a_flood_is_capped_and_reported(tmp_path: Path, make: Callable[..., EventDaemons]) -> None:
    body = 'import sys\nsys.stdout.write("END flood\\n" * 30000)\n'
    body += "sys.stdout.flush()\nsys.stdin.read()\n"
    daemons = make([script(tmp_path, "flood", body)])
    daemons.MAX_QUEUED_LINES = 100
    feed = Feed(daemons)
    daemons.start(NOW)
    feed.until(NOW, lambda f: any("dropped" in r.detail for r in f.kinds("error")))
    assert len(feed.posts) < 30000
    # One error per collect that found lines dropped, never one per line.
    assert len(feed.kinds("error")) < 30000 // 100


def test_refusals_are_reported_once(tmp_path: Path, make: Callable[..., EventDaemons]) -> None:
    shared = script(tmp_path, "shared", ECHO)
    os.chmod(shared, 0o775)
    daemons = make(["relative/path", shared, "'unbalanced", ""], backoff_max=4.0)
    feed = Feed(daemons)
    daemons.start(NOW)
    feed.collect(NOW)
    refused = feed.kinds("refused")
    assert [r.daemon for r in refused] == ["relative/path", shared, "'unbalanced", ""]
    assert "not an absolute path" in refused[0].detail
    assert "writable by group or others" in refused[1].detail
    assert "cannot parse" in refused[2].detail
    assert "empty" in refused[3].detail

    now = NOW
    for _ in range(5):  # retried with backoff, never reported again
        due = daemons.next_due()
        assert due is not None and due > now
        now = due
        feed.collect(now)
    assert len(feed.kinds("refused")) == 4
    assert not feed.kinds("started")

    os.chmod(shared, 0o755)  # fixed: the next retry starts it
    due = daemons.next_due()
    assert due is not None and due - now <= 4.0
    feed.collect(due)
    assert [r.daemon for r in feed.kinds("started")] == [shared]


def test_names_the_protocol_cannot_carry_are_reported(
    tmp_path: Path, make: Callable[..., EventDaemons]
) -> None:
    daemons = make([script(tmp_path, "echo", ECHO)])
    feed = Feed(daemons)
    daemons.start(NOW)
    daemons.subscribe({"ok", "two words"})
    daemons.subscribe({"ok", "two words"})
    feed.until(NOW, lambda f: "ok" in f.names("start"))
    errors = feed.kinds("error")
    assert len(errors) == 1 and errors[0].daemon == "" and "'two words'" in errors[0].detail


def test_close_leaves_no_process_behind(tmp_path: Path, make: Callable[..., EventDaemons]) -> None:
    # One child ignores SIGTERM and EOF and has a child of its own; one behaves.
    stubborn = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
helper = subprocess.Popen(["sleep", "1000"], stdout=subprocess.DEVNULL)
print(f"START pids latched {os.getpid()} {helper.pid}", flush=True)
sys.stdin.read()
time.sleep(1000)
"""
    daemons = make([script(tmp_path, "stubborn", stubborn), script(tmp_path, "echo", ECHO)])
    daemons.TERM_GRACE = 0.2
    feed = Feed(daemons)
    daemons.start(NOW)
    daemons.subscribe({"hello"})
    feed.until(NOW, lambda f: {"pids", "hello"} <= set(f.names("start")))
    attribute = next(post.attribute for _, post in feed.posts if post.name == "pids")
    assert attribute is not None
    child, helper = map(int, attribute.split())
    echo_pid = int(feed.kinds("started")[1].detail.split()[1])
    daemons.close()
    for pid in (child, echo_pid):
        assert not_our_child(pid)
        assert not os.path.exists(f"/proc/{pid}")
    deadline = time.monotonic() + WAIT  # the helper is reparented: someone else reaps it
    while not gone(helper) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gone(helper)
    daemons.close()  # twice is harmless


def test_the_exit_of_a_child_kills_its_process_group(
    tmp_path: Path, make: Callable[..., EventDaemons]
) -> None:
    body = """
import os, subprocess
helper = subprocess.Popen(["sleep", "1000"], stdout=subprocess.DEVNULL)
print(f"START helper latched {helper.pid}", flush=True)
os._exit(0)
"""
    daemons = make([script(tmp_path, "leaver", body)])
    feed = Feed(daemons)
    daemons.start(NOW)
    feed.until(NOW, has("exited"))
    attribute = feed.posts[0][1].attribute
    assert attribute is not None
    helper = int(attribute)
    deadline = time.monotonic() + WAIT
    while not gone(helper) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gone(helper)


# -- the sample daemon ----------------------------------------------------------------------


@pytest.fixture
def sample(tmp_path: Path) -> str:
    """The sample with this interpreter in its shebang, in a directory only we may write."""
    assert os.access(SAMPLE, os.X_OK)
    copy = tmp_path / "diskisfull.py"
    text = SAMPLE.read_text()
    assert text.startswith("#!/usr/bin/env python3\n")
    copy.write_text(f"#!{sys.executable}\n" + text.split("\n", 1)[1])
    copy.chmod(0o755)
    return str(copy)


@pytest.mark.parametrize(("percent", "full"), [("0", True), ("101", False)])
def test_the_diskisfull_sample(
    sample: str, make: Callable[..., EventDaemons], percent: str, full: bool
) -> None:
    env = {**os.environ, "DISKISFULL_PERCENT": percent, "DISKISFULL_INTERVAL": "0.1"}
    daemons = make([sample], env=env)
    feed = Feed(daemons)
    daemons.start(NOW)
    daemons.subscribe({"diskisfull", "diskisfull:/tmp:0", "tapeXYZ"})
    names = {"diskisfull", "diskisfull:/tmp:0"}

    def answered(f: Feed) -> bool:
        return {post.name for _, post in f.posts} >= names

    feed.until(NOW, answered)
    by_name = {post.name: post for _, post in feed.posts}
    assert "tapeXYZ" not in by_name, "another daemon's name is left alone"
    tmp = by_name["diskisfull:/tmp:0"]
    assert (tmp.action, tmp.type) == ("start", "latched")  # its own threshold: always full
    assert tmp.attribute is not None and tmp.attribute.endswith("%")
    root = by_name["diskisfull"]
    if full:
        assert (root.action, root.type) == ("start", "latched")
        assert root.attribute is not None
        mount, used = root.attribute.split(" ")
        assert mount == "/" and used.endswith("%") and 0 <= int(used[:-1]) <= 100
    else:
        assert root == Post("end", "diskisfull")

    # Only changes are reported: several checks later, still one post per name.
    daemons.subscribe({"diskisfull", "diskisfull:/tmp:0", "tapeXYZ", "diskisfull:/nowhere:5"})
    feed.until(NOW, lambda f: "diskisfull:/nowhere:5" in f.names("reject"))
    deadline = time.monotonic() + 0.5  # a few intervals
    while time.monotonic() < deadline:
        select.select([daemons.fileno()], [], [], deadline - time.monotonic())
        feed.collect(NOW)
    assert len(feed.posts) == 3  # tapeXYZ is not answered
    assert not feed.kinds("error") and not feed.kinds("exited")

    daemons.subscribe(set())  # UNSUB everything; EOF at close ends it cleanly
    daemons.close()
    assert [r.kind for r in feed.reports] == ["started"]


def test_the_sample_exits_at_end_of_input(sample: str) -> None:
    env = {**os.environ, "DISKISFULL_INTERVAL": "0.1"}
    result = subprocess.run(
        [sample],
        input=b"SUB diskisfull:/tmp:0\nSUB nope\nUNSUB diskisfull:/tmp:0\n",
        capture_output=True,
        env=env,
        timeout=WAIT,
        check=True,
    )
    lines = result.stdout.decode().splitlines()
    assert lines[0].startswith("START diskisfull:/tmp:0 latched ")
    assert len(lines) == 1, "another daemon's name is left alone"


def test_the_sample_is_not_writable_by_others() -> None:
    mode = stat.S_IMODE(os.stat(SAMPLE).st_mode)
    assert mode & 0o111 and not mode & 0o002
