"""Conditions compiled into rule rows, and rules evaluated from those rows.

Compilation happens at submit and modify time: references are resolved against the
database (engine/resolver.py) and the tree is flattened into rows. The compiled form is
plain JSON, so it travels in the journal and a replay never parses a condition again.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.conditions import (
    And,
    CountPred,
    External,
    JobPred,
    JobRef,
    Node,
    Not,
    Or,
    format_node,
)
from engine.logic import (
    INVALID,
    CalendarFacts,
    EventFacts,
    JobFacts,
    Value,
    and2,
    calendar_predicate,
    count_predicate,
    event_predicate,
    fold,
    job_predicate,
    not1,
    or2,
)
from engine.resolver import ResolvedJob, Resolver

CompiledNode = dict[str, Any]


def _leaf(pred: JobPred | CountPred, job: ResolvedJob, by_id: bool) -> CompiledNode:
    ref = JobRef(id=job.id) if by_id else JobRef(name=job.name)
    if isinstance(pred, CountPred):
        # `*` is '==' with no number: the job's total is only known when evaluating.
        return {
            "op": "LEAF",
            "text": format_node(CountPred(pred.func, ref, pred.op, pred.count)),
            "count": pred.func,
            "job": job.id,
            "exit_op": pred.op,
            "exit_code": pred.count,
        }
    text = format_node(JobPred(pred.func, ref, pred.op, pred.code))
    return {
        "op": "LEAF",
        "text": text,
        "pred": pred.func,
        "job": job.id,
        "exit_op": pred.op,
        "exit_code": pred.code,
    }


def compile_condition(tree: Node, resolver: Resolver) -> list[CompiledNode]:
    """Pre-order node list; each node names its parent by index. Raises TockError."""
    nodes: list[CompiledNode] = []

    def emit(node: CompiledNode, parent: int | None) -> int:
        node["parent"] = parent
        nodes.append(node)
        return len(nodes) - 1

    def walk(node: Node, parent: int | None) -> None:
        if isinstance(node, JobPred | CountPred):
            ref = node.ref
            if ref.id is not None:
                emit(_leaf(node, resolver.by_id(ref.id), True), parent)
            elif ref.wildcard:
                assert ref.name is not None
                group = emit({"op": "AND", "text": format_node(node)}, parent)
                for job in resolver.by_prefix(ref.name):
                    emit(_leaf(node, job, False), group)
            else:
                assert ref.name is not None
                emit(_leaf(node, resolver.by_name(ref.name), False), parent)
        elif isinstance(node, External):
            if node.kind == "calendar":
                leaf = {"op": "LEAF", "text": format_node(node), "event": resolver.calendar(node)}
                emit(leaf | {"calendar": True}, parent)
            elif node.kind == "file":
                leaf = {"op": "LEAF", "text": format_node(node), "event": resolver.file_event(node)}
                emit(leaf | {"file": True}, parent)
            else:
                leaf = {"op": "LEAF", "text": format_node(node), "event": resolver.user_event(node)}
                emit(leaf | {"user": True}, parent)
        elif isinstance(node, Not):
            here = emit({"op": "NOT", "text": format_node(node)}, parent)
            walk(node.operand, here)
        else:
            op = "AND" if isinstance(node, And) else "OR"
            assert isinstance(node, And | Or)
            here = emit({"op": op, "text": format_node(node)}, parent)
            for operand in node.operands:
                walk(operand, here)

    walk(tree, None)
    return nodes


def positive_leaves(nodes: list[CompiledNode]) -> list[CompiledNode]:
    """Leaves under an even number of NOTs: those whose becoming true can start the job."""
    found = []
    for node in nodes:
        if node["op"] != "LEAF":
            continue
        negations, parent = 0, node.get("parent")
        while parent is not None:
            negations += nodes[parent]["op"] == "NOT"
            parent = nodes[parent].get("parent")
        if negations % 2 == 0:
            found.append(node)
    return found


def is_repetitive(conn: sqlite3.Connection, nodes: list[CompiledNode]) -> bool:
    """LSF: a job waiting on a calendar repeats, and so does one waiting on a repetitive
    job. Only a leaf that can trigger the job counts: `!calendar(Holiday)` alone does not,
    and neither does a num*() leaf: a count is a level with no notion of "a new run since
    this job's last", so it could never start the job again (see evaluate)."""
    leaves = positive_leaves(nodes)
    if any(leaf.get("calendar") for leaf in leaves):
        return True
    parents = [
        int(leaf["job"]) for leaf in leaves if leaf.get("job") is not None and not leaf.get("count")
    ]
    return any(facts.repetitive for facts in job_facts(conn, parents).values())


