"""A callback's side of the runner: what it is given, how each language is started, and
the results and actions that come back. engine/callback_runner.py runs them.

What a callback sees (all languages):
- `QB_JOBID`, `QB_WORKID` (empty when the trigger names no work item), `TOCK_TRIGGER` (the
  trigger text that fired), `TOCK_TRANSITION`, `TOCK_JOB_STATUS` and `TOCK_JOB_NAME` (from
  the job's snapshot row, empty if none), `TOCK_JOB_USER`, `TOCK_CALLBACK_KEY`.
- `TOCK_CALLBACK_CONTEXT`: a path (/dev/fd/N) to read the whole context as JSON: key, path,
  language, job_id, work_id, trigger, transition, user, jobinfo (the snapshot rows), ...
- `TOCK_CALLBACK_ACTIONS`: a path (/dev/fd/N, a pipe; the number alone is in
  `TOCK_CALLBACK_ACTIONS_FD`) to append action lines to, one per line:
  `unblock|block|kill|retry|fail|complete <job id>` or
  `retry-work|fail-work|complete-work|block-work|unblock-work|kill-work <job id> <work id>`;
  and `error <text>`, which sets the
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
  'job:work'), `qb::failwork`, `qb::completework`, `qb::blockwork`, `qb::unblockwork`
  (`qb::workunblock`), `qb::killwork`, which post action lines, then runs the
  file with `do` (a `die` exits non-zero with its message).
- shell (`.sh`): `/bin/sh path`.
- qcb (`.qcb`): Qube action words, blank-separated, `#` to the end of a line a comment, any
  case: unblock-self block-self fail-self kill-self retry-work-self fail-work-self
  complete-work-self block-work-self unblock-work-self kill-work-self mail-status. The
  `-self` words act on the job that fired (the `-work-` ones on its work item). All or
  nothing: an unknown word, a Qube word Tock does not support, or a work word without a
  work item makes the run an error with no actions and no mail. `mail-status` mails the
  job's id, name, status and trigger through `sendmail -t` when the pool's `sendmail` is
  an executable file, else writes it to `spool_dir/<key>.mail` (a re-run of the same
  firing replaces its file). It runs in a child like the rest (reading the file or
  sendmail could block), under the same timeout.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.callback_lib import qb as protocol

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
sub blockwork { _work('block-work', @_) }
sub unblockwork { _work('unblock-work', @_) }
sub workunblock { _work('unblock-work', @_) }
sub killwork { _work('kill-work', @_) }
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


def callback_argv(request: CallbackRequest, python: str, perl: str, shell: str) -> list[str]:
    if request.language in ("python", "qcb"):
        bootstrap = [python, "-I", "-u", "-c", BOOTSTRAP, LIB_DIR]
        return [*bootstrap, request.language, request.path]
    if request.language == "perl":
        return [perl, "-e", PERL_PRELUDE, "--", request.path]
    return [shell, request.path]


def write_context(request: CallbackRequest, sendmail: str) -> int:
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
        "sendmail": sendmail,
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


def callback_environment(
    base: Mapping[str, str] | None, request: CallbackRequest, actions: int, context: int
) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
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


def request_problem(request: CallbackRequest) -> str | None:
    if request.language not in LANGUAGES:
        return f"unknown language {request.language!r} (one of {', '.join(LANGUAGES)})"
    if not os.path.isabs(request.path):
        return f"{request.path}: not an absolute path"
    if not 0 < request.timeout < math.inf:
        return f"timeout {request.timeout!r}: must be a positive number of seconds"
    return None
