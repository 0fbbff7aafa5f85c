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

What a callback sees and how each language is started is engine/callback_interface.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping

from engine.callback_interface import (
    MAX_ACTION_BYTES,
    MAX_ERROR,
    CallbackRequest,
    CallbackResult,
    callback_argv,
    callback_environment,
    parse_actions,
    request_problem,
    write_context,
)
from engine.children import (
    WakePipe,
    close_fds,
    has_exited,
    killpg,
    open_pidfd,
    readable,
)
from engine.cpu_budget import DEFAULT_BUDGET, CpuBudget, cpu_seconds
from engine.orphans import callback_child


def _decode_tail(tail: bytes, truncated: bool) -> str:
    if truncated:  # the cut may have split a UTF-8 character
        skip = 0
        while skip < min(3, len(tail)) and 0x80 <= tail[skip] < 0xC0:
            skip += 1
        tail = tail[skip:]
    return tail.decode("utf-8", errors="replace")


def _signal_leader(pid: int, number: int) -> None:
    """Stop or continue the callback's own process only: that is the CPU the budget counts,
    and a group member left stopped would stay so for ever if the daemon died meanwhile
    (the leader dies with the daemon; nothing would continue the rest). The pid is not
    reaped before its reader thread ends, so it cannot have been reused."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, number)


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
        # The reader thread's: stopped (over its CPU budget) since and until these
        # monotonic times, and for how long in all before.
        self.stopped_at = 0.0
        self.stopped_until: float | None = None
        self.throttled = 0.0


class CallbackPool:
    """Runs callbacks in child processes, at most `size` at once, never blocking the caller."""

    CHUNK = 65536
    DRAIN_LIMIT = 1.0  # seconds to read what an exited run left (a stray holder of a pipe)
    POLL = 0.2  # seconds between exit checks where there is no pidfd
    REAP_LIMIT = 2.0  # seconds to reap a run whose reader has finished
    CPU_CHECK = 0.1  # seconds between looks at a run's CPU use

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
        cpu_budget: CpuBudget | None = DEFAULT_BUDGET,
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
        self.cpu_budget = cpu_budget
        self._queue: deque[CallbackRequest] = deque()
        self._runs: list[_Run] = []
        self._done: list[CallbackResult] = []  # results that need no reaping (start errors)
        self._lock = threading.Lock()
        self._wake = WakePipe()
        self._closed = False

    def __enter__(self) -> CallbackPool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- the daemon's calls ---------------------------------------------------------------

    def fileno(self) -> int:
        """Readable when a result is ready for collect()."""
        return self._wake.fileno()

    def submit(self, request: CallbackRequest, now: float) -> None:
        """Queue a run; it starts at once if a slot is free. Never waits on the child."""
        if self._closed:
            raise RuntimeError("the callback pool is closed")
        self._queue.append(request)
        self._start_queued(now)
        if self._done:
            self._wake.poke()

    def collect(self, now: float) -> list[CallbackResult]:
        """The runs finished since the last call (and the ones that could not start); kill
        the runs past their timeout; start queued runs in the free slots."""
        if self._closed:
            return []
        self._wake.drain()
        results, self._done = self._done, []
        for run in list(self._runs):
            with self._lock:
                finished = run.finished
                if not finished and now >= run.deadline and run.kill_reason is None:
                    run.kill_reason = "timeout"
                    if run.pid:  # else its reader kills it as soon as it has started it
                        killpg(run.pid)  # its reader sees the exit; a later collect reaps it
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
                    killpg(run.pid)
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
            self._wake.close()

    # -- starting -------------------------------------------------------------------------

    def _start_queued(self, now: float) -> None:
        while self._queue and len(self._runs) < self.size:
            self._start(self._queue.popleft(), now)

    def _fail(self, request: CallbackRequest, error: str) -> None:
        self._done.append(
            CallbackResult(request.key, None, None, False, 0.0, "", 0, [], error[:MAX_ERROR])
        )

    def _start(self, request: CallbackRequest, now: float) -> None:
        problem = request_problem(request)
        if problem is not None:
            self._fail(request, problem)
            return
        argv = callback_argv(request, self.python, self.perl, self.shell)
        fds: list[int] = []
        try:
            context = write_context(request, self.sendmail)
            fds.append(context)
            out_read, out_write = os.pipe2(os.O_CLOEXEC)
            fds += [out_read, out_write]
            act_read, act_write = os.pipe2(os.O_CLOEXEC)
            fds += [act_read, act_write]
            env = callback_environment(self.env, request, act_write, context)
        except (OSError, ValueError) as exc:
            close_fds(*fds)
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
            close_fds(*fds)
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
            close_fds(context, out_write, act_write)  # the child's now (or nobody's)
        pidfd = open_pidfd(process.pid)
        with self._lock:
            run.process, run.pid, run.pidfd = process, process.pid, pidfd
            run.started = time.monotonic()
            killed = run.kill_reason is not None
        if killed:  # timed out or closed before it even started
            killpg(run.pid)
        return True

    # -- finishing ------------------------------------------------------------------------

    def _release(self, run: _Run) -> int:
        """Reap the child and close its descriptors (its reader has finished)."""
        if run.process is None:  # it never started (the error says why)
            close_fds(run.out_fd, run.act_fd)
            return 127
        try:
            returncode = run.process.wait(timeout=self.REAP_LIMIT)
        except subprocess.TimeoutExpired:  # unkillable (stuck in the kernel): leave it be
            returncode = -signal.SIGKILL
        close_fds(run.out_fd, run.act_fd, run.pidfd)
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
        tail = _decode_tail(bytes(run.tail), run.total > len(run.tail))
        if run.throttled > 0 and self.cpu_budget is not None:
            note = (
                f"[stopped {run.throttled:.1f} s in all: over its CPU budget of "
                f"{self.cpu_budget.burst:g} s, then {self.cpu_budget.share:.0%} of a core]"
            )
            tail = f"{tail}\n{note}" if tail else note
        return CallbackResult(
            key=run.request.key,
            exit_code=returncode if returncode >= 0 and started else None,
            signal=-returncode if returncode < 0 and started else None,
            timed_out=timed_out,
            duration=max(0.0, ended - run.started),
            output_tail=tail,
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
                killpg(run.pid)
                with contextlib.suppress(Exception):
                    self._exited(run, None)
        with self._lock:
            run.thread_error = error
            if run.ended is None:
                run.ended = time.monotonic()
            run.finished = True
        self._wake.poke()

    def _read_until_exit(self, run: _Run) -> None:
        open_fds = {run.out_fd, run.act_fd}
        check_at = time.monotonic() + self.CPU_CHECK
        while True:
            watched = sorted(open_fds)
            if run.pidfd is not None:
                watched.append(run.pidfd)
            timeout = None if run.pidfd is not None else self.POLL
            if self.cpu_budget is not None:
                wait = max(0.0, check_at - time.monotonic())
                timeout = wait if timeout is None else min(timeout, wait)
            ready = readable(watched, timeout)
            for fd in ready:
                if fd != run.pidfd and not self._take(run, fd):
                    open_fds.discard(fd)
            if run.pidfd is not None and run.pidfd in ready:
                break
            if run.pidfd is None and self._exited(run, 0):
                break
            if self.cpu_budget is not None and time.monotonic() >= check_at:
                check_at = self._govern(run, self.cpu_budget)
        if run.stopped_until is not None:
            run.throttled += time.monotonic() - run.stopped_at
            run.stopped_until = None
        run.ended = time.monotonic()
        # Exited: kill what is left of its group, then read what it wrote until EOF (which
        # never comes if something outside the group holds a pipe).
        killpg(run.pid)
        deadline = time.monotonic() + self.DRAIN_LIMIT
        while open_fds and (left := deadline - time.monotonic()) > 0:
            ready = readable(sorted(open_fds), left)
            if not ready:
                break
            for fd in ready:
                if not self._take(run, fd):
                    open_fds.discard(fd)

    def _govern(self, run: _Run, budget: CpuBudget) -> float:
        """Stop a run over its CPU budget, continue it once back within; the next check."""
        now = time.monotonic()
        if run.stopped_until is not None:
            if now < run.stopped_until:
                return run.stopped_until
            _signal_leader(run.pid, signal.SIGCONT)
            run.throttled += now - run.stopped_at
            run.stopped_until = None
        cpu = cpu_seconds(run.pid)
        pause = 0.0 if cpu is None else budget.pause_for(cpu, now - run.started)
        if pause <= 0:
            return now + self.CPU_CHECK
        _signal_leader(run.pid, signal.SIGSTOP)
        run.stopped_at, run.stopped_until = now, now + pause
        return run.stopped_until

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
                    killpg(run.pid)
        return True

    def _exited(self, run: _Run, timeout: float | None) -> bool:
        return has_exited(run.pid, run.pidfd, timeout, self.POLL)