def calendar_events(nodes: Iterable[CompiledNode]) -> set[int]:
    return {int(node["event"]) for node in nodes if node.get("calendar")}


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


def referenced_jobs(nodes: Iterable[CompiledNode]) -> set[int]:
    return {int(node["job"]) for node in nodes if node.get("job") is not None}


def pending_modifications(conn: sqlite3.Connection) -> dict[int, set[int]]:
    """Jobs whose condition a not-yet-applied `modify` row changes, with its references."""
    rows = conn.execute(
        "SELECT job_id, payload FROM journal WHERE kind = 'modify' "
        "AND id > (SELECT journal_cursor FROM tick_state) ORDER BY id"
    )
    return {job: referenced_jobs(json.loads(payload)["nodes"]) for job, payload in rows}


def find_cycle(
    conn: sqlite3.Connection,
    job_id: int,
    refs: Iterable[int],
    pending: Mapping[int, set[int]] | None = None,
) -> list[int] | None:
    """A path job_id <- ... <- ref if giving job_id these references would close a loop.

    `pending` replaces the stored references of jobs whose modification is accepted but
    not yet applied.
    """
    pending = pending or {}
    parent_of: dict[int, int | None] = dict.fromkeys(refs)
    frontier = list(parent_of)
    while frontier:
        current = frontier.pop()
        if current == job_id:
            path = [current]
            step = parent_of[current]
            while step is not None:
                path.append(step)
                step = parent_of[step]
            return path
        if current in pending:
            next_refs: Iterable[int] = pending[current]
        else:
            rows = conn.execute(
                "SELECT DISTINCT n.ref_job_id FROM rules AS r JOIN rule_nodes AS n "
                "ON n.rule_id = r.id WHERE r.job_id = ? AND n.ref_job_id IS NOT NULL",
                (current,),
            )
            next_refs = [row[0] for row in rows]
        for ref in next_refs:
            if ref not in parent_of:
                parent_of[ref] = current
                frontier.append(ref)
    return None


# --- storing and loading ---------------------------------------------------------------


def store_rule(
    conn: sqlite3.Connection, job_id: int, source: str, nodes: list[CompiledNode], time: float
) -> int:
    """Replace the job's rule with these compiled nodes.

    Each calendar the rule names gets a job_calendars row, kept across modifications (a
    time event already used stays used); time events that ended before `time` are not
    this job's.
    """
    conn.execute("DELETE FROM rules WHERE job_id = ?", (job_id,))
    events = calendar_events(nodes)
    linked = {
        row[0]
        for row in conn.execute("SELECT event_id FROM job_calendars WHERE job_id = ?", (job_id,))
    }
    for event_id in linked - events:
        conn.execute(
            "DELETE FROM job_calendars WHERE job_id = ? AND event_id = ?", (job_id, event_id)
        )
    for event_id in sorted(events - linked):
        conn.execute(
            "INSERT INTO job_calendars (job_id, event_id, since) VALUES (?, ?, ?)",
            (job_id, event_id, time),
        )
    rule_id = conn.execute(
        "INSERT INTO rules (job_id, source, source_hash) VALUES (?, ?, ?)",
        (job_id, source, source_hash(source)),
    ).lastrowid
    ids: list[int] = []
    for position, node in enumerate(nodes):
        parent = node.get("parent")
        cursor = conn.execute(
            "INSERT INTO rule_nodes (rule_id, parent_id, position, op, text, pred, ref_job_id, "
            "exit_op, exit_code, event_id, count_func) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rule_id,
                None if parent is None else ids[parent],
                position,
                node["op"],
                node["text"],
                node.get("pred"),
                node.get("job"),
                node.get("exit_op"),
                node.get("exit_code"),
                node.get("event"),
                node.get("count"),
            ),
        )
        ids.append(int(cursor.lastrowid or 0))
    return int(rule_id or 0)


@dataclass(slots=True)
class RuleNode:
    id: int
    op: str
    text: str
    pred: str | None = None
    job: int | None = None
    exit_op: str | None = None
    exit_code: int | None = None
    event: int | None = None
    count_func: str | None = None  # a num*() leaf; exit_op/exit_code hold its comparison
    children: list[RuleNode] = field(default_factory=list)


def load_rule(conn: sqlite3.Connection, job_id: int) -> RuleNode | None:
    rows = conn.execute(
        "SELECT n.id, n.parent_id, n.op, n.text, n.pred, n.ref_job_id, n.exit_op, n.exit_code, "
        "n.event_id, n.count_func FROM rules AS r JOIN rule_nodes AS n ON n.rule_id = r.id "
        "WHERE r.job_id = ? ORDER BY n.position",
        (job_id,),
    ).fetchall()
    if not rows:
        return None
    by_id: dict[int, RuleNode] = {}
    root: RuleNode | None = None
    for row in rows:
        node = RuleNode(
            row["id"],
            row["op"],
            row["text"],
            row["pred"],
            row["ref_job_id"],
            row["exit_op"],
            row["exit_code"],
            row["event_id"],
            row["count_func"],
        )
        by_id[node.id] = node
        if row["parent_id"] is None:
            root = node
        else:
            by_id[row["parent_id"]].children.append(node)
    return root


