"""Callback triggers and callbacks.conf, Qube's universal callbacks: parsed with textX into
trees, printed back canonically, stored as JSON. Finding and loading the callback
directories is engine/callback_dirs.py.

A trigger is event terms `name-type-context[-extra]` joined by `&&` and `||` (`&&` binds
tighter) with parentheses. The decisions Qube leaves open:

- A term splits at its first three hyphens: name, type, context, and everything after
  the third hyphen is the extra. So a work name may hold `-` (`done-work-self-frame-1`)
  and a job label may not: `done-job-my-label` reads as context `my` with an extra, which
  a job trigger refuses, saying labels cannot hold `-`. Labels are letters, digits, `_`
  and `.`, not all digits; all digits is a job id (written canonically without leading
  zeros). `self` and `parent` are reserved.
- A work trigger needs its extra, a work name or id or `*` for any item: Qube's extra
  table gives work one, and a missing one is more likely forgotten than meant. A job
  trigger takes none. Names, types, `self` and `parent` are lower case, as Qube writes
  them; labels and work names keep their case.
- `and` and `or`, in any case, are accepted as `&&` and `||` (some Qube submit code joins
  terms with ' and '). They are unambiguous: an operator word stands alone, and a term
  always holds hyphens. Canonical text uses `&&` and `||`.
- `subjob` is refused (Tock has no job instances), as are Qube's host and time types and
  its `assigned` and `dummy` names.

callbacks.conf is read line by line, so one bad line is reported with `file:line:col` and
skipped while the others load. A file name is a plain name in the callback directory: no
`/`, not starting with `.` (which also rules out `.` and `..`), with an extension that
picks the language. A file named on two lines is refused on the second: Qube's file is a
key = value map, and two callbacks running one file would fire it twice on one event.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from engine.errors import Diagnostic

NAMES = (
    "complete",
    "done",
    "submit",
    "killed",
    "blocked",
    "failed",
    "running",
    "waiting",
    "removed",
    "modified",
    "timeout",
)
TYPES = ("job", "work")
LANGUAGES = {".py": "python", ".pl": "perl", ".qcb": "qcb", ".sh": "shell"}

# Qube words Tock does not model, with the reason, so a Qube user learns why.
_UNSUPPORTED_NAMES = {
    "assigned": "Tock does not assign jobs to hosts",
    "dummy": "Tock has no time triggers",
}
_UNSUPPORTED_TYPES = {"subjob": "subjob triggers are not supported: Tock has no job instances"}

_LABEL = re.compile(r"[A-Za-z0-9_.]+")
_TOKEN = re.compile(r"&&|\|\||[()=#]|[^\s()&|#=]+|.")


@dataclass(frozen=True, slots=True)
class Trigger:
    """One event term: `name` happened to the job (or one work item) `context` names."""

    name: str
    type: str
    context: str  # 'self', 'parent', a job label, or a job id as digits
    extra: str | None = None  # work triggers only: a work name or id, or '*' for any

    def text(self) -> str:
        base = f"{self.name}-{self.type}-{self.context}"
        return base if self.extra is None else f"{base}-{self.extra}"


@dataclass(frozen=True, slots=True)
class TrigAnd:
    operands: tuple[TrigNode, ...]


@dataclass(frozen=True, slots=True)
class TrigOr:
    operands: tuple[TrigNode, ...]


TrigNode = Trigger | TrigAnd | TrigOr


@dataclass(frozen=True, slots=True)
class TriggerResult:
    tree: TrigNode | None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.tree is not None and not self.diagnostics


@dataclass(frozen=True, slots=True)
class CallbackEntry:
    """A good line of a callbacks.conf."""

    filename: str
    language: str  # a value of LANGUAGES
    trigger: TrigNode
    text: str  # the trigger's canonical text
    line: int
    col: int = 1  # of the file name, for diagnostics found after parsing


@dataclass(frozen=True, slots=True)
class ConfResult:
    """The good lines, and a diagnostic for each line that was skipped."""

    entries: list[CallbackEntry] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.diagnostics


# --- parsing -----------------------------------------------------------------------


@cache
def _metamodel(entry: str) -> Any:
    """`line` parses a callbacks.conf line (the grammar's root rule); `trigger` parses a
    bare trigger, from a root rule put in front of the same grammar text."""
    from textx import metamodel_from_str

    from engine.resources import grammar_file

    path = grammar_file("callbacks.tx")
    text = path.read_text(encoding="utf-8")
    if entry == "trigger":
        text = "TriggerInput: expr=Or;\n" + text
    return metamodel_from_str(text, file_name=str(path))


def _join_or(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


# In the order they are listed to the user.
_EXPECTED_ORDER = ("a file name", "'='", "a trigger", "'('", "'&&'", "'||'", "')'", "the end")


def _expected_word(rule: Any) -> str | None:
    name, literal = getattr(rule, "rule_name", ""), getattr(rule, "to_match", "")
    if name == "FileName":
        return "a file name"
    if name == "TermText":
        return "a trigger"
    if name == "EOF":
        return "the end"
    if name == "sep":  # the separators: '&&' or `and`, '||' or `or`
        return "'&&'" if literal.startswith("&&") else "'||'"
    if name == "Remark":  # a comment fits anywhere the end does: not worth a word
        return None
    return f"'{literal}'"


def _describe_expected(rules: list[Any]) -> str:
    words = {word for word in map(_expected_word, rules) if word is not None}
    if "a file name" in words:  # a line that starts badly: the rest is noise
        words = {"a file name"}
    ordered = [word for word in _EXPECTED_ORDER if word in words]
    ordered += sorted(words - set(ordered))
    return _join_or(ordered) if ordered else "something else"


class _Reader:
    """Turns textX objects into trees, collecting diagnostics; None marks a refused part."""

    def __init__(self, text: str, source: str, line: int, col_offset: int, what: str) -> None:
        self.text = text
        self.source = source
        self.line = line
        self.col_offset = col_offset
        self.what = what  # "trigger" or "line", for "found the end of the ..."
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

    def syntax_error(self, exc: Any) -> None:
        at_line, at_col = exc.line or 1, exc.col or 1
        lines = self.text.split("\n")
        offset = sum(len(before) + 1 for before in lines[: at_line - 1]) + at_col - 1
        rest = self.text[offset:].lstrip()
        if rest:
            match = _TOKEN.match(rest)
            token = match.group(0) if match else rest[0]
            found = f"'{token[:20]}'"
        else:
            found = f"the end of the {self.what}"
        expected = _describe_expected(list(exc.expected_rules or []))
        self.refuse(offset, f"syntax error: expected {expected}, found {found}")

    def node(self, obj: Any) -> TrigNode | None:
        kind = type(obj).__name__
        if kind in ("Or", "And"):
            operands = [self.node(op) for op in obj.ops]
            if len(operands) == 1:
                return operands[0]
            same = TrigOr if kind == "Or" else TrigAnd
            flat: list[TrigNode] = []
            for child in operands:
                if child is None:
                    return None
                # a && (b && c) is a && b && c: the tree keeps one canonical shape.
                flat.extend(child.operands if isinstance(child, same) else (child,))
            return same(tuple(flat))
        if kind == "Group":
            return self.node(obj.expr)
        if kind == "Term":
            return self.term(obj.text, obj._tx_position)
        raise AssertionError(f"unexpected grammar object {kind}")

    def term(self, text: str, offset: int) -> Trigger | None:
        """Every problem of the term is reported, each at its own part."""
        parts = text.split("-", 3)
        if len(parts) < 3:
            self.refuse(
                offset,
                f"'{text}' is not an event: expected name-type-context, e.g. done-job-self",
            )
            return None
        starts = [offset]
        for part in parts[:-1]:
            starts.append(starts[-1] + len(part) + 1)
        name, kind, context = parts[:3]
        extra = parts[3] if len(parts) == 4 else None
        errors = len(self.diagnostics)
        self.check_name(name, starts[0], text)
        self.check_type(kind, starts[1], text)
        context = self.check_context(context, starts[2], text)
        if kind == "job" and extra is not None:
            self.refuse(
                starts[3] - 1,
                f"unexpected '-{extra}': a job trigger ends at its context "
                "(an extra names a work item, and a label cannot hold '-')",
            )
        elif kind == "work" and extra is None:
            self.refuse(
                offset,
                f"'{text}' needs a work name, a work id or '*' after the context, e.g. {text}-*",
            )
        elif extra is not None and kind in TYPES:
            self.check_extra(extra, starts[3], text)
        if len(self.diagnostics) > errors:
            return None
        return Trigger(name, kind, context, extra)

    def check_name(self, name: str, offset: int, text: str) -> None:
        if name in NAMES:
            return
        if not name:
            self.refuse(offset, f"'{text}' has no event name before the first '-'")
        elif name in _UNSUPPORTED_NAMES:
            why = _UNSUPPORTED_NAMES[name]
            self.refuse(offset, f"trigger name '{name}' is not supported: {why}")
        elif name.lower() in NAMES:
            self.refuse(offset, f"unknown trigger name '{name}' (names are lower case)")
        else:
            self.refuse(offset, f"unknown trigger name '{name}' (use {_join_or(NAMES)})")

    def check_type(self, kind: str, offset: int, text: str) -> None:
        if kind in TYPES:
            return
        if not kind:
            self.refuse(offset, f"'{text}' has no type: expected job or work")
        elif kind in _UNSUPPORTED_TYPES:
            self.refuse(offset, _UNSUPPORTED_TYPES[kind])
        else:
            self.refuse(offset, f"unknown trigger type '{kind}' (use job or work)")

    def check_context(self, context: str, offset: int, text: str) -> str:
        """The context as the tree keeps it: a job id loses its leading zeros."""
        if context in ("self", "parent"):
            return context
        if not context:
            self.refuse(
                offset, f"'{text}' has no context: use self, parent, a job label or a job id"
            )
        elif context.isascii() and context.isdigit():
            if int(context) == 0:
                self.refuse(offset, "job id 0 is not valid: job ids start at 1")
            return str(int(context))
        elif not _LABEL.fullmatch(context):
            self.refuse(
                offset,
                f"bad context '{context}': use self, parent, a job id or a job label "
                "(letters, digits, '_' and '.')",
            )
        return context

    def check_extra(self, extra: str, offset: int, text: str) -> None:
        if not extra:
            self.refuse(offset, f"'{text}' ends in '-': expected a work name, a work id or '*'")
        elif "*" in extra and extra != "*":
            self.refuse(offset, f"bad work name '{extra}': only a lone '*' is a wildcard")


def parse_trigger(
    text: str, source: str = "--callback", *, line: int = 1, col_offset: int = 0
) -> TriggerResult:
    """Parse a trigger expression; diagnostics name `source:line:col`.

    `line` and `col_offset` place the text inside a larger one (the TRIGGER of a
    `--callback TRIGGER=PATH`), so columns point into what the user typed.
    """
    reader = _Reader(text, source, line, col_offset, "trigger")
    if not text.strip():
        reader.refuse(0, "the trigger is empty")
        return TriggerResult(None, reader.diagnostics)
    tree = _read(reader, "trigger")
    if tree is None or reader.diagnostics:
        return TriggerResult(None, reader.diagnostics)
    return TriggerResult(tree)


def _read(reader: _Reader, entry: str) -> Any:
    """The tree of a trigger, or (for `line`) the textX model of a line; None on errors."""
    from textx import TextXSyntaxError

    try:
        model = _metamodel(entry).model_from_str(reader.text)
        if entry == "line":
            return model
        return reader.node(model.expr)
    except RecursionError:
        reader.refuse(0, f"the {reader.what} is nested too deeply")
    except TextXSyntaxError as exc:
        reader.syntax_error(exc)
    return None


def _line_entry(reader: _Reader, line: int) -> CallbackEntry | None:
    model = _read(reader, "line")
    entry = getattr(model, "entry", None)  # an empty line's model is not even an object
    if entry is None:
        return None
    filename: str = entry.filename
    col = entry._tx_position + 1
    language = _check_filename(reader, filename, entry._tx_position)
    tree = reader.node(entry.trigger)
    if language is None or tree is None or reader.diagnostics:
        return None
    return CallbackEntry(filename, language, tree, format_trigger(tree), line, col)


def filename_problem(filename: str) -> str | None:
    if "/" in filename:
        return f"'{filename}' is not a plain file name: a callback file is named without '/'"
    if filename.startswith("."):
        return f"'{filename}' starts with '.': a callback file is a plain, visible name"
    if "\0" in filename:
        return f"{filename!r} holds a NUL character"
    return None


def _check_filename(reader: _Reader, filename: str, offset: int) -> str | None:
    """The language, or None after a diagnostic."""
    problem = filename_problem(filename)
    if problem is not None:
        reader.refuse(offset, problem)
        return None
    extension = os.path.splitext(filename)[1]
    language = LANGUAGES.get(extension)
    if language is not None:
        return language
    known = _join_or(list(LANGUAGES))
    if not extension:
        reader.refuse(offset, f"'{filename}' has no extension: use {known} to pick the language")
    else:
        reader.refuse(offset, f"unknown extension '{extension}' (use {known})")
    return None


def parse_callbacks_conf(text: str, source: str) -> ConfResult:
    """Parse a callbacks.conf; a bad line is skipped with its diagnostics (`source:line:col`),
    the good ones are kept in file order."""
    entries: list[CallbackEntry] = []
    diagnostics: list[Diagnostic] = []
    first_line: dict[str, int] = {}
    text = text.removeprefix("\ufeff")
    for number, raw in enumerate(text.split("\n"), start=1):
        reader = _Reader(raw.removesuffix("\r"), source, number, 0, "line")
        entry = _line_entry(reader, number)
        if entry is not None and entry.filename in first_line:
            reader.refuse(
                entry.col - 1,
                f"'{entry.filename}' is already bound at line {first_line[entry.filename]}: "
                "join its triggers with '||' on one line",
            )
            entry = None
        diagnostics.extend(sorted(reader.diagnostics, key=lambda d: d.col))
        if entry is not None:
            first_line[entry.filename] = number
            entries.append(entry)
    return ConfResult(entries, diagnostics)


# --- canonical text and JSON -------------------------------------------------------


def format_trigger(node: TrigNode) -> str:
    """Canonical text: one space around operators, parentheses only around an `||` that
    is an operand of `&&`."""
    if isinstance(node, Trigger):
        return node.text()
    if isinstance(node, TrigAnd):
        parts = (
            f"({format_trigger(op)})" if isinstance(op, TrigOr) else format_trigger(op)
            for op in node.operands
        )
        return " && ".join(parts)
    return " || ".join(format_trigger(op) for op in node.operands)


def to_json(node: TrigNode) -> dict[str, Any]:
    if isinstance(node, Trigger):
        data: dict[str, Any] = {"name": node.name, "type": node.type, "context": node.context}
        if node.extra is not None:
            data["extra"] = node.extra
        return data
    op = "and" if isinstance(node, TrigAnd) else "or"
    return {"op": op, "args": [to_json(operand) for operand in node.operands]}


def from_json(data: Mapping[str, Any]) -> TrigNode:
    """The inverse of to_json; a ValueError for anything to_json cannot have written."""
    op = data.get("op")
    if op is not None:
        args = data.get("args")
        if op not in ("and", "or") or not isinstance(args, list) or not args:
            raise ValueError(f"not a trigger node: {data!r}")
        operands = tuple(from_json(arg) for arg in args)
        return TrigAnd(operands) if op == "and" else TrigOr(operands)
    name, kind, context = data.get("name"), data.get("type"), data.get("context")
    extra = data.get("extra")
    if (
        name not in NAMES
        or kind not in TYPES
        or not isinstance(context, str)
        or not context
        or (extra is not None and not isinstance(extra, str))
        or (extra is None) != (kind == "job")
    ):
        raise ValueError(f"not a trigger term: {data!r}")
    return Trigger(name, kind, context, extra)


def _leaves(node: TrigNode) -> Iterator[Trigger]:
    if isinstance(node, Trigger):
        yield node
    else:
        for operand in node.operands:
            yield from _leaves(operand)


def triggers(node: TrigNode) -> list[Trigger]:
    """The event terms, left to right (a term written twice is listed twice)."""
    return list(_leaves(node))
