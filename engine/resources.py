"""Where the grammars and migrations are, in a source checkout or an installed wheel.

They live at the top of the repository (`grammar/`, `migrations/`); the wheel carries them
inside the package as `engine/grammar` and `engine/migrations`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def resource_dir(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"Tock is installed without its {name}/ directory")


def grammar_file(name: str) -> Path:
    return resource_dir("grammar") / name
