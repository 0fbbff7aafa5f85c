"""The one exception type users see, and the diagnostic value parsers return."""

from __future__ import annotations

from dataclasses import dataclass


class TockError(Exception):
    """A request Tock refuses: bad input, a permission, a missing job, a locked database.

    The CLI prints it as one line, `tock: <message>`, and exits 1. Anything else that
    escapes is a bug.
    """


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """A problem found in user text, with the place it was found."""

    source: str  # where the text came from: "-w", a file name, ...
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.col}: {self.message}"
