"""Children that must not outlive the daemon: callbacks and site event daemons.

They run in process groups of their own (so a timeout can kill the whole group), which
also cuts them off from a signal sent to the daemon's group. When the daemon is killed
outright (SIGKILL, an OOM kill) nothing would stop them, and a callback in an endless loop
would run for ever. Linux's parent-death signal kills them with their parent; the
daemon's next start re-runs whatever was interrupted (callbacks are at-least-once).
"""

from __future__ import annotations

import ctypes
import signal

_PR_SET_PDEATHSIG = 1
_SIGKILL = int(signal.SIGKILL)
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved now, not in the forked child


def die_with_parent() -> None:
    """A `preexec_fn`: only a preloaded C call, nothing that could wait on a lock that
    another thread of the daemon held when it forked."""
    _prctl(_PR_SET_PDEATHSIG, _SIGKILL)
