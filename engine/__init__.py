"""Tock: an event-driven job scheduler on an embedded SQLite state machine.

The package root stays import-light on purpose: the job wrapper and the launcher import
`engine.journal` and friends with `python -S`, and `tock jobs` must start fast. Public names
are resolved on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Clock", "ManualClock", "SystemClock", "Tock", "TockError", "__version__"]

if TYPE_CHECKING:
    from engine.api import Tock
    from engine.clock import Clock, ManualClock, SystemClock
    from engine.errors import TockError

_LAZY = {
    "Tock": "engine.api",
    "TockError": "engine.errors",
    "Clock": "engine.clock",
    "ManualClock": "engine.clock",
    "SystemClock": "engine.clock",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
