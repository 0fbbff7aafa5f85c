"""qb: Tock's side of a Python callback (`import qb`), after Qube's embedded module.

A callback runs in a process of its own, started by engine/callback_runner.py. `qb` answers
from a snapshot the daemon takes as it starts the run (the job's status is the one the
firing transition gave it), so it needs no database:

- `jobid()`, `workid()` (None when the trigger names no work item), `trigger()` (the trigger
  text that fired, e.g. 'failed-job-self'), `transition()` (what happened), `user()` (whose
  job), `key()` (the run's idempotency key).
- `jobinfo('-id', N)` or `jobinfo(id=N)`: the snapshot rows whose id is N, as dicts (id,
  name, status, user, command, exit_code, ...). Any field can be a filter (`'-pgrp', 12`),
  several filters must all hold, a list or tuple matches any of its items, values compare
  as text as well (`'-id', '12'` finds id 12), and no filter gives every row. The rows are
  copies: changing them changes nothing.
- Actions, carried out by the scheduler after the callback (through the journal, with the
  permissions of the callback's user): `unblock`, `block`, `kill`, `retry`, `fail` and
  `complete`, each taking one or more job ids (ints, digit strings, or lists of them), and
  `retrywork`, `failwork`, `completework`, `blockwork`, `unblockwork` (also Qube's older
  `workunblock`) and `killwork` taking `(job, work)` or `'job:work'`. An action is
  posted when it is called: a callback that fails afterwards has still asked for it.

Code that uses `qb` without importing it (a Qube code string) works too.

This file also holds what the runner and the callbacks must agree on: the action lines
(`<action> <job id> [<work id>]`, or `error <text>`) and the Qube action words of `.qcb`
files. Standard library only: it runs in the callback's interpreter.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: a callback's start-up should stay short
    from collections.abc import Iterable
    from email.message import EmailMessage
    from typing import Any

# action -> whether it names a work item as well as a job
ACTIONS: dict[str, bool] = {
    "unblock": False,
    "block": False,
    "kill": False,
    "retry": False,
    "fail": False,
    "complete": False,
    "retry-work": True,
    "fail-work": True,
    "complete-work": True,
    "block-work": True,
    "unblock-work": True,
    "kill-work": True,
}
ERROR = "error"  # an action line `error <text>` sets the run's error
MAX_ID = (1 << 63) - 1

# Qube action words (.qcb files) -> the action on the job (and work item) that fired.
QCB_WORDS: dict[str, str] = {
    "unblock-self": "unblock",
    "block-self": "block",
    "fail-self": "fail",
    "kill-self": "kill",
    "retry-work-self": "retry-work",
    "fail-work-self": "fail-work",
    "complete-work-self": "complete-work",
    "block-work-self": "block-work",
    "unblock-work-self": "unblock-work",
    "kill-work-self": "kill-work",
}
QCB_MAIL = "mail-status"
QCB_UNSUPPORTED = frozenset(
    {
        "migrate-self",
        "preempt-self",
        "interrupt-self",
        "suspend-self",
        "resume-self",
        "requeue-work-self",
        "mail-license-status",
        "mail-report-status",
        "unblock-subjob-self-single",
        "unblock-subjob-self",
        "block-subjob-self",
        "fail-subjob-self",
        "kill-subjob-self",
        "migrate-subjob-self",
        "preempt-subjob-self",
        "interrupt-subjob-self",
        "suspend-subjob-self",
        "resume-subjob-self",
        "mail-subjob-status",
    }
)

Action = tuple[str, int, int | None]


# -- the protocol ---------------------------------------------------------------------------


def check_id(value: object, what: str = "job id") -> int:
    """An id from an int or a string of digits: from 1 for a job, from 0 for a work item
    (frame 0 is common); ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a {what}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
        number = int(value.strip())
    else:
        raise ValueError(f"{value!r} is not a {what}")
    lowest = 0 if what == "work id" else 1
    if not lowest <= number <= MAX_ID:
        raise ValueError(f"{value!r} is not a {what}")
    return number


