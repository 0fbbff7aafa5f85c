"""Callbacks in child processes: the daemon's edge for Qube-style callbacks.

Qube runs callbacks inside its supervisor, so `sys.exit()`, an exception, a blocking
`os.system`, an endless loop or a flood of output harms the scheduler. Here a callback never
runs in the daemon's process and the daemon never waits on one: `CallbackPool.submit()`
queues a `CallbackRequest`, at most `size` children run at once, and the daemon registers
`fileno()` with its selector, puts `next_due()` (the earliest timeout) in its select timeout
and calls `collect(now)`, which returns the finished runs as `CallbackResult`s, kills the
runs past their timeout and starts queued ones. This module never touches the database: the
daemon journals the results and the actions.

Every run:
- Is a child in its own session and process group, stdin /dev/null, stdout and stderr into
  one pipe, working directory the callback's own directory (so that it finds the files next
  to it), the pool's environment (the daemon's unless `env` is given) plus the variables
  below, and no descriptors but those.
- Is killed with its whole process group (SIGKILL) at its timeout: `timed_out`, exit_code
  None. When it exits, whatever is left in its group is killed too: a callback cannot leave
  work behind that outlives its timeout (Qube's "Popen and return" idiom therefore does not
  survive the callback; it is not needed here, where blocking harms nobody).
- Has its output read by a thread: the last `output_cap` bytes are kept (`output_tail`,
  decoded with replacement) and all are counted (`output_bytes`). Beyond `output_limit`
  bytes the run is killed, so that a runaway writer costs the daemon no more CPU.
- Reads its request when it starts, not when it is submitted: a queued request's jobinfo
  must not be changed by the caller.
- Is delivered at least once: the request's idempotency key is carried through untouched,
  and close() drops the runs it kills without results (the daemon runs them again).

What a callback sees (all languages):
- `QB_JOBID`, `QB_WORKID` (empty when the trigger names no work item), `TOCK_TRIGGER` (the
  trigger text that fired), `TOCK_TRANSITION`, `TOCK_JOB_STATUS` and `TOCK_JOB_NAME` (from
  the job's snapshot row, empty if none), `TOCK_JOB_USER`, `TOCK_CALLBACK_KEY`.
- `TOCK_CALLBACK_CONTEXT`: a path (/dev/fd/N) to read the whole context as JSON: key, path,
  language, job_id, work_id, trigger, transition, user, jobinfo (the snapshot rows), ...
- `TOCK_CALLBACK_ACTIONS`: a path (/dev/fd/N, a pipe; the number alone is in
  `TOCK_CALLBACK_ACTIONS_FD`) to append action lines to, one per line:
  `unblock|block|kill|retry|fail|complete <job id>` or
  `retry-work|fail-work|complete-work <job id> <work id>`; and `error <text>`, which sets the
  result's error. Shell: `echo "unblock $QB_JOBID" >> "$TOCK_CALLBACK_ACTIONS"`. Lines are
  read as they come, so what a callback posted before failing still counts. A line that is
  not understood is left out and named in the error; the others stand. More than
  MAX_ACTION_BYTES of them and none stand (the run is broken).

By language:
- python (`.py`): `python -I -u` runs a bootstrap that puts engine/callback_lib first on
  sys.path, so `import qb` is engine/callback_lib/qb.py (see there for the API: jobid,
  workid, trigger, jobinfo, unblock, kill, retry, ...), the callback's directory next, then
  `runpy.run_path(path, run_name='__main__')` with `qb` predefined. An exception prints its
  traceback (without the bootstrap's frames) and exits 1; `sys.exit(n)` exits n. `-I`:
  PYTHON* variables (PYTHONPATH too) and the user's site-packages do not apply.
- perl (`.pl`): `perl -e <prelude> -- path`: the prelude defines Qube's `$qb::jobid`
  (`$qb::workid`, `$qb::trigger`, `$qb::transition`) and `qb::unblock(@ids)`, `qb::block`,
  `qb::kill`, `qb::retry`, `qb::fail`, `qb::complete`, `qb::retrywork($job, $work)` (also
  'job:work'), `qb::failwork`, `qb::completework`, which post action lines, then runs the
  file with `do` (a `die` exits non-zero with its message).
- shell (`.sh`): `/bin/sh path`.
- qcb (`.qcb`): Qube action words, blank-separated, `#` to the end of a line a comment, any
  case: unblock-self block-self fail-self kill-self retry-work-self fail-work-self
  complete-work-self mail-status. The `-self` words act on the job that fired (the `-work-`
  ones on its work item). All or nothing: an unknown word, a Qube word Tock does not
  support, or a work word without a work item makes the run an error with no actions and
  no mail. `mail-status` mails the job's id, name, status and trigger through
  `sendmail -t` when the pool's `sendmail` is an executable file, else writes it to
  `spool_dir/<key>.mail` (a re-run of the same firing replaces its file). It runs in a
  child like the rest (reading the file or sendmail could block), under the same timeout.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.callback_lib import qb as protocol
from engine.orphans import callback_child

LIB_DIR = str(Path(__file__).resolve().parent / "callback_lib")
LANGUAGES = ("python", "perl", "shell", "qcb")
BOOTSTRAP = "import sys;sys.path.insert(0,sys.argv[1]);import qb;qb._main(sys.argv[2:])"
MAX_ACTION_BYTES = 64 << 10  # of action lines per run
MAX_ERROR = 2000  # characters of a result's error

PERL_PRELUDE = r"""
package qb;
use strict;
use warnings;
our $jobid = $ENV{QB_JOBID};
our $workid = (defined $ENV{QB_WORKID} && $ENV{QB_WORKID} ne '') ? $ENV{QB_WORKID} : undef;
our $trigger = $ENV{TOCK_TRIGGER};
our $transition = $ENV{TOCK_TRANSITION};
my $actions;
sub _post {
    my ($action, $job, $work) = @_;
    for my $id (grep { defined } $job, $work) {
        die "qb::$action: '$id' is not an id\n" unless $id =~ /\A[0-9]+\z/;
    }
    die "qb::$action: no job id\n" unless defined $job;
    unless ($actions) {
        open($actions, '>>&=', $ENV{TOCK_CALLBACK_ACTIONS_FD})
            or die "qb: cannot post to the scheduler: $!\n";
    }
    my $line = defined $work ? "$action $job $work\n" : "$action $job\n";
    defined syswrite($actions, $line) or die "qb: cannot post to the scheduler: $!\n";
    return 1;
}
sub _jobs {
    my $action = shift;
    my @ids = map { ref $_ eq 'ARRAY' ? @$_ : $_ } @_;
    die "qb::$action: no job id\n" unless @ids;
    _post($action, $_) for @ids;
    return 1;
}
sub _work {
    my ($action, $job, $work) = @_;
    ($job, $work) = split /:/, $job, 2 if !defined $work && defined $job && $job =~ /:/;
    die "qb::$action: give (job, work) or 'job:work'\n" unless defined $work;
    return _post($action, $job, $work);
}
sub unblock { _jobs('unblock', @_) }
sub block { _jobs('block', @_) }
sub kill { _jobs('kill', @_) }
sub retry { _jobs('retry', @_) }
sub fail { _jobs('fail', @_) }
sub complete { _jobs('complete', @_) }
sub retrywork { _work('retry-work', @_) }
sub failwork { _work('fail-work', @_) }
sub completework { _work('complete-work', @_) }
package main;
my $qb_path = shift @ARGV;
$0 = $qb_path;
die "$qb_path: cannot read: $!\n" unless -f $qb_path && -r _;
do $qb_path;
die $@ if $@;
"""


@dataclass(frozen=True, slots=True)
class CallbackRequest:
    key: str  # idempotency key, opaque here
    path: str  # absolute path of the callback file
    language: str  # 'python' | 'perl' | 'shell' | 'qcb'
    job_id: int
    work_id: int | None
    trigger: str  # the trigger text that fired, e.g. 'failed-job-self'
    transition: str
    jobinfo: list[dict[str, Any]]  # snapshot rows for qb.jobinfo (id name status user ...)
    timeout: float = 60.0
    user: str = ""  # whose job (for the environment; dropping privileges is not ours)
    spool_dir: str = ""  # where mail-status writes when there is no MTA: a file a message


@dataclass(frozen=True, slots=True)
class CallbackAction:
    """What a callback asked for; it goes back through the journal."""

    action: str  # a key of qb.ACTIONS: 'unblock', 'retry-work', ...
    job_id: int
    work_id: int | None = None


@dataclass(frozen=True, slots=True)
class CallbackResult:
    key: str
    exit_code: int | None  # None when killed by a signal or at its timeout
    signal: int | None
    timed_out: bool
    duration: float  # seconds from its start to its exit
    output_tail: str  # the last output_cap bytes of stdout+stderr, decoded with replacement
    output_bytes: int  # how much it printed in all
    actions: list[CallbackAction]
    error: str | None  # could not start, unknown qcb word, bad action lines, ...

    @property
    def status(self) -> str:
        """As callback_runs.status: 'timeout', 'error', 'done' (exit 0) or 'failed'."""
        if self.timed_out:
            return "timeout"
        if self.error is not None:
            return "error"
        return "done" if self.exit_code == 0 else "failed"


def _readable(fds: list[int], timeout: float | None) -> list[int]:
    """The descriptors readable (or at their end) within `timeout` seconds; poll(), not
    select(), for descriptor numbers above 1024."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    wait = None if timeout is None else max(0, math.ceil(timeout * 1000))
    return [fd for fd, _ in poller.poll(wait)]


