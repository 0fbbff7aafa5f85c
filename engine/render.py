"""Text output in LSF's habits: fixed-width tables, `Job <12>` phrasing, bhist-style lines.

Plain string formatting, no table library: `tock jobs` is typed often and must start fast.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.queries import EventInfo, HistoryEntry, JobInfo, WhyNode
from engine.timefmt import short


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    lines = []
    for row in [headers, *rows]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def jobs_table(jobs: Sequence[JobInfo]) -> str:
    rows = [
        [
            str(job.id),
            job.user,
            job.state,
            "-" if job.exit_code is None else str(job.exit_code),
            job.full_name,
            short(job.submit_time),
        ]
        for job in jobs
    ]
    return table(["JOBID", "USER", "STAT", "EXIT", "JOB_NAME", "SUBMIT_TIME"], rows)


def _ending(job: JobInfo) -> str:
    if job.state == "DONE":
        return "Done successfully"
    reason = job.exit_reason or "exited"
    if job.exit_code is not None and "exit code" not in reason:
        return f"Exited with exit code {job.exit_code} ({reason})"
    return f"Exited: {reason}"


def job_long(job: JobInfo) -> str:
    lines = [
        f"Job <{job.id}>, Job Name <{job.full_name}>, User <{job.user}>, Status <{job.state}>, "
        f"Command <{job.command}>"
    ]
    lines.append(
        f"{short(job.submit_time)}: Submitted, CWD <{job.cwd}>, Output File <{job.stdout}>, "
        f"Error File <{job.stderr}>;"
    )
    if job.condition is not None:
        flag = ", terminate if orphaned (-ti)" if job.terminate_orphan else ""
        lines.append(f" Dependency Condition <{job.condition}>{flag};")
    if job.work:
        work = job.work
        limit = "" if work["limit"] is None else f", at most {work['limit']} at once"
        lines.append(
            f" Work items <{work['spec']}>: {work['total']} in all, {work['pend']} pending, "
            f"{work['run']} running, {work['done']} done, {work['exit']} exited{limit};"
        )
    if job.repetitive:
        left = "" if job.runs_left is None else f", deleted after {job.runs_left} more run(s)"
        lines.append(f" Repetitive job: back to PEND after each run, catch-up {job.catchup}{left};")
    if job.pending_reason:
        lines.append(" PENDING REASONS:")
        lines.extend(f" {reason};" for reason in job.pending_reason.split("; "))
    if job.start_time is not None:
        lines.append(f"{short(job.start_time)}: Started (run {job.run_count});")
    if job.state in ("DONE", "EXIT") and job.end_time is not None:
        lines.append(f"{short(job.end_time)}: {_ending(job)}.")
    return "\n".join(lines)


_VERDICT = {
    "true": "the dependency condition is satisfied",
    "false": "the dependency condition is not satisfied",
    "invalid": "the dependency condition is invalid or can never be satisfied",
    "reject": "the dependency condition depends on a rejected event",
}


def why_tree(job: JobInfo, root: WhyNode | None) -> str:
    if root is None:
        return f"Job <{job.id}> has no dependency condition."
    lines = [f"Job <{job.id}>: {_VERDICT[root.value]} ({root.value})."]
    rows: list[tuple[str, str, str]] = []

    def walk(node: WhyNode, prefix: str, branch: str) -> None:
        detail = ""
        if node.job is not None:
            info = node.job
            state = info["state"] or "gone"
            code = f" exit {info['exit_code']}" if info.get("exit_code") is not None else ""
            detail = f"job <{info['id']}> {info['name']} is {state}{code}"
            if info.get("work"):
                work = info["work"]
                detail += (
                    f"; items: {work['done']} done, {work['exit']} exited, {work['run']} running, "
                    f"{work['pend']} pending of {work['total']}"
                )
        elif node.calendar is not None:
            cal = node.calendar
            detail = f"calendar <{cal['calendar']}> is {cal['status']}"
            if cal["status"] == "active" and not cal["unused_event"]:
                detail += " (this event already used)"
            if cal["next_start"]:
                detail += f"; next event {cal['next_start'][:16].replace('T', ' ')}"
        elif node.event is not None:
            event = node.event
            if event["invalid"]:
                detail = event["invalid"]
            else:
                detail = f"event {event['event']} {'holds' if event['holds'] else 'does not hold'}"
        rows.append((prefix + branch + node.expr, node.value, detail))
        child_prefix = prefix + ("    " if branch == "└── " else "│   " if branch else "")
        for index, child in enumerate(node.children):
            last = index == len(node.children) - 1
            walk(child, child_prefix, "└── " if last else "├── ")

    walk(root, "", "")
    width = max(len(expr) for expr, _, _ in rows)
    for expr, value, detail in rows:
        lines.append(f"{expr.ljust(width)}  {value.ljust(7)}  {detail}".rstrip())
    return "\n".join(lines)


def events_table(found: Sequence[EventInfo]) -> str:
    rows = [
        [
            e.event,
            e.owner,
            e.status + ("(stale)" if e.detail.get("stale") else ""),
            e.source,
            e.attribute or "-",
            short(e.last_update),
        ]
        for e in found
    ]
    return table(["EVENT", "OWNER", "STATUS", "SOURCE", "ATTRIBUTE", "LAST_UPDATE"], rows)


def events_long(found: Sequence[EventInfo]) -> str:
    blocks = []
    for e in found:
        lines = [
            f"Event <{e.id}>: {e.event}",
            f"  owner {e.owner}, status {e.status}, source {e.source}, "
            f"last update {short(e.last_update)}, {e.dependent_jobs} waiting job(s)",
        ]
        if e.attribute:
            lines.append(f"  attribute: {e.attribute}")
        for key, value in e.detail.items():
            if value in (None, [], ""):
                continue
            if isinstance(value, bool):
                shown = "yes" if value else "no"
            elif isinstance(value, list):
                shown = " ".join(value)
            else:
                shown = value
            lines.append(f"  {key.replace('_', ' ')}: {shown}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


_PHRASES = {
    "submitted": "Submitted",
    "resumed": "Resumed",
    "modified": "Dependency condition changed",
    "modify_ignored": "Change of condition ignored",
    "dispatched": "Dispatched",
    "started": "Started",
    "done": "Done successfully",
    "exit": "Exited",
    "killed": "Killed",
    "kill_requested": "Kill requested",
    "deleted": "Deleted",
    "orphan": "Terminated as an orphan",
    "lost": "Lost",
    "late_start": "Started after it was ended; stopping it",
    "refused": "Request refused",
    "missed": "Time event missed",
    "kill_ignored": "Kill ignored",
    "delete_scheduled": "Deletion scheduled",
    "retried": "Retried",
    "items_retried": "Failed work items retried",
    "blocked": "Blocked",
    "timeout": "Still running at its timeout",
    "block_ignored": "Block ignored",
    "unblock_ignored": "Unblock ignored",
    "retry_ignored": "Retry ignored",
    "complete_ignored": "Complete ignored",
    "fail_ignored": "Fail ignored",
    "complete_requested": "Completion requested",
    "fail_requested": "Failure requested",
}


def _history_text(entry: HistoryEntry) -> str:
    if entry.event == "submitted":
        text = f"Submitted by user <{entry.user}>"
        return text + (", held (-H)" if entry.to_state == "PSUSP" else "")
    if entry.event == "done":
        back = "; back to PEND for its next run" if entry.to_state == "PEND" else ""
        return "Done successfully" + back
    if entry.event in ("exit", "killed", "lost", "orphan") and entry.reason:
        reason = entry.reason
        return f"Exited: {reason}" if entry.event == "exit" else reason[0].upper() + reason[1:]
    text = _PHRASES.get(entry.event, entry.event)
    if entry.run_no is not None and entry.event in ("dispatched", "started"):
        text += f" (run {entry.run_no})"
    if entry.user:
        text += f" by user <{entry.user}>"
    if entry.reason:
        text += f": {entry.reason}"
    return text


def history_lines(job: JobInfo, entries: Sequence[HistoryEntry]) -> str:
    lines = [
        f"Job <{job.id}>, Job Name <{job.full_name}>, User <{job.user}>, Command <{job.command}>"
    ]
    for entry in entries:
        item = "" if entry.work_index is None else f"Work item <{entry.work_index}>: "
        lines.append(f"{short(entry.time)}: {item}{_history_text(entry)};")
    return "\n".join(lines)
