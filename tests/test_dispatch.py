"""The dispatcher with a real launcher: starts survive the launcher's death."""

from __future__ import annotations

import signal
from pathlib import Path

from conftest import Engine, wait_until

from engine.api import Tock
from engine.config import Config
from engine.dispatch import Dispatcher
from engine.paths import layout_for
from engine.runner import Launcher
from engine.users import current_user


def test_a_dead_launcher_is_replaced_and_no_start_is_lost_or_doubled(
    engine: Engine, db_path: Path, tmp_path: Path
) -> None:
    launchers: list[Launcher] = []

    def new_launcher() -> Launcher:
        if launchers:
            launchers[-1].close()
        launchers.append(Launcher(layout_for(db_path), 1.0))
        return launchers[-1]

    log: list[str] = []
    output = layout_for(db_path).default_output_dir
    dispatcher = Dispatcher(engine.conn, engine.clock, output, new_launcher, log.append)
    me = Tock(db_path, clock=engine.clock, user=current_user(), config=Config())
    jobs = [me.submit(f"echo {i} >> {tmp_path}/ran", env={}) for i in range(3)]
    engine.tick()
    first = launchers[0].process
    first.send_signal(signal.SIGKILL)
    first.wait()
    try:
        assert dispatcher.run_pending() == 0  # nothing deferred
        assert engine.pending_actions() == []
        assert len(launchers) == 2
        assert any("starting a new launcher" in line for line in log)

        def reported() -> int:
            return int(
                engine.conn.execute(
                    "SELECT count(*) FROM journal WHERE kind = 'run_finished'"
                ).fetchone()[0]
            )

        wait_until(lambda: reported() == 3, 30, "three runs to finish")
        engine.tick()
        assert [engine.state(job) for job in jobs] == ["DONE"] * 3
        # Re-sent starts (after the restart) are harmless: each job ran exactly once.
        dispatcher.run_pending()
        assert sorted((tmp_path / "ran").read_text().split()) == ["0", "1", "2"]
    finally:
        launchers[-1].close()
