"""Parsing `-w` conditions with textX into engine.conditions trees.

One metamodel per process, built on first use (about 6 ms). A parse costs about 0.6 ms,
which is why conditions are parsed at submit and modify time and never in the tick.
Errors come back as values: a ParseResult carries its diagnostics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from engine.conditions import (
    EXTERNAL_KINDS,
    And,
    CountPred,
    External,
    JobPred,
    JobRef,
    Node,
    Not,
    Or,
    calendar_target,
)
from engine.errors import Diagnostic

MAX_COUNT = 2**31 - 1  # LSF's counts are C ints
_COUNT_AT_END = re.compile(r"(\d+)\s*\)\Z")

_TOKEN = re.compile(r"[A-Za-z0-9_.:%@/\-\[\]]+\*?|&&|\|\||[<>=!]=|.")

_RULE_WORDS = {
    "JobId": "a job id",
    "STRING": "a quoted job name",
    "JobName": "a job name",
    "ExitCode": "an exit code",
    "Count": "a count",
    "Balanced": "an expression",
}


@dataclass(frozen=True, slots=True)
class ParseResult:
    tree: Node | None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.tree is not None and not self.diagnostics


@cache
def _metamodel() -> Any:
    from textx import metamodel_from_file

    from engine.resources import grammar_file

    return metamodel_from_file(str(grammar_file("condition.tx")), autokwd=True)


def _describe_expected(rules: list[Any]) -> str:
    words: list[str] = []
    for rule in rules:
        name = getattr(rule, "rule_name", "")
        word = _RULE_WORDS.get(name) or (name if name else f"'{rule.to_match}'")
        if word not in words:
            words.append(word)
    if len(words) <= 1:
        return words[0] if words else "something else"
    return ", ".join(words[:-1]) + " or " + words[-1]


def _found_at(text: str, line: int, col: int) -> str:
    lines = text.splitlines() or [""]
    rest = lines[line - 1][col - 1 :] if line - 1 < len(lines) else ""
    rest = rest.strip()
    if not rest:
        return "the end of the condition"
    match = _TOKEN.match(rest)
    token = match.group(0) if match else rest[0]
    return f"'{token[:20]}'"


class _Builder:
    """Turns textX objects into condition trees, collecting semantic diagnostics."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.text = text
        self.diagnostics: list[Diagnostic] = []

    def error(self, obj: Any, message: str) -> None:
        from textx import get_location

        where = get_location(obj)
        self.diagnostics.append(Diagnostic(self.source, where["line"], where["col"], message))

    def build(self, obj: Any) -> Node:
        kind = type(obj).__name__
        if kind in ("Or", "And"):
            operands: list[Node] = []
            for op in obj.ops:
                child = self.build(op)
                # Flatten a && (b && c): the four-valued AND and OR are associative.
                if type(child).__name__ == kind:
                    operands.extend(child.operands)  # type: ignore[union-attr]
                else:
                    operands.append(child)
            if len(operands) == 1:
                return operands[0]
            return Or(tuple(operands)) if kind == "Or" else And(tuple(operands))
        if kind == "Not":
            return Not(self.build(obj.operand))
        if kind == "Group":
            return self.build(obj.expr)
        if kind == "BareRef":
            return JobPred("done", self.ref(obj.ref))
        if kind == "JobPred":
            return self.job_pred(obj)
        if kind == "CountPred":
            return self.count_pred(obj)
        if kind == "External" and not (obj.body or "").strip():
            self.error(obj, f"{obj.kind}() is empty")
            return External(obj.kind, "")
        if kind == "External":
            assert obj.kind in EXTERNAL_KINDS
            if obj.kind == "calendar":
                self.calendar(obj)
            elif obj.kind == "event" and len(obj.body.split()) > 1:
                # Names travel in SUB/START lines, one word each.
                self.error(obj, f"event name '{obj.body.strip()}' cannot hold white space")
            return External(obj.kind, obj.body)
        raise AssertionError(f"unexpected grammar object {kind}")

    def calendar(self, obj: Any) -> None:
        """An inline time expression is checked here, with columns in the condition's text."""
        target = calendar_target(obj.body)
        if target.expression is None:
            return
        from engine.timeexpr import parse_time_exprs

        offset = self.text.index("(", obj._tx_position) + 1
        while self.text[offset].isspace():
            offset += 1
        line = self.text.count("\n", 0, offset) + 1
        col = offset - (self.text.rfind("\n", 0, offset) + 1)
        result = parse_time_exprs(target.expression, self.source, line=line, col_offset=col)
        self.diagnostics.extend(result.diagnostics)

    def ref(self, obj: Any) -> JobRef:
        if obj.id:
            return JobRef(id=int(obj.id))
        if obj.quoted is not None and obj.quoted != "":
            return JobRef(name=obj.quoted)
        if obj.name:
            name: str = obj.name
            if name.endswith("*"):
                return JobRef(name=name[:-1], wildcard=True)
            return JobRef(name=name)
        self.error(obj, "an empty job name")
        return JobRef(name="")

    def job_pred(self, obj: Any) -> JobPred:
        ref = self.ref(obj.ref)
        if obj.code is None or obj.code == "":
            return JobPred(obj.func, ref)
        if obj.func != "exit":
            self.error(obj, f"{obj.func}() takes only a job; an exit code goes with exit()")
            return JobPred(obj.func, ref)
        code = int(obj.code)
        if not 0 <= code <= 255:
            self.error(obj, f"exit code {code} is out of range (0 to 255)")
        return JobPred("exit", ref, obj.op or "==", code)

    def count_pred(self, obj: Any) -> CountPred:
        ref = self.ref(obj.ref)
        if obj.all:
            return CountPred(obj.func, ref)
        if not obj.count:
            func = obj.func
            self.error(obj, f"{func}() needs a count: {func}(job, op N) or {func}(job, *)")
            return CountPred(obj.func, ref)
        count = int(obj.count)
        if count > MAX_COUNT:
            self.error_at_count(obj, f"count {obj.count} is out of range (0 to {MAX_COUNT})")
        return CountPred(obj.func, ref, obj.op, count)

    def error_at_count(self, obj: Any, message: str) -> None:
        """Point at the number itself: in `numdone("a 1", > 99999999999)` the reader looks
        for the count, not for the predicate that holds it."""
        start, end = obj._tx_position, obj._tx_position_end
        match = _COUNT_AT_END.search(self.text, start, end)
        if match is None:
            self.error(obj, message)
            return
        offset = match.start(1)
        line = self.text.count("\n", 0, offset) + 1
        col = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        self.diagnostics.append(Diagnostic(self.source, line, col, message))


def parse_condition(text: str, source: str = "-w") -> ParseResult:
    """Parse a `-w` condition; diagnostics name `source:line:col`."""
    from textx import TextXSyntaxError

    if not text.strip():
        return ParseResult(None, [Diagnostic(source, 1, 1, "the condition is empty")])
    try:
        model = _metamodel().model_from_str(text)
    except RecursionError:
        return ParseResult(None, [Diagnostic(source, 1, 1, "the condition is nested too deeply")])
    except TextXSyntaxError as exc:
        line, col = exc.line or 1, exc.col or 1
        expected = _describe_expected(list(exc.expected_rules or []))
        found = _found_at(text, line, col)
        message = f"syntax error: expected {expected}, found {found}"
        return ParseResult(None, [Diagnostic(source, line, col, message)])
    builder = _Builder(source, text)
    try:
        tree = builder.build(model.expr)
    except RecursionError:
        return ParseResult(None, [Diagnostic(source, 1, 1, "the condition is nested too deeply")])
    return ParseResult(tree, builder.diagnostics)
