#!/usr/bin/env python3
"""A site event daemon for Tock: is a file system full?

Tock runs it as a child (configure it in `event_daemons`) and writes `SUB name` and
`UNSUB name` lines to its stdin; it answers on stdout. The names it understands:

    diskisfull                      the file system of /
    diskisfull:<abs path>           the file system of that path
    diskisfull:<abs path>:<percent> ... full at that percentage instead of the default

Every DISKISFULL_INTERVAL seconds (default 10) it checks each subscribed file system and
prints `START name latched <mount point> <used>%` when its usage is at or above the
threshold (DISKISFULL_PERCENT, default 90, unless the name gives one), `END name` when it
is below, only when that changes, and the current status right after a SUB. Other names
are ignored (every site daemon hears every SUB, and another may own them); a path it cannot
check gets `REJECT name <why>`.
It exits when its stdin ends. Standard library only.
"""

from __future__ import annotations

import math
import os
import selectors
import shutil
import sys
import time

PREFIX = "diskisfull"


def env_number(name: str, default: float) -> float:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        message = f"{name}={text!r} is not a number >= 0; using {default:g}"
        print(f"diskisfull: {message}", file=sys.stderr)
        return default
    return value


def parse_name(name: str, default_percent: float) -> tuple[str, float] | None:
    """(path, threshold) for a name this daemon understands, else None."""
    if name == PREFIX:
        return "/", default_percent
    if not name.startswith(PREFIX + ":"):
        return None
    spec = name[len(PREFIX) + 1 :]
    path, percent = spec, default_percent
    head, sep, tail = spec.rpartition(":")
    if sep:
        try:
            percent = float(tail)
            path = head
        except ValueError:
            pass  # a ':' inside the path itself
    if not os.path.isabs(path) or not math.isfinite(percent) or percent < 0:
        return None
    return path, percent


def mount_point(path: str) -> str:
    path = os.path.realpath(path)
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return path


def status(path: str, percent: float) -> tuple[str, str]:
    """('full' | 'ok', attribute) or ('error', why)."""
    try:
        usage = shutil.disk_usage(path)
        mount = mount_point(path)
    except OSError as exc:
        return "error", f"cannot check {path}: {exc.strerror}"
    # As df computes it: used over what the user could have, rounded up.
    room = usage.used + usage.free
    used = 100.0 * usage.used / room if room else 0.0
    state = "full" if used >= percent else "ok"
    return state, f"{mount} {math.ceil(used)}%"


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Monitor:
    def __init__(self, default_percent: float) -> None:
        self.default_percent = default_percent
        self.watched: dict[str, tuple[str, float]] = {}  # name -> (path, threshold)
        self.last: dict[str, str] = {}  # name -> 'full' | 'ok' | 'error'

    def handle(self, line: str) -> None:
        words = line.split()
        if len(words) != 2 or words[0] not in ("SUB", "UNSUB"):
            if words:
                print(f"diskisfull: ignoring {line!r}", file=sys.stderr)
            return
        verb, name = words
        if verb == "UNSUB":
            self.watched.pop(name, None)
            self.last.pop(name, None)
            return
        spec = parse_name(name, self.default_percent)
        if spec is None:
            return  # another site daemon's event: every daemon hears every SUB
        self.watched[name] = spec
        self.last.pop(name, None)  # the current status goes out right after a SUB
        self.check(name)

    def check(self, name: str) -> None:
        path, percent = self.watched[name]
        state, detail = status(path, percent)
        if self.last.get(name) == state:
            return
        self.last[name] = state
        if state == "full":
            say(f"START {name} latched {detail}")
        elif state == "ok":
            say(f"END {name}")
        else:
            say(f"REJECT {name} {detail}")

    def check_all(self) -> None:
        for name in list(self.watched):
            self.check(name)


def main() -> int:
    interval = env_number("DISKISFULL_INTERVAL", 10.0)
    monitor = Monitor(env_number("DISKISFULL_PERCENT", 90.0))
    selector = selectors.DefaultSelector()
    stdin = sys.stdin.buffer.fileno()
    selector.register(stdin, selectors.EVENT_READ)
    buffer = b""
    due = time.monotonic() + interval
    try:
        while True:
            for _ in selector.select(max(0.0, due - time.monotonic())):
                data = os.read(stdin, 65536)
                if not data:
                    return 0  # Tock closed our input: time to go
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for raw in lines:
                    monitor.handle(raw.decode("utf-8", errors="replace").rstrip("\r"))
            if time.monotonic() >= due:
                monitor.check_all()
                due = time.monotonic() + interval
    except BrokenPipeError:
        return 0  # Tock is gone
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