def format_action(action: str, job_id: int, work_id: int | None = None) -> str:
    """The line that posts an action, with its newline."""
    takes_work = ACTIONS.get(action)
    if takes_work is None:
        raise ValueError(f"unknown action {action!r}")
    job = check_id(job_id)
    if not takes_work:
        if work_id is not None:
            raise ValueError(f"{action} takes no work id")
        return f"{action} {job}\n"
    if work_id is None:
        raise ValueError(f"{action} needs a work id")
    return f"{action} {job} {check_id(work_id, 'work id')}\n"


def parse_action(line: str) -> Action:
    """An action line (without its newline) as (action, job id, work id); ValueError says
    what is wrong. `error` lines are not actions: the runner looks for them first."""
    words = line.split()
    if not words:
        raise ValueError("empty line")
    action = words[0].lower()
    takes_work = ACTIONS.get(action)
    if takes_work is None:
        raise ValueError(f"unknown action {words[0]!r}")
    wanted = 3 if takes_work else 2
    if len(words) != wanted:
        shape = "<job id> <work id>" if takes_work else "<job id>"
        raise ValueError(f"{action} takes {shape}, not {' '.join(words[1:])!r}")
    job = check_id(words[1])
    work = check_id(words[2], "work id") if takes_work else None
    return action, job, work


def qcb_words(text: str) -> tuple[list[str], list[str]]:
    """The action words of a .qcb file (blank-separated, `#` to the end of a line is a
    comment, any case) and what is wrong with them."""
    words: list[str] = []
    problems: list[str] = []
    for line in text.splitlines():
        for raw in line.split("#", 1)[0].split():
            word = raw.lower()
            if word in QCB_WORDS or word == QCB_MAIL:
                words.append(word)
            elif word in QCB_UNSUPPORTED:
                problems.append(f"{raw!r} is a Qube action word that Tock does not support")
            else:
                problems.append(f"unknown action word {raw!r}")
    return words, problems


def qcb_plan(text: str, job_id: int, work_id: int | None) -> tuple[list[Action], bool, list[str]]:
    """What a .qcb file asks for on the job (and work item) that fired: its actions in
    order, whether to mail the status, and the problems. All or nothing: with any problem,
    the caller must do none of it."""
    words, problems = qcb_words(text)
    actions: list[Action] = []
    mail = False
    for word in words:
        if word == QCB_MAIL:
            mail = True
            continue
        action = QCB_WORDS[word]
        if ACTIONS[action]:
            if work_id is None:
                problems.append(f"{word}: the trigger that fired names no work item")
                continue
            actions.append((action, job_id, work_id))
        else:
            actions.append((action, job_id, None))
    return actions, mail, problems


# -- the callback's view --------------------------------------------------------------------

_context: dict[str, Any] | None = None
_actions_fd: int | None = None


def _ctx() -> dict[str, Any]:
    if _context is None:
        raise RuntimeError("qb: not inside a Tock callback")
    return _context


def jobid() -> int:
    """The id of the job whose callback this is."""
    return int(_ctx()["job_id"])


def workid() -> int | None:
    """The work item that fired the trigger, or None."""
    work = _ctx().get("work_id")
    return None if work is None else int(work)


def trigger() -> str:
    """The trigger text that fired, e.g. 'failed-job-self'."""
    return str(_ctx()["trigger"])


def transition() -> str:
    """The transition that completed the trigger."""
    return str(_ctx()["transition"])


def user() -> str:
    """Whose job this is."""
    return str(_ctx().get("user", ""))


def key() -> str:
    """This run's idempotency key (a re-run of the same firing has the same key)."""
    return str(_ctx()["key"])


def _matches(found: object, wanted: object) -> bool:
    if isinstance(wanted, list | tuple | set | frozenset):
        return any(_matches(found, item) for item in wanted)
    if found == wanted:
        return True
    return found is not None and wanted is not None and str(found) == str(wanted)


