"""Dependency conditions as values: the tree a `-w` string parses into, and its canonical text.

Pure data with no parser attached (that is engine/condparse.py, which needs textX), so the
tick, `tock why` and the tests can use the tree without paying for the grammar.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

JOB_FUNCS = ("started", "done", "exit", "ended")
COUNT_FUNCS = ("numdone", "numexit", "numended", "numrun", "numpend", "numstart")
REL_OPS = (">", ">=", "<", "<=", "==", "!=")
EXTERNAL_KINDS = ("calendar", "file", "event")

_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.:%@/\-\[\]]+")
_DIGITS = re.compile(r"\d+")
_KEYWORDS = frozenset(JOB_FUNCS + COUNT_FUNCS + EXTERNAL_KINDS)


@dataclass(frozen=True, slots=True)
class JobRef:
    """How the user named a job: by id, by (quoted) name, or by a name prefix with '*'."""

    id: int | None = None
    name: str | None = None
    wildcard: bool = False

    def text(self) -> str:
        if self.id is not None:
            return str(self.id)
        assert self.name is not None
        if self.wildcard:
            return self.name + "*"
        return quote_name(self.name)


def quote_name(name: str) -> str:
    """A name as it must be written in a condition to be read back as the same name."""
    if _PLAIN_NAME.fullmatch(name) and not _DIGITS.fullmatch(name) and name not in _KEYWORDS:
        return name
    if "'" not in name:
        return f"'{name}'"
    if '"' not in name:
        return f'"{name}"'
    return "'" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True, slots=True)
class JobPred:
    func: str  # one of JOB_FUNCS
    ref: JobRef
    op: str | None = None  # exit() only; None means "any non-zero exit"
    code: int | None = None


@dataclass(frozen=True, slots=True)
class CountPred:
    """`numdone(j, >= 50)`; `count` None is `numdone(j, *)`, which compares with the job's
    total and so cannot be a fixed number at parse time."""

    func: str  # one of COUNT_FUNCS
    ref: JobRef
    op: str = "=="  # one of REL_OPS; always "==" for `*`
    count: int | None = None


@dataclass(frozen=True, slots=True)
class External:
    kind: str  # one of EXTERNAL_KINDS
    body: str


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Node, ...]


Node = JobPred | CountPred | External | Not | And | Or

_PRECEDENCE = {Or: 1, And: 2, Not: 3}


def _precedence(node: Node) -> int:
    return _PRECEDENCE.get(type(node), 4)


def format_node(node: Node) -> str:
    """Canonical text: one space around binary operators, parentheses only where needed."""
    if isinstance(node, JobPred):
        if node.code is None:
            return f"{node.func}({node.ref.text()})"
        return f"{node.func}({node.ref.text()}, {node.op or '=='} {node.code})"
    if isinstance(node, CountPred):
        if node.count is None:
            return f"{node.func}({node.ref.text()}, *)"
        return f"{node.func}({node.ref.text()}, {node.op} {node.count})"
    if isinstance(node, External):
        return f"{node.kind}({node.body.strip()})"
    if isinstance(node, Not):
        inner = format_node(node.operand)
        return f"!({inner})" if _precedence(node.operand) < 3 else f"!{inner}"
    glue = " && " if isinstance(node, And) else " || "
    mine = _precedence(node)
    parts = []
    for operand in node.operands:
        text = format_node(operand)
        parts.append(f"({text})" if _precedence(operand) < mine else text)
    return glue.join(parts)


def job_refs(node: Node) -> list[JobRef]:
    """Every job reference, left to right."""
    if isinstance(node, JobPred | CountPred):
        return [node.ref]
    if isinstance(node, External):
        return []
    if isinstance(node, Not):
        return job_refs(node.operand)
    return [ref for operand in node.operands for ref in job_refs(operand)]


CALENDAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_CALENDAR_REF = re.compile(rf"({CALENDAR_NAME.pattern})(?:@([A-Za-z0-9_.\-]+))?")


@dataclass(frozen=True, slots=True)
class CalendarTarget:
    """What `calendar(body)` names: a calendar by name (optionally `name@user`) or, when
    the body is a time expression, an anonymous calendar of its own."""

    name: str | None = None
    user: str | None = None
    expression: str | None = None


def calendar_target(body: str) -> CalendarTarget:
    """Names never hold ':' and expressions always do (or start with `cron(`)."""
    text = body.strip()
    match = _CALENDAR_REF.fullmatch(text)
    if match is not None:
        return CalendarTarget(name=match.group(1), user=match.group(2))
    return CalendarTarget(expression=text)


def externals(node: Node) -> list[External]:
    if isinstance(node, External):
        return [node]
    if isinstance(node, JobPred | CountPred):
        return []
    if isinstance(node, Not):
        return externals(node.operand)
    return [ext for operand in node.operands for ext in externals(operand)]
