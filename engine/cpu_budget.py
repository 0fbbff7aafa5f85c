"""How much CPU a callback may take from the jobs: a burst, then a small share.

Callbacks are bookkeeping. One that computes for long (an endless loop) would otherwise
hold a core for its whole timeout, and on a small machine the jobs' own processes, and
with them every hop of a chain, slow down: measured here, a single busy process at the
lowest priority Linux offers (SCHED_IDLE) still made a 100-job chain 1.5x slower on 2
cores (the contention is below the guest's scheduler). So a run that has used more than
`burst` seconds of CPU is stopped (SIGSTOP to its own process) until its use is back
within `burst + share * elapsed`, then continued: after its burst it gets `share` of a
core at most. Its timeout still applies, on the wall clock.

The use is read from /proc: the leader's own time and that of the children it has
reaped. A busy grandchild the leader has not waited for is not counted (documented).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

MAX_PAUSE = 1.0  # seconds stopped at a time, so a run is looked at again soon


@dataclass(frozen=True, slots=True)
class CpuBudget:
    burst: float = 0.1  # seconds of CPU at full speed (config callback_cpu_burst)
    share: float = 0.05  # of one core, after the burst (config callback_cpu_share)

    def pause_for(self, cpu: float, elapsed: float) -> float:
        """Seconds to keep a run stopped so that `cpu` is within its allowance after
        `elapsed` seconds; 0 when it already is."""
        over = cpu - self.burst - self.share * elapsed
        if over <= 0:
            return 0.0
        return min(over / self.share, MAX_PAUSE)


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User and system time of a live process and of its reaped children; None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the command name: state is field 3, utime..cstime are fields 14..17.
    return sum(int(value) for value in fields[11:15]) / _TICK


DEFAULT_BUDGET = CpuBudget()