def _killpg(pid: int) -> None:
    """SIGKILL a run's process group. Only ever called before the run is reaped: its pid,
    the group's id, cannot have been reused."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _close(*fds: int | None) -> None:
    for fd in fds:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def _decode_tail(tail: bytes, truncated: bool) -> str:
    if truncated:  # the cut may have split a UTF-8 character
        skip = 0
        while skip < min(3, len(tail)) and 0x80 <= tail[skip] < 0xC0:
            skip += 1
        tail = tail[skip:]
    return tail.decode("utf-8", errors="replace")


def _self_row(request: CallbackRequest) -> dict[str, Any]:
    for row in request.jobinfo:
        if isinstance(row, dict) and str(row.get("id")) == str(request.job_id):
            return row
    return {}


def parse_actions(data: bytes, overflow: bool) -> tuple[list[CallbackAction], list[str]]:
    """The action lines a run posted, and what is wrong with them (`error` lines too)."""
    problems: list[str] = []
    if overflow:
        return [], [f"more than {MAX_ACTION_BYTES} bytes of action lines: none applied"]
    actions: list[CallbackAction] = []
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, 1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            problems.append(f"action line {number}: not UTF-8")
            continue
        if not line:
            continue
        verb, _, rest = line.partition(" ")
        if verb.lower() == protocol.ERROR:
            problems.append(rest.strip() or "error")
            continue
        try:
            action, job, work = protocol.parse_action(line)
        except ValueError as exc:
            shown = line if len(line) <= 80 else line[:80] + "..."
            problems.append(f"action line {number} ignored: {exc}: {shown!r}")
            continue
        actions.append(CallbackAction(action, job, work))
    return actions, problems


class _Run:
    """One started child, from its start until it has been reaped."""

    def __init__(
        self,
        request: CallbackRequest,
        process: subprocess.Popen[bytes] | None,
        pidfd: int | None,
        out_fd: int,
        act_fd: int,
        started: float,
        now: float,
    ) -> None:
        self.request = request
        # Set by the reader thread, which starts the child (under CallbackPool._lock).
        self.process = process
        self.pid = 0 if process is None else process.pid
        self.pidfd = pidfd
        self.out_fd = out_fd
        self.act_fd = act_fd
        self.started = started  # time.monotonic()
        self.deadline = now + request.timeout  # on the caller's clock
        self.thread: threading.Thread | None = None
        # Under CallbackPool._lock: why we killed it ('timeout', 'output', 'closed').
        self.kill_reason: str | None = None
        # The reader thread's until `finished` (set under the lock), the main thread's after.
        self.tail = bytearray()
        self.total = 0
        self.actions = bytearray()
        self.actions_overflow = False
        self.ended: float | None = None
        self.thread_error: str | None = None
        self.finished = False


class CallbackPool:
    """Runs callbacks in child processes, at most `size` at once, never blocking the caller."""

    CHUNK = 65536
    DRAIN_LIMIT = 1.0  # seconds to read what an exited run left (a stray holder of a pipe)
    POLL = 0.2  # seconds between exit checks where there is no pidfd
    REAP_LIMIT = 2.0  # seconds to reap a run whose reader has finished

    def __init__(
        self,
        *,
        size: int = 4,
        output_cap: int = 4096,
        python: str = sys.executable,
        perl: str = "perl",
        env: Mapping[str, str] | None = None,
        shell: str = "/bin/sh",
        sendmail: str = "/usr/sbin/sendmail",
        output_limit: int = 64 << 20,
    ) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        if output_cap < 1 or output_limit < output_cap:
            raise ValueError("need 1 <= output_cap <= output_limit")
        self.size = size
        self.output_cap = output_cap
        self.output_limit = output_limit
        self.python = python
        self.perl = perl
        self.shell = shell
        self.sendmail = sendmail
        self.env = None if env is None else dict(env)
        self._queue: deque[CallbackRequest] = deque()
        self._runs: list[_Run] = []
        self._done: list[CallbackResult] = []  # results that need no reaping (start errors)
        self._lock = threading.Lock()
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._closed = False

    def __enter__(self) -> CallbackPool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- the daemon's calls ---------------------------------------------------------------

    def fileno(self) -> int:
        """Readable when a result is ready for collect()."""
        return self._read

    def submit(self, request: CallbackRequest, now: float) -> None:
        """Queue a run; it starts at once if a slot is free. Never waits on the child."""
        if self._closed:
            raise RuntimeError("the callback pool is closed")
        self._queue.append(request)
        self._start_queued(now)
        if self._done:
            self._poke()

    def collect(self, now: float) -> list[CallbackResult]:
        """The runs finished since the last call (and the ones that could not start); kill
        the runs past their timeout; start queued runs in the free slots."""
        if self._closed:
            return []
        self._drain()
        results, self._done = self._done, []
        for run in list(self._runs):
            with self._lock:
                finished = run.finished
                if not finished and now >= run.deadline and run.kill_reason is None:
                    run.kill_reason = "timeout"
                    if run.pid:  # else its reader kills it as soon as it has started it
                        _killpg(run.pid)  # its reader sees the exit; a later collect reaps it
            if finished:
                self._runs.remove(run)
                results.append(self._result(run))
        self._start_queued(now)
        results.extend(self._done)
        self._done = []
        return results

    def next_due(self) -> float | None:
        """The earliest timeout of a running callback: collect() then has one to kill."""
        due = [run.deadline for run in self._runs if run.kill_reason is None]
        return min(due) if due else None

    def running(self) -> int:
        """Children started and not yet reaped (killed ones included): never above size."""
        return len(self._runs)

    def queued(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        """Kill every run's process group, drop the queue, reap, join the threads. The
        results of the runs killed here are not reported."""
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        for run in self._runs:
            with self._lock:
                run.kill_reason = run.kill_reason or "closed"
                if run.pid:
                    _killpg(run.pid)
        stuck = False
        for run in self._runs:
            if run.thread is not None:
                run.thread.join(self.DRAIN_LIMIT + self.REAP_LIMIT)
                if run.thread.is_alive():  # an unkillable child: keep its descriptors
                    stuck = True
                    continue
            self._release(run)
        self._runs.clear()
        self._done.clear()
        if not stuck:
            _close(self._read, self._write)

    # -- starting -------------------------------------------------------------------------

    def _start_queued(self, now: float) -> None:
        while self._queue and len(self._runs) < self.size:
            self._start(self._queue.popleft(), now)

    def _fail(self, request: CallbackRequest, error: str) -> None:
        self._done.append(
            CallbackResult(request.key, None, None, False, 0.0, "", 0, [], error[:MAX_ERROR])
        )

    def _argv(self, request: CallbackRequest) -> list[str]:
        if request.language in ("python", "qcb"):
            bootstrap = [self.python, "-I", "-u", "-c", BOOTSTRAP, LIB_DIR]
            return [*bootstrap, request.language, request.path]
        if request.language == "perl":
            return [self.perl, "-e", PERL_PRELUDE, "--", request.path]
        return [self.shell, request.path]

    def _context(self, request: CallbackRequest) -> int:
        """The context as JSON in an anonymous file (memfd), positioned at its start."""
        context = {
            "key": request.key,
            "path": request.path,
            "language": request.language,
            "job_id": request.job_id,
            "work_id": request.work_id,
            "trigger": request.trigger,
            "transition": request.transition,
            "user": request.user,
            "jobinfo": request.jobinfo,
            "timeout": request.timeout,
            "spool_dir": request.spool_dir,
            "sendmail": self.sendmail,
        }
        data = json.dumps(context, default=str).encode()
        try:
            fd = os.memfd_create("tock-callback-context", os.MFD_CLOEXEC)
        except (AttributeError, OSError):  # no memfd: an unlinked temporary file
            with tempfile.TemporaryFile() as stream:
                fd = os.dup(stream.fileno())
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.lseek(fd, 0, os.SEEK_SET)
        except OSError:
            os.close(fd)
            raise
        return fd

    def _environment(self, request: CallbackRequest, actions: int, context: int) -> dict[str, str]:
        env = dict(os.environ if self.env is None else self.env)
        row = _self_row(request)
        env.update(
            QB_JOBID=str(request.job_id),
            QB_WORKID="" if request.work_id is None else str(request.work_id),
            TOCK_TRIGGER=request.trigger,
            TOCK_TRANSITION=request.transition,
            TOCK_JOB_STATUS=str(row.get("status") or ""),
            TOCK_JOB_NAME=str(row.get("name") or ""),
            TOCK_JOB_USER=request.user,
            TOCK_CALLBACK_KEY=request.key,
            TOCK_CALLBACK_ACTIONS=f"/dev/fd/{actions}",
            TOCK_CALLBACK_ACTIONS_FD=str(actions),
            TOCK_CALLBACK_CONTEXT=f"/dev/fd/{context}",
        )
        return env

    def _problem(self, request: CallbackRequest) -> str | None:
        if request.language not in LANGUAGES:
            return f"unknown language {request.language!r} (one of {', '.join(LANGUAGES)})"
        if not os.path.isabs(request.path):
            return f"{request.path}: not an absolute path"
        if not 0 < request.timeout < math.inf:
            return f"timeout {request.timeout!r}: must be a positive number of seconds"
        return None

    def _start(self, request: CallbackRequest, now: float) -> None:
        problem = self._problem(request)
        if problem is not None:
            self._fail(request, problem)
            return
        argv = self._argv(request)
        fds: list[int] = []
        try:
            context = self._context(request)
            fds.append(context)
            out_read, out_write = os.pipe2(os.O_CLOEXEC)
            fds += [out_read, out_write]
            act_read, act_write = os.pipe2(os.O_CLOEXEC)
            fds += [act_read, act_write]
            env = self._environment(request, act_write, context)
        except (OSError, ValueError) as exc:
            _close(*fds)
            self._fail(request, f"cannot start {argv[0]}: {exc}")
            return
        # The reader thread starts the child: a fork and exec cost milliseconds that the
        # daemon's loop must not spend, and the parent-death signal (engine/orphans.py)
        # follows the thread that forked, which lives exactly as long as the child.
        run = _Run(request, None, None, out_read, act_read, time.monotonic(), now)
        spawn = (argv, env, out_write, act_write, context)
        run.thread = threading.Thread(
            target=self._reader, args=(run, spawn), name="tock-callback", daemon=True
        )
        try:
            run.thread.start()
        except RuntimeError as exc:  # no thread to be had
            _close(*fds)
            self._fail(request, f"cannot start its reader: {exc}")
            return
        self._runs.append(run)

    def _spawn(self, run: _Run, spawn: tuple[list[str], dict[str, str], int, int, int]) -> bool:
        """In the reader thread: start the child; False (with the error recorded) if not."""
        argv, env, out_write, act_write, context = spawn
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out_write,
                stderr=out_write,
                pass_fds=(act_write, context),
                close_fds=True,
                start_new_session=True,
                preexec_fn=callback_child,
                env=env,
                cwd=os.path.dirname(run.request.path),
            )
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            run.thread_error = f"cannot start {argv[0]}: {exc}"
            return False
        finally:
            _close(context, out_write, act_write)  # the child's now (or nobody's)
        try:
            pidfd: int | None = os.pidfd_open(process.pid)
        except (OSError, AttributeError):
            pidfd = None  # an old kernel: the reader polls instead
        with self._lock:
            run.process, run.pid, run.pidfd = process, process.pid, pidfd
            run.started = time.monotonic()
            killed = run.kill_reason is not None
        if killed:  # timed out or closed before it even started
            _killpg(run.pid)
        return True

    # -- finishing ------------------------------------------------------------------------

    def _release(self, run: _Run) -> int:
        """Reap the child and close its descriptors (its reader has finished)."""
        if run.process is None:  # it never started (the error says why)
            _close(run.out_fd, run.act_fd)
            return 127
        try:
            returncode = run.process.wait(timeout=self.REAP_LIMIT)
        except subprocess.TimeoutExpired:  # unkillable (stuck in the kernel): leave it be
            returncode = -signal.SIGKILL
        _close(run.out_fd, run.act_fd, run.pidfd)
        return returncode

    def _result(self, run: _Run) -> CallbackResult:
        returncode = self._release(run)
        actions, problems = parse_actions(bytes(run.actions), run.actions_overflow)
        if run.kill_reason == "output":
            problems.insert(0, f"killed: more than {self.output_limit} bytes of output")
        if run.thread_error is not None:
            problems.insert(0, run.thread_error)
        timed_out = run.kill_reason == "timeout" and returncode < 0
        ended = run.ended if run.ended is not None else time.monotonic()
        started = run.process is not None
        return CallbackResult(
            key=run.request.key,
            exit_code=returncode if returncode >= 0 and started else None,
            signal=-returncode if returncode < 0 and started else None,
            timed_out=timed_out,
            duration=max(0.0, ended - run.started),
            output_tail=_decode_tail(bytes(run.tail), run.total > len(run.tail)),
            output_bytes=run.total,
            actions=actions,
            error="; ".join(problems)[:MAX_ERROR] if problems else None,
        )

    # -- the reader threads ---------------------------------------------------------------

    def _reader(self, run: _Run, spawn: tuple[list[str], dict[str, str], int, int, int]) -> None:
        error: str | None = None
        try:
            if not self._spawn(run, spawn):
                error = run.thread_error
            else:
                self._read_until_exit(run)
        except Exception as exc:  # nothing may end the thread unreported
            error = f"reading its output failed: {exc}"
            if run.pid:
                _killpg(run.pid)
                with contextlib.suppress(Exception):
                    self._exited(run, None)
        with self._lock:
            run.thread_error = error
            if run.ended is None:
                run.ended = time.monotonic()
            run.finished = True
        self._poke()

    def _read_until_exit(self, run: _Run) -> None:
        open_fds = {run.out_fd, run.act_fd}
        while True:
            watched = sorted(open_fds)
            if run.pidfd is not None:
                watched.append(run.pidfd)
            ready = _readable(watched, None if run.pidfd is not None else self.POLL)
            for fd in ready:
                if fd != run.pidfd and not self._take(run, fd):
                    open_fds.discard(fd)
            if run.pidfd is not None and run.pidfd in ready:
                break
            if run.pidfd is None and self._exited(run, 0):
                break
        run.ended = time.monotonic()
        # Exited: kill what is left of its group, then read what it wrote until EOF (which
        # never comes if something outside the group holds a pipe).
        _killpg(run.pid)
        deadline = time.monotonic() + self.DRAIN_LIMIT
        while open_fds and (left := deadline - time.monotonic()) > 0:
            ready = _readable(sorted(open_fds), left)
            if not ready:
                break
            for fd in ready:
                if not self._take(run, fd):
                    open_fds.discard(fd)

    def _take(self, run: _Run, fd: int) -> bool:
        """Read a chunk from one of the run's pipes; False at its end."""
        data = os.read(fd, self.CHUNK)
        if not data:
            return False
        if fd == run.act_fd:
            room = MAX_ACTION_BYTES - len(run.actions)
            if len(data) > room:
                run.actions_overflow = True
                data = data[: max(0, room)]
            run.actions += data
            return True
        run.total += len(data)
        if len(data) >= self.output_cap:
            run.tail[:] = data[-self.output_cap :]
        else:
            run.tail += data
            if len(run.tail) > self.output_cap:
                del run.tail[: len(run.tail) - self.output_cap]
        if run.total > self.output_limit:
            with self._lock:
                if run.kill_reason is None:
                    run.kill_reason = "output"
                    _killpg(run.pid)
        return True

    def _exited(self, run: _Run, timeout: float | None) -> bool:
        """Whether the child has exited (it is left unreaped), waiting up to `timeout`."""
        if run.pidfd is not None:
            return bool(_readable([run.pidfd], timeout))
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                if os.waitid(os.P_PID, run.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                    return True
            except ChildProcessError:
                return True
            left = self.POLL if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(self.POLL, left))

    def _poke(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):  # a full pipe holds a wake-up
            os.write(self._write, b"!")

    def _drain(self) -> None:
        # Drained before the runs are looked at: a run finished after this leaves its byte.
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read, 4096):
                pass