def _leaves(root: RuleNode) -> Iterator[RuleNode]:
    stack = [root]
    while stack:
        node = stack.pop()
        if node.op == "LEAF":
            yield node
        stack.extend(node.children)


def leaf_jobs(root: RuleNode) -> set[int]:
    return {node.job for node in _leaves(root) if node.job is not None}


def leaf_events(root: RuleNode) -> set[int]:
    return {node.event for node in _leaves(root) if node.event is not None}


FACTS_CHUNK = 500  # far below SQLite's limit on bound variables


def job_facts(conn: sqlite3.Connection, job_ids: Iterable[int]) -> dict[int, JobFacts]:
    """What the predicates need of each job; `name*` may name thousands of jobs.

    The work counters are read as they are; only the items dispatched but not yet started
    have no counter, and are counted among the job's running items (work_items_state),
    which are never more than the slots.
    """
    ids = list(job_ids)
    facts: dict[int, JobFacts] = {}
    for start in range(0, len(ids), FACTS_CHUNK):
        chunk = ids[start : start + FACTS_CHUNK]
        rows = conn.execute(
            "SELECT id, state, exit_code, start_time IS NOT NULL, repetitive, last_ok, "
            "last_start, last_end, work_total, work_pend, work_run, work_done, work_exit, "
            "work_started, CASE WHEN work_run > 0 THEN (SELECT count(*) FROM work_items AS w "
            "WHERE w.job_id = jobs.id AND w.state = 'RUN' AND w.started = 0) ELSE 0 END "
            f"FROM jobs WHERE id IN ({','.join('?' * len(chunk))})",
            chunk,
        )
        facts.update(
            (
                row[0],
                JobFacts(
                    row[1],
                    row[2],
                    bool(row[3]),
                    bool(row[4]),
                    None if row[5] is None else bool(row[5]),
                    row[6],
                    row[7],
                    work_total=row[8],
                    work_pend=row[9],
                    work_run=row[10],
                    work_done=row[11],
                    work_exit=row[12],
                    work_started=row[13],
                    work_dispatched=row[14],
                ),
            )
            for row in rows
        )
    return facts


@dataclass(slots=True)
class Evaluation:
    """What one evaluation needs beyond the rule, and what it found out on the way.

    `since`: the waiting job's own last run end (the repetitive rule); `triggers`: the
    leaves that are true and could have started the job (not under a NOT) and are about
    something new (a time event, a repetitive parent's run), so a repetitive job that has
    run once runs again only for one of those.
    """

    jobs: Mapping[int, JobFacts]
    calendars: Mapping[int, CalendarFacts] = field(default_factory=dict)
    events: Mapping[int, EventFacts] = field(default_factory=dict)
    since: float | None = None
    trace: dict[int, Value] | None = None
    triggers: list[RuleNode] = field(default_factory=list)


def evaluate(node: RuleNode, facts: Evaluation, negated: bool = False) -> Value:
    """The node's value; with `facts.trace`, every node's value is recorded by node id."""
    if node.op == "LEAF":
        if node.count_func is not None and node.job is not None:
            # A count is a level, never news: it does not start a repetitive job again.
            parent = facts.jobs.get(node.job)
            value = count_predicate(node.count_func, parent, node.exit_op or "==", node.exit_code)
            fresh = False
        elif node.job is not None:
            parent = facts.jobs.get(node.job)
            value = job_predicate(
                node.pred or "done", parent, node.exit_op, node.exit_code, facts.since
            )
            fresh = parent is not None and parent.repetitive
        elif node.event is not None and node.event in facts.calendars:
            value = calendar_predicate(facts.calendars[node.event], negated)
            fresh = True
        elif node.event is not None and node.event in facts.events:
            event = facts.events[node.event]
            value, fresh = event_predicate(event), event.fresh
        else:
            value, fresh = INVALID, False  # user events arrive with their issue
        if value is Value.TRUE and fresh and not negated:
            facts.triggers.append(node)
    elif node.op == "NOT":
        value = not1(evaluate(node.children[0], facts, not negated))
    else:
        combine = and2 if node.op == "AND" else or2
        value = fold(combine, (evaluate(child, facts, negated) for child in node.children))
    if facts.trace is not None:
        facts.trace[node.id] = value
    return value
