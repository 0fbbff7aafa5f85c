"""File event expressions, the body of `file(...)`: parsed with textX into trees, printed
back canonically, stored as JSON, and evaluated against observed file states.

The grammar (grammar/fileexpr.tx) owns only the boolean structure; function names,
locations, numbers and units are checked here, so each error names its token and its
column. Errors come back as values: a FileExprResult carries its diagnostics.

Evaluation is pure: the caller observes the files and decides when an arrival arms, and
`next_change` tells it when time alone will change an age() or stable() comparison.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from engine.errors import Diagnostic

FILE_FUNCS = ("arrival", "exist", "size", "age", "stable")
TEST_FUNCS = ("arrival", "exist")
COMPARE_FUNCS = ("size", "age", "stable")
REL_OPS = (">", ">=", "<", "<=", "==", "!=")
# How far past a strict threshold (`age(f) > 1`) a wake-up lands: the first instant
# after the threshold is not a useful float to sleep until.
EPSILON = 0.001  # seconds past a strict threshold

_UNITS: dict[str, dict[str, int]] = {
    "size": {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3},  # bytes
    "age": {"": 60, "H": 3600, "D": 86400, "W": 7 * 86400},  # LSF counts age in minutes
    "stable": {"": 1},  # seconds
}
_UNIT_HINTS = {
    "size": "unit '{unit}' is not valid for size() (use K, M or G)",
    "age": "unit '{unit}' is not valid for age() (use H, D or W)",
    "stable": "stable() takes seconds, without a unit",
}
_EXAMPLES = {"size": "10M", "age": "4H", "stable": "60"}
# Beyond any file size or any span worth waiting for; keeps every value finite in JSON.
_MAX_VALUE = 2.0**63

_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_AMOUNT = re.compile(r"(.*?)([A-Za-z]*)", re.DOTALL)
_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]*")
_PLAIN = re.compile(r"[^\s()'\"]+")
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_QUOTED = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""
_TOKEN = re.compile(rf"&&|\|\||[<>=!]+|{_QUOTED}|[^\s()'\"&|!<>=]+|.", re.DOTALL)

_RULE_WORDS = {
    "FuncName": "a file function",
    "Quoted": "a path",
    "Plain": "a path",
    "AmountText": "a number",
    "UnitText": "a unit",
    "EOF": "the end",
}


@dataclass(frozen=True, slots=True)
class Loc:
    """A path and the host it was named on; whether that host is this one is the caller's."""

    path: str
    host: str | None = None

    def text(self) -> str:
        """Quoted only when the plain token would stop early, so the text reads back equal."""
        raw = self.path if self.host is None else f"{self.host}:{self.path}"
        return raw if _PLAIN.fullmatch(raw) else _quote(raw)


def _quote(raw: str) -> str:
    if "\\" not in raw:
        if "'" not in raw:
            return f"'{raw}'"
        if '"' not in raw:
            return f'"{raw}"'
    return "'" + raw.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True, slots=True)
class FileTest:
    func: str  # arrival or exist
    loc: Loc


@dataclass(frozen=True, slots=True)
class FileCompare:
    func: str  # size, age or stable
    loc: Loc
    op: str  # one of REL_OPS
    amount: str  # as written, without spaces and with the unit in capitals: "3.5M"
    value: float  # bytes for size, seconds for age and stable


@dataclass(frozen=True, slots=True)
class FileNot:
    operand: FileNode


@dataclass(frozen=True, slots=True)
class FileAnd:
    operands: tuple[FileNode, ...]


@dataclass(frozen=True, slots=True)
class FileOr:
    operands: tuple[FileNode, ...]


FileNode = FileTest | FileCompare | FileNot | FileAnd | FileOr


@dataclass(frozen=True, slots=True)
class FileExprResult:
    tree: FileNode | None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.tree is not None and not self.diagnostics


# --- parsing -----------------------------------------------------------------------


@cache
def _metamodel() -> Any:
    from textx import metamodel_from_file

    from engine.resources import grammar_file

    return metamodel_from_file(str(grammar_file("fileexpr.tx")))


