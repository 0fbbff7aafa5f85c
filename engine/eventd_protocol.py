"""The site event daemons' line protocol, LSF's eeventd protocol, as pure functions.

LSF JobScheduler had one External Event Daemon (eeventd) speaking a line protocol with the
scheduler. Tock runs every command line configured in `event_daemons` as a child process
and speaks the same protocol over its stdin and stdout, one message a line:

- Tock to the child: `SUB name` when some job starts depending on event `name`, `UNSUB name`
  when none does any more. After a (re)start the child gets a `SUB` for every name
  subscribed at that moment.
- The child to Tock: `START name type [attribute]` (type `latched`, `pulse`, `pulseAll` or
  `exclusive`, any case), `END name`, `REJECT name [attribute]`. The attribute is the rest
  of the line after one blank and may hold blanks. Blank lines are ignored; anything else
  (an unknown verb, a missing name, a bad type, a line longer than MAX_LINE bytes, bytes
  that are not UTF-8) is reported as an error and ignored. Verbs are accepted in any case,
  a `\r` before the newline is dropped, and a last line without its newline still counts.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_LINE = 4096  # bytes in one line from a child, without its newline
TYPES = {name.lower(): name for name in ("latched", "pulse", "pulseAll", "exclusive")}
ACTIONS = ("start", "end", "reject")


@dataclass(frozen=True, slots=True)
class Post:
    """One message from a site event daemon."""

    action: str  # 'start' | 'end' | 'reject'
    name: str
    type: str | None = None  # for start: 'latched' | 'pulse' | 'pulseAll' | 'exclusive'
    attribute: str | None = None


def _token(line: str, pos: int) -> tuple[str | None, int]:
    """The blank-separated token from `pos` on (None at the end) and where it ends."""
    while pos < len(line) and line[pos].isspace():
        pos += 1
    start = pos
    while pos < len(line) and not line[pos].isspace():
        pos += 1
    return (line[start:pos] or None), pos


def _rest(line: str, pos: int) -> str | None:
    """The attribute: everything after the one blank that ends the previous token."""
    rest = line[pos + 1 :]
    return rest or None


def parse_line(line: str) -> Post | str:
    """A line from a child (without its newline) as a Post, or what is wrong with it.

    A blank line is an error here ("empty line"); the reader skips blank lines before.
    Control characters are refused: an attribute becomes a job's environment variable,
    which cannot hold a NUL."""
    bad = next((ch for ch in line if (ch < " " and ch != "\t") or ch == "\x7f"), None)
    if bad is not None:
        return f"control character {bad!r} in the line"
    verb, pos = _token(line, 0)
    if verb is None:
        return "empty line"
    action = verb.lower()
    if action not in ACTIONS:
        return f"unknown verb {verb!r} (START, END or REJECT)"
    name, pos = _token(line, pos)
    if name is None:
        return f"{verb}: missing event name"
    if action == "start":
        kind, pos = _token(line, pos)
        if kind is None:
            return f"{verb} {name}: missing event type (latched, pulse, pulseAll or exclusive)"
        canonical = TYPES.get(kind.lower())
        if canonical is None:
            return (
                f"{verb} {name}: unknown event type {kind!r} "
                "(latched, pulse, pulseAll or exclusive)"
            )
        return Post("start", name, canonical, _rest(line, pos))
    if action == "reject":
        return Post("reject", name, None, _rest(line, pos))
    extra, _ = _token(line, pos)
    if extra is not None:
        return f"{verb} {name}: unexpected {extra!r} (END takes only a name)"
    return Post("end", name)


def valid_name(name: str) -> bool:
    """An event name the protocol can carry: non-empty, no whitespace, encodable."""
    if not name or any(ch.isspace() for ch in name):
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def format_sub(name: str) -> str:
    if not valid_name(name):
        raise ValueError(f"{name!r}: an event name must be non-empty, without whitespace")
    return f"SUB {name}\n"


def format_unsub(name: str) -> str:
    if not valid_name(name):
        raise ValueError(f"{name!r}: an event name must be non-empty, without whitespace")
    return f"UNSUB {name}\n"


class LineSplitter:
    """Bytes into lines; a line longer than MAX_LINE becomes one ('long', first bytes)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.skipping = False  # inside an overlong line, until its newline

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        items: list[tuple[str, bytes]] = []
        self.buffer += data
        start = 0
        while True:
            end = self.buffer.find(b"\n", start)
            if end < 0:
                break
            line = bytes(self.buffer[start:end])
            start = end + 1
            if self.skipping:
                self.skipping = False
                continue
            items.append(self._item(line))
        del self.buffer[:start]
        if len(self.buffer) > MAX_LINE + 1:  # +1: a '\r' that a '\n' may still follow
            if not self.skipping:
                items.append(("long", bytes(self.buffer[:80])))
                self.skipping = True
            self.buffer.clear()
        return items

    def finish(self) -> list[tuple[str, bytes]]:
        """A last line without its newline still counts."""
        line = bytes(self.buffer)
        self.buffer.clear()
        if self.skipping or not line:
            return []
        return [self._item(line)]

    @staticmethod
    def _item(line: bytes) -> tuple[str, bytes]:
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > MAX_LINE:
            return ("long", line[:80])
        return ("line", line)


def decode_item(kind: str, raw: bytes) -> Post | str | None:
    """A LineSplitter item as a Post, an error message naming the line, or None (blank)."""
    if kind == "long":
        return f"line longer than {MAX_LINE} bytes ignored: {raw!r}"
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        return f"not UTF-8, ignored: {raw[:200]!r}"
    if not line.strip():
        return None
    parsed = parse_line(line)
    if isinstance(parsed, Post):
        return parsed
    shown = line if len(line) <= 200 else line[:200] + "..."
    return f"{parsed}; line ignored: {shown!r}"
