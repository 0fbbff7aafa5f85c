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
_PRIO_PROCESS = 0
_SIGKILL = int(signal.SIGKILL)
_LOWER = 10  # callbacks yield the CPU to jobs, but still run on a busy machine
_libc = ctypes.CDLL(None, use_errno=True)
_prctl = _libc.prctl  # resolved now, not in the forked child
_setpriority = _libc.setpriority


def die_with_parent() -> None:
    """A `preexec_fn`: only a preloaded C call, nothing that could wait on a lock that
    another thread of the daemon held when it forked."""
    _prctl(_PR_SET_PDEATHSIG, _SIGKILL)


def callback_child() -> None:
    """A callback's `preexec_fn`: dies with the daemon, and runs at a lower priority, so
    that a callback looping on the CPU slows the jobs beside it as little as it can."""
    _prctl(_PR_SET_PDEATHSIG, _SIGKILL)
    _setpriority(_PRIO_PROCESS, 0, _LOWER)