def _join_or(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _describe_expected(rules: list[Any]) -> str:
    words: list[str] = []
    for rule in rules:
        name, literal = getattr(rule, "rule_name", ""), getattr(rule, "to_match", "")
        # The six operators are one alternative to the user, not six.
        word = "a comparison" if literal in REL_OPS else _RULE_WORDS.get(name, f"'{literal}'")
        if word not in words:
            words.append(word)
    return _join_or(words) if words else "something else"


def _syntax_message(text: str, offset: int, rules: list[Any]) -> str:
    rest = text[offset:].lstrip()
    if not rest:
        found = "the end of the expression"
    else:
        match = _TOKEN.match(rest)
        token = match.group(0) if match else rest[0]
        if token in ("'", '"'):
            return f"syntax error: a quote is not closed: {rest[:20]}"
        found = f"'{token[:20]}'"
    return f"syntax error: expected {_describe_expected(rules)}, found {found}"


def _split_host(raw: str) -> tuple[str | None, str]:
    """`host:/path`. A path of its own never starts with anything but '/', so a ':' ahead
    of the first '/' can only end a host name."""
    if raw.startswith("/"):
        return None, raw
    colon, slash = raw.find(":"), raw.find("/")
    if colon >= 0 and (slash < 0 or colon < slash):
        return raw[:colon], raw[colon + 1 :]
    return None, raw


class _Reader:
    """Turns textX objects into trees, collecting diagnostics; None marks a refused part."""

    def __init__(self, text: str, source: str, line: int, col_offset: int) -> None:
        self.text = text
        self.source = source
        self.line = line
        self.col_offset = col_offset
        self.diagnostics: list[Diagnostic] = []

    def refuse(self, offset: int, message: str) -> None:
        self.diagnostics.append(self.diagnostic(offset, message))

    def diagnostic(self, offset: int, message: str) -> Diagnostic:
        before = self.text[:offset]
        line = before.count("\n")
        col = offset - (before.rfind("\n") + 1) + 1
        if line == 0:
            col += self.col_offset
        return Diagnostic(self.source, self.line + line, col, message)

    def node(self, obj: Any) -> FileNode | None:
        kind = type(obj).__name__
        if kind in ("Or", "And"):
            operands = [self.node(op) for op in obj.ops]
            if len(operands) == 1:
                return operands[0]
            flat: list[FileNode] = []
            for child in operands:
                if child is None:
                    return None
                # a && (b && c) is a && b && c: the tree keeps one canonical shape.
                same = FileOr if kind == "Or" else FileAnd
                flat.extend(child.operands if isinstance(child, same) else (child,))
            return FileOr(tuple(flat)) if kind == "Or" else FileAnd(tuple(flat))
        if kind == "Not":
            operand = self.node(obj.operand)
            return None if operand is None else FileNot(operand)
        if kind == "Group":
            return self.node(obj.expr)
        if kind == "Atom":
            return self.atom(obj)
        raise AssertionError(f"unexpected grammar object {kind}")

    def atom(self, obj: Any) -> FileNode | None:
        func: str = obj.func
        errors = len(self.diagnostics)
        loc = self.location(obj)
        compare = obj.compare
        if func in TEST_FUNCS:
            if compare is not None:
                self.refuse(
                    compare._tx_position,
                    f"'{compare.op}' does not apply to {func}(), which is true or false",
                )
        elif func in COMPARE_FUNCS:
            if compare is None:
                example = f"{func}({'/path' if loc is None else loc.text()}) > {_EXAMPLES[func]}"
                self.refuse(obj._tx_position, f"{func}() needs a comparison, e.g. {example}")
            else:
                amount = self.amount(func, compare)
                if loc is not None and amount is not None:
                    return FileCompare(func, loc, compare.op, amount[0], amount[1])
        else:
            self.refuse(
                obj._tx_position,
                f"unknown file function '{func}' (use {_join_or(FILE_FUNCS)})",
            )
        if loc is None or len(self.diagnostics) > errors or func not in TEST_FUNCS:
            return None
        return FileTest(func, loc)

    def location(self, atom: Any) -> Loc | None:
        obj = atom.loc
        if obj is None:  # `exist()`: point where the path should be
            offset = self.text.index("(", atom._tx_position) + 1
            while self.text[offset].isspace():
                offset += 1
            raw, inner = "", offset
        elif obj.quoted:
            raw, inner = _ESCAPE.sub(r"\1", obj.quoted[1:-1]), obj._tx_position + 1
        else:
            raw, inner = obj.plain, obj._tx_position
        host, path = _split_host(raw)
        ok = True
        if host is not None:
            if not _HOST.fullmatch(host):
                self.refuse(inner, f"host '{host}' is not a valid host name")
                ok = False
            inner += len(host) + 1
        if not path.startswith("/"):
            self.refuse(inner, f"path '{path}' is not absolute")
            ok = False
        return Loc(path, host) if ok else None

    def amount(self, func: str, compare: Any) -> tuple[str, float] | None:
        """(amount as written, value in bytes or seconds) for `op N[unit]`."""
        text: str = compare.amount.text
        offset: int = compare.amount._tx_position
        match = _AMOUNT.fullmatch(text)
        assert match is not None  # the pattern matches every string
        number, unit = match.group(1), match.group(2)
        unit_offset = offset + len(number)
        if compare.unit is not None:
            if unit:
                extra = compare.unit.text
                self.refuse(compare.unit._tx_position, f"unexpected '{extra}' after '{text}'")
                return None
            unit, unit_offset = compare.unit.text, compare.unit._tx_position
        ok = True
        if not _NUMBER.fullmatch(number):
            if number.startswith("-") and _NUMBER.fullmatch(number[1:]):
                self.refuse(offset, f"number '{number}' is negative")
            else:
                self.refuse(offset, f"'{text}' is not a number")
            ok = False
        scale = _UNITS[func].get(unit.upper())
        if scale is None:
            self.refuse(unit_offset, _UNIT_HINTS[func].format(unit=unit))
            return None
        if not ok:
            return None
        value = float(number) * scale
        if value > _MAX_VALUE:
            self.refuse(offset, f"'{text}' is too large")
            return None
        return number + unit.upper(), value


def parse_file_expr(
    text: str, source: str = "-w", *, line: int = 1, col_offset: int = 0
) -> FileExprResult:
    """Parse a file event expression; diagnostics name `source:line:col`.

    `line` and `col_offset` place the text inside a larger one (the body of `file(...)`
    in a `-w` condition), so columns point into what the user typed.
    """
    from textx import TextXSyntaxError

    reader = _Reader(text, source, line, col_offset)
    if not text.strip():
        reader.refuse(0, "the file expression is empty")
        return FileExprResult(None, reader.diagnostics)
    try:
        model = _metamodel().model_from_str(text)
        tree = reader.node(model.expr)
    except RecursionError:
        reader.refuse(0, "the file expression is nested too deeply")
        return FileExprResult(None, reader.diagnostics)
    except TextXSyntaxError as exc:
        at_line, at_col = exc.line or 1, exc.col or 1
        lines = text.split("\n")
        offset = sum(len(before) + 1 for before in lines[: at_line - 1]) + at_col - 1
        message = _syntax_message(text, offset, list(exc.expected_rules or []))
        return FileExprResult(None, [reader.diagnostic(offset, message)])
    if reader.diagnostics or tree is None:
        return FileExprResult(None, sorted(reader.diagnostics, key=lambda d: (d.line, d.col)))
    return FileExprResult(tree)


# --- canonical text and JSON -------------------------------------------------------

_PRECEDENCE: dict[type, int] = {FileOr: 1, FileAnd: 2, FileNot: 3}


def _precedence(node: FileNode) -> int:
    return _PRECEDENCE.get(type(node), 4)


def format_file_expr(tree: FileNode) -> str:
    """Canonical text: one space around binary operators, parentheses only where needed."""
    if isinstance(tree, FileTest):
        return f"{tree.func}({tree.loc.text()})"
    if isinstance(tree, FileCompare):
        return f"{tree.func}({tree.loc.text()}) {tree.op} {tree.amount}"
    if isinstance(tree, FileNot):
        inner = format_file_expr(tree.operand)
        return f"!({inner})" if _precedence(tree.operand) < 3 else f"!{inner}"
    glue = " && " if isinstance(tree, FileAnd) else " || "
    mine = _precedence(tree)
    parts = []
    for operand in tree.operands:
        text = format_file_expr(operand)
        parts.append(f"({text})" if _precedence(operand) < mine else text)
    return glue.join(parts)


def to_json(tree: FileNode) -> dict[str, Any]:
    if isinstance(tree, FileTest | FileCompare):
        data: dict[str, Any] = {"func": tree.func, "path": tree.loc.path}
        if tree.loc.host is not None:
            data["host"] = tree.loc.host
        if isinstance(tree, FileCompare):
            data.update(op=tree.op, amount=tree.amount, value=tree.value)
        return data
    if isinstance(tree, FileNot):
        return {"not": to_json(tree.operand)}
    key = "and" if isinstance(tree, FileAnd) else "or"
    return {key: [to_json(operand) for operand in tree.operands]}


def from_json(data: dict[str, Any]) -> FileNode:
    """The inverse of to_json; a ValueError for anything to_json cannot have written."""
    if "not" in data:
        return FileNot(from_json(data["not"]))
    if "and" in data:
        return FileAnd(tuple(from_json(item) for item in data["and"]))
    if "or" in data:
        return FileOr(tuple(from_json(item) for item in data["or"]))
    func = data.get("func")
    if func not in FILE_FUNCS:
        raise ValueError(f"not a file expression node: {data!r}")
    host = data.get("host")
    loc = Loc(str(data["path"]), None if host is None else str(host))
    if func in TEST_FUNCS:
        return FileTest(func, loc)
    if data.get("op") not in REL_OPS:
        raise ValueError(f"not a file comparison: {data!r}")
    return FileCompare(func, loc, data["op"], str(data["amount"]), float(data["value"]))


def atoms(tree: FileNode) -> Iterator[FileTest | FileCompare]:
    """The functions, left to right."""
    if isinstance(tree, FileTest | FileCompare):
        yield tree
    elif isinstance(tree, FileNot):
        yield from atoms(tree.operand)
    else:
        for operand in tree.operands:
            yield from atoms(operand)


def file_paths(tree: FileNode) -> list[str]:
    return list(dict.fromkeys(atom.loc.path for atom in atoms(tree)))


def file_hosts(tree: FileNode) -> list[str]:
    return list(dict.fromkeys(atom.loc.host for atom in atoms(tree) if atom.loc.host))


def has_arrival(tree: FileNode) -> bool:
    return any(atom.func == "arrival" for atom in atoms(tree))