def jobinfo(*args: Any, **filters: Any) -> list[dict[str, Any]]:
    """Snapshot rows: `jobinfo('-id', N)`, `jobinfo(id=N)`, several filters, or all rows."""
    if len(args) % 2:
        raise TypeError("qb.jobinfo takes flag/value pairs, such as jobinfo('-id', 12)")
    wanted: list[tuple[str, object]] = []
    for index in range(0, len(args), 2):
        flag = args[index]
        if not isinstance(flag, str) or not flag.startswith("-") or len(flag) < 2:
            raise TypeError(f"qb.jobinfo: {flag!r} is not a flag such as '-id'")
        wanted.append((flag[1:], args[index + 1]))
    wanted.extend(filters.items())
    rows = _ctx().get("jobinfo") or []
    found = [
        row
        for row in rows
        if isinstance(row, dict) and all(_matches(row.get(name), value) for name, value in wanted)
    ]
    return copy.deepcopy(found)


def _post(action: str, job_id: object, work_id: object = None) -> None:
    work = None if work_id is None else check_id(work_id, "work id")
    line = format_action(action, check_id(job_id), work).encode()
    _write(line)


def _write(data: bytes) -> None:
    if _actions_fd is None:
        raise RuntimeError("qb: not inside a Tock callback")
    while data:
        try:
            written = os.write(_actions_fd, data)
        except OSError as exc:
            raise RuntimeError(f"qb: cannot post to the scheduler: {exc.strerror}") from None
        data = data[written:]


def _flatten(ids: Iterable[object]) -> list[object]:
    flat: list[object] = []
    for item in ids:
        if isinstance(item, list | tuple | set | frozenset):
            flat.extend(_flatten(item))
        else:
            flat.append(item)
    return flat


def _job_action(action: str, ids: tuple[object, ...]) -> None:
    flat = _flatten(ids)
    if not flat:
        raise TypeError(f"qb: {action} needs at least one job id")
    checked = [check_id(item) for item in flat]  # every id valid before any is posted
    for job in checked:
        _post(action, job)


def _work_action(action: str, job: object, work: object) -> None:
    if work is None:
        if not isinstance(job, str) or job.count(":") != 1:
            raise ValueError(f"qb: {action} takes (job, work) or 'job:work', not {job!r}")
        job, work = job.split(":")
    _post(action, check_id(job), check_id(work, "work id"))


def unblock(*ids: object) -> None:
    _job_action("unblock", ids)


def block(*ids: object) -> None:
    _job_action("block", ids)


def kill(*ids: object) -> None:
    _job_action("kill", ids)


def retry(*ids: object) -> None:
    _job_action("retry", ids)


def fail(*ids: object) -> None:
    _job_action("fail", ids)


def complete(*ids: object) -> None:
    _job_action("complete", ids)


def retrywork(job: object, work: object = None) -> None:
    _work_action("retry-work", job, work)


def failwork(job: object, work: object = None) -> None:
    _work_action("fail-work", job, work)


def completework(job: object, work: object = None) -> None:
    _work_action("complete-work", job, work)


def blockwork(job: object, work: object = None) -> None:
    _work_action("block-work", job, work)


def unblockwork(job: object, work: object = None) -> None:
    _work_action("unblock-work", job, work)


workunblock = unblockwork  # Qube's older name, used in its documented callbacks


def killwork(job: object, work: object = None) -> None:
    _work_action("kill-work", job, work)


# -- inside the child: what the runner starts -----------------------------------------------


def _load() -> None:
    """The context (a JSON file, usually /dev/fd/N) and the actions channel (an fd), both
    named in the environment by the runner."""
    global _context, _actions_fd
    with open(os.environ["TOCK_CALLBACK_CONTEXT"], encoding="utf-8") as stream:
        _context = json.load(stream)
    _actions_fd = int(os.environ["TOCK_CALLBACK_ACTIONS_FD"])


def _post_error(text: str) -> None:
    print(f"tock callback: {text}", file=sys.stderr, flush=True)
    _write(f"{ERROR} {' '.join(text.split())[:900]}\n".encode())


