"""`-J 'name[1-100]%5'`: a job name with an index list, parsed into work items. Pure.

The language is LSF's job-array name: `name[list]` with an optional `%N` after the closing
bracket to run at most N items at once. A list is comma-separated items, each `i`, `i-j`
or `i-j:step`. Indices are whole numbers from 0 (a frame 0 is common in rendering) to
MAX_INDEX; duplicates collapse and items run lowest index first. A name without brackets
is a plain job name. Errors are values: a diagnostic naming `-J:1:col` and the token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_INDEX = 2_147_483_646  # LSF's largest array index
MAX_ITEMS = 100_000  # per job: each item is a row written at submit
_NUMBER = re.compile(r"[0-9]+")  # ASCII only: \d would take other scripts' digits


@dataclass(frozen=True, slots=True)
class WorkSpec:
    """A parsed `-J` value. `indices` is empty for a plain job name."""

    name: str
    indices: tuple[int, ...] = ()
    limit: int | None = None
    text: str = ""  # canonical index list, e.g. "[1-100]%5", "" for a plain name

    @property
    def is_array(self) -> bool:
        return bool(self.indices)


@dataclass(frozen=True, slots=True)
class WorkSpecResult:
    spec: WorkSpec | None
    diagnostics: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.spec is not None


class _Error(Exception):
    def __init__(self, column: int, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


def _number(text: str, at: int, what: str) -> tuple[int, int]:
    """The whole number starting at `at` and the position after it."""
    match = _NUMBER.match(text, at)
    if match is None:
        shown = text[at : at + 10] or "end of input"
        raise _Error(at, f"expected {what}, found {shown!r}")
    digits = match.group()
    if len(digits) > len(str(MAX_INDEX)) or int(digits) > MAX_INDEX:
        shown = digits if len(digits) <= 20 else digits[:20] + "..."
        raise _Error(at, f"{shown!r} is above the largest index {MAX_INDEX}")
    return int(digits), match.end()


def _items(text: str, start: int, end: int) -> tuple[list[int], list[tuple[int, int, int]]]:
    """Indices of the list text[start:end], and its ranges for the canonical form."""
    indices: list[int] = []
    ranges: list[tuple[int, int, int]] = []
    at = start
    while True:
        first, at = _number(text, at, "an index")
        last, step = first, 1
        if at < end and text[at] == "-":
            last, at = _number(text, at + 1, "the end of a range")
            if last < first:
                raise _Error(at - 1, f"range {first}-{last} ends before it starts")
            if at < end and text[at] == ":":
                step_at = at + 1
                step, at = _number(text, step_at, "a step")
                if step == 0:
                    raise _Error(step_at, "a step must be at least 1")
        count = (last - first) // step + 1
        if len(indices) + count > MAX_ITEMS:
            raise _Error(start, f"more than {MAX_ITEMS} work items in one job")
        indices.extend(range(first, last + 1, step))
        ranges.append((first, last, step))
        if at == end:
            return indices, ranges
        if text[at] != ",":
            raise _Error(at, f"expected ',' or ']', found {text[at]!r}")
        at += 1


def _range_text(first: int, last: int, step: int) -> str:
    if first == last:
        return str(first)
    return f"{first}-{last}" if step == 1 else f"{first}-{last}:{step}"


def parse_work_name(text: str) -> WorkSpecResult:
    """`name`, `name[list]` or `name[list]%N`."""
    try:
        return WorkSpecResult(_parse(text))
    except _Error as exc:
        return WorkSpecResult(None, [f"-J:1:{exc.column + 1}: {exc.message}"])


def _parse(text: str) -> WorkSpec:
    open_at = text.find("[")
    if open_at < 0:
        return WorkSpec(text)
    close_at = text.find("]", open_at)
    if close_at < 0:
        raise _Error(len(text), "missing ']' after the index list")
    if close_at == open_at + 1:
        raise _Error(close_at, "empty index list")
    indices, ranges = _items(text, open_at + 1, close_at)
    rest, limit = text[close_at + 1 :], None
    if rest:
        if not rest.startswith("%"):
            raise _Error(close_at + 1, f"expected '%N' or the end after ']', found {rest!r}")
        limit, after = _number(text, close_at + 2, "a number of items after '%'")
        if limit == 0:
            raise _Error(close_at + 2, "%0: at least 1 item must be able to run")
        if after != len(text):
            raise _Error(after, f"unexpected {text[after:]!r} after %{limit}")
    unique = tuple(sorted(set(indices)))
    canonical = "[" + ",".join(_range_text(*item) for item in ranges) + "]"
    if limit is not None:
        canonical += f"%{limit}"
    return WorkSpec(text[:open_at], unique, limit, canonical)