def _run_python(path: str) -> None:
    import runpy

    sys.argv = [path]
    sys.path.insert(1, os.path.dirname(path))  # after this directory: `import qb` is us
    try:
        runpy.run_path(path, init_globals={"qb": sys.modules[__name__]}, run_name="__main__")
    except SystemExit:
        raise
    except BaseException as exc:
        import traceback

        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != path:
            tb = tb.tb_next  # the runner's frames are noise; with none of the callback's
        traceback.print_exception(type(exc), exc, tb)  # (a SyntaxError), just the error
        sys.stderr.flush()
        sys.exit(1)


def _header(value: object) -> str:
    return " ".join(str(value).split())


def _mail_message(ctx: dict[str, Any]) -> tuple[EmailMessage, str]:
    from email.message import EmailMessage
    from email.utils import formatdate

    job = int(ctx["job_id"])
    rows = [row for row in ctx.get("jobinfo") or [] if isinstance(row, dict)]
    row = next((r for r in rows if _matches(r.get("id"), job)), {})
    status = row.get("status") or ctx.get("transition", "")
    name = row.get("name") or ""
    recipient = _header(row.get("mailaddress") or ctx.get("user") or "")
    message = EmailMessage()
    if recipient:
        message["To"] = recipient
    title = f"Tock job {job}" + (f" ({_header(name)})" if name else "") + f": {_header(status)}"
    message["Subject"] = title
    message["Date"] = formatdate(localtime=True)
    message["X-Tock-Callback-Key"] = _header(ctx.get("key", ""))
    lines = [
        f"Job:        {job}",
        f"Name:       {name}",
        f"Status:     {status}",
        f"Trigger:    {ctx.get('trigger', '')}",
        f"Transition: {ctx.get('transition', '')}",
    ]
    if ctx.get("work_id") is not None:
        lines.append(f"Work:       {ctx['work_id']}")
    if row.get("exit_code") is not None:
        lines.append(f"Exit code:  {row['exit_code']}")
    if ctx.get("user"):
        lines.append(f"User:       {ctx['user']}")
    message.set_content("\n".join(lines) + "\n")
    return message, recipient


def _spool_name(run_key: str) -> str:
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_" for ch in run_key)
    return (safe.lstrip(".") or "callback")[:200] + ".mail"


def _mail_status(ctx: dict[str, Any]) -> str | None:
    """Mail the job's status: through `sendmail -t` when it is there, else into the spool
    directory as <key>.mail (a re-run of the same firing replaces its file). The problem,
    or None."""
    message, recipient = _mail_message(ctx)
    sendmail = str(ctx.get("sendmail") or "")
    if sendmail and os.path.isfile(sendmail) and os.access(sendmail, os.X_OK):
        if not recipient:
            return "mail-status: no recipient (the job has no user or mail address)"
        import subprocess

        done = subprocess.run([sendmail, "-t", "-oi"], input=message.as_bytes(), check=False)
        if done.returncode != 0:
            return f"mail-status: {sendmail} exited with {done.returncode}"
        return None
    spool = str(ctx.get("spool_dir") or "")
    if not spool:
        return f"mail-status: no MTA ({sendmail or 'none configured'}) and no spool directory"
    name = _spool_name(str(ctx.get("key", "")))
    temporary = os.path.join(spool, f".{name}.{os.getpid()}.tmp")
    try:
        os.makedirs(spool, exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as stream:
            stream.write(message.as_bytes())
        os.replace(temporary, os.path.join(spool, name))
    except OSError as exc:
        return f"mail-status: cannot write to {spool}: {exc.strerror or exc}"
    return None


def _run_qcb(path: str) -> int:
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except (OSError, UnicodeDecodeError) as exc:
        _post_error(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}")
        return 2
    ctx = _ctx()
    actions, mail, problems = qcb_plan(text, jobid(), workid())
    if problems:
        _post_error(f"{path}: {'; '.join(problems)} (nothing done)")
        return 2
    for action, job, work in actions:
        _post(action, job, work)
    if mail:
        problem = _mail_status(ctx)
        if problem is not None:
            _post_error(problem)
            return 1
    return 0


def _main(argv: list[str]) -> None:
    """`python -I -u -c <bootstrap> <this directory> python|qcb <path>`."""
    mode, path = argv
    _load()
    if mode == "qcb":
        sys.exit(_run_qcb(path))
    _run_python(path)
