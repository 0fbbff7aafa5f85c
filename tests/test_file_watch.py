"""Watching target paths: real inotify on temporary directories, real threads.

Waits are on the watcher's fd with generous upper bounds; nothing here asserts on timing.
"""

from __future__ import annotations

import os
import select
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.file_watch import FileMonitor, Stat, Watcher, observe
from engine.watch_plan import NO_INOTIFY_FS, fs_type, make_plan, parse_mountinfo, watch_root

WAIT = 5.0  # seconds: only an upper bound for a report that should come in milliseconds
NOW = 1000.0  # a fixed time for the monitor, far from any poll or scan unless a test says so

MOUNTINFO = r"""22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
25 22 0:23 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
36 22 0:33 / /mnt/my\040data rw,relatime shared:20 master:3 - nfs4 srv:/export rw,vers=4.2
37 22 0:34 / /mnt/a rw,relatime - tmpfs tmpfs rw,size=4k
38 37 0:35 / /mnt/a rw,relatime - cifs //srv/share rw
39 22 0:36 / /home/u/remote rw,nosuid,nodev,relatime shared:40 - fuse.sshfs u@h:/ rw,user_id=0
40 22 0:37 /sub /srv/back\134slash\011tab rw - xfs /dev/sdb1 rw
a line the kernel would never write
"""


def readable(fd: int, timeout: float = WAIT) -> bool:
    ready, _, _ = select.select([fd], [], [], timeout)
    return bool(ready)


def take_until(watcher: Watcher, wanted: Callable[[set[str]], bool]) -> set[str]:
    """Every path reported until `wanted` holds for them."""
    seen: set[str] = set()
    while not wanted(seen):
        assert readable(watcher.fileno()), f"no report; seen so far: {sorted(seen)}"
        seen |= watcher.take()
    return seen


def collect_until(
    monitor: FileMonitor, wanted: Callable[[dict[str, Stat]], bool], now: float = NOW
) -> dict[str, Stat]:
    """The latest stat of every target collected, until `wanted` holds for them."""
    seen: dict[str, Stat] = {}
    while True:
        seen.update(monitor.collect(now))
        if wanted(seen):
            return seen
        assert readable(monitor.fileno()), f"no report; seen so far: {seen}"


@pytest.fixture
def watcher() -> Iterator[Watcher]:
    w = Watcher()
    yield w
    w.close()


@pytest.fixture
def monitor() -> Iterator[FileMonitor]:
    m = FileMonitor(poll_interval=1e6, scan_interval=1e7, mounts_text=MOUNTINFO)
    yield m
    m.close()


# -- the pure parts --------------------------------------------------------------------


def test_observe_follows_symlinks_and_takes_any_error_for_absence(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_bytes(b"12345")
    (tmp_path / "link").symlink_to(data)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    seen = observe(str(tmp_path / "link"))
    assert seen == Stat(True, 5, data.stat().st_mtime, inode=data.stat().st_ino)
    assert observe(str(tmp_path / "missing")) == Stat(False)
    assert observe(str(tmp_path / "dangling")) == Stat(False)
    assert observe(str(data / "under-a-file")) == Stat(False)  # ENOTDIR
    assert observe(str(tmp_path / "nul\0byte")) == Stat(False)


def test_mountinfo_types_are_found_past_the_optional_fields() -> None:
    assert parse_mountinfo(MOUNTINFO) == [
        ("/", "ext4"),
        ("/proc", "proc"),
        ("/mnt/my data", "nfs4"),
        ("/mnt/a", "tmpfs"),
        ("/mnt/a", "cifs"),
        ("/home/u/remote", "fuse.sshfs"),
        ("/srv/back\\slash\ttab", "xfs"),
    ]


def test_the_longest_mount_point_decides_component_by_component() -> None:
    mounts = parse_mountinfo(MOUNTINFO)
    assert fs_type("/mnt/my data/in.dat", mounts) == "nfs4"
    assert fs_type("/mnt/my data", mounts) == "nfs4"
    assert fs_type("/mnt/my database/x", mounts) == "ext4"  # not under "/mnt/my data"
    assert fs_type("/mnt/a/x", mounts) == "cifs"  # the later mount is on top
    assert fs_type("/mnt/ab/x", mounts) == "ext4"
    assert fs_type("/home/u/remote/deep/er/x", mounts) == "fuse.sshfs"
    assert fs_type("/home/u/x", mounts) == "ext4"
    assert fs_type("/x", []) == ""
    assert {"nfs", "nfs4", "cifs", "fuse.sshfs"} <= NO_INOTIFY_FS


def test_the_watch_root_is_the_nearest_existing_directory(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "file").write_text("")
    assert watch_root(str(tmp_path / "d" / "t")) == str(tmp_path / "d")
    assert watch_root(str(tmp_path / "a" / "b" / "t")) == str(tmp_path)
    assert watch_root(str(tmp_path / "file" / "t")) == str(tmp_path)  # a file is no directory
    assert watch_root("/no-such-dir-for-tock/x/y") == "/"


def test_a_plan_watches_roots_and_maps_changes_to_targets(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    here, there = str(tmp_path / "in" / "t1"), str(tmp_path / "in" / "t2")
    deep = str(tmp_path / "a" / "b" / "t3")  # a and b are missing
    plan = make_plan([here, there, deep], [], [])
    assert plan.dirs == {str(tmp_path / "in"), str(tmp_path)}
    assert plan.polled == frozenset()
    assert plan.affected(here) == {here}
    assert plan.affected(str(tmp_path / "in" / "other")) == set()
    assert plan.affected(str(tmp_path / "in")) == {here, there}  # the watched parent went
    assert plan.affected(str(tmp_path / "a")) == {deep}  # a missing directory appeared
    assert plan.affected(str(tmp_path / "a" / "b")) == {deep}
    assert plan.replan_needed(str(tmp_path / "a"))
    assert plan.replan_needed(str(tmp_path / "in"))
    assert not plan.replan_needed(here)
    assert not plan.replan_needed(str(tmp_path / "elsewhere"))
    assert make_plan([str(tmp_path / "in" / ".." / "in" / "t1")], [], []).affected(here) == {
        str(tmp_path / "in" / ".." / "in" / "t1")  # reported normalized, answered as spelled
    }
    with pytest.raises(ValueError, match="absolute"):
        make_plan(["relative/t"], [], [])


def test_remote_file_systems_and_prefixes_are_polled(tmp_path: Path) -> None:
    for name in ("nfs", "local", "slow", "slower"):
        (tmp_path / name).mkdir()
    mounts = [("/", "ext4"), (str(tmp_path / "nfs"), "nfs")]
    remote, local = str(tmp_path / "nfs" / "t"), str(tmp_path / "local" / "t")
    slow, slower = str(tmp_path / "slow" / "t"), str(tmp_path / "slower" / "t")
    (tmp_path / "link").symlink_to(tmp_path / "nfs")
    linked = str(tmp_path / "link" / "t")  # the literal path is local, the directory is not
    plan = make_plan([remote, local, slow, slower, linked], mounts, [str(tmp_path / "slow") + "/"])
    assert plan.polled == {remote, slow, linked}
    assert plan.dirs == {str(tmp_path / "local"), str(tmp_path / "slower")}


# -- the watcher thread ------------------------------------------------------------------


def test_create_rename_into_place_and_delete_are_reported(tmp_path: Path, watcher: Watcher) -> None:
    assert watcher.watch([str(tmp_path)])
    target = tmp_path / "in.dat"
    target.write_text("x")
    assert str(target) in take_until(watcher, lambda seen: str(target) in seen)
    staged = tmp_path.parent / f"{tmp_path.name}.staged"  # outside the watched directory
    staged.write_text("y")
    placed = tmp_path / "placed.dat"
    os.rename(staged, placed)
    take_until(watcher, lambda seen: str(placed) in seen)
    target.unlink()
    take_until(watcher, lambda seen: str(target) in seen)
    assert watcher.take_errors() == []


def test_the_watcher_restarts_only_for_another_set_of_directories(
    tmp_path: Path, watcher: Watcher
) -> None:
    one, two, gone = tmp_path / "one", tmp_path / "two", tmp_path / "gone"
    one.mkdir()
    two.mkdir()
    assert watcher.watch([str(one), str(two)])
    assert not watcher.watch([str(two), str(one)])
    assert watcher.watch([str(one), str(gone)])  # a vanished directory is dropped
    assert watcher.dirs == {str(one)}
    assert not watcher.watch([str(one)])
    (one / "f").write_text("")
    take_until(watcher, lambda seen: str(one / "f") in seen)
    before = threading.active_count()
    assert watcher.watch([])
    assert threading.active_count() == before - 1  # nothing to watch: no thread
    assert not watcher.watch([str(gone)])


def test_close_stops_the_thread(tmp_path: Path) -> None:
    before = threading.active_count()
    watcher = Watcher(step_ms=5)
    watcher.watch([str(tmp_path)])
    assert threading.active_count() == before + 1
    watcher.close()
    assert threading.active_count() == before
    watcher.close()


def test_a_dying_watcher_is_reported_and_its_targets_polled(tmp_path: Path) -> None:
    monitor = FileMonitor(poll_interval=5.0, scan_interval=1e7, mounts_text="")
    try:
        target = str(tmp_path / "t")
        monitor.set_targets([target], NOW)
        monitor.collect(NOW)
        # RustNotify cannot decode a name that is not UTF-8, and its watch stops with an error.
        os.close(os.open(os.fsencode(tmp_path) + b"/\xff", os.O_CREAT | os.O_WRONLY))
        assert readable(monitor.fileno())
        assert monitor.collect(NOW) == {}
        assert any("decode" in error for error in monitor.errors())
        assert monitor.next_due() == NOW + 5.0  # polled until the watcher works again
        Path(target).write_text("seen by the poll")
        assert monitor.collect(NOW + 5.0)[target].exists
        assert monitor.errors() == []  # the restarted watcher works
        os.unlink(target)
        assert not collect_until(monitor, lambda seen: target in seen, NOW + 6.0)[target].exists
    finally:
        monitor.close()


# -- the monitor -------------------------------------------------------------------------


def test_new_targets_are_stated_at_the_next_collect(tmp_path: Path, monitor: FileMonitor) -> None:
    assert monitor.next_due() is None
    present = tmp_path / "present"
    present.write_text("abc")
    monitor.set_targets([str(present)], NOW)
    assert monitor.next_due() == NOW
    assert monitor.collect(NOW) == {str(present): observe(str(present))}
    assert monitor.next_due() == NOW + 1e7  # only the scan is left
    assert monitor.collect(NOW) == {}
    absent = str(tmp_path / "absent")
    monitor.set_targets([str(present), absent], NOW)
    assert monitor.collect(NOW) == {absent: Stat(False)}  # same directory: no restart
    monitor.set_targets([], NOW)
    assert monitor.next_due() is None
    assert monitor.collect(NOW) == {}


def test_a_target_in_a_missing_directory_is_seen_when_it_comes(
    tmp_path: Path, monitor: FileMonitor
) -> None:
    target = tmp_path / "a" / "b" / "in.dat"
    monitor.set_targets([str(target)], NOW)
    assert monitor.plan.dirs == {str(tmp_path)}
    assert monitor.collect(NOW) == {str(target): Stat(False)}
    (tmp_path / "a").mkdir()
    collect_until(monitor, lambda _: monitor.plan.dirs == {str(tmp_path / "a")})
    (tmp_path / "a" / "b").mkdir()
    target.write_text("x")
    seen = collect_until(monitor, lambda seen: seen.get(str(target), Stat(False)).exists)
    assert seen[str(target)].size == 1
    assert monitor.plan.dirs == {str(tmp_path / "a" / "b")}


def test_arrival_by_rename_and_deletion_are_seen(tmp_path: Path, monitor: FileMonitor) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    target = inbox / "in.dat"
    monitor.set_targets([str(target)], NOW)
    monitor.collect(NOW)
    staged = inbox / ".in.dat.part"
    staged.write_text("data")
    os.rename(staged, target)
    seen = collect_until(monitor, lambda seen: str(target) in seen)
    assert seen[str(target)].size == 4
    target.unlink()
    assert collect_until(monitor, lambda seen: str(target) in seen) == {str(target): Stat(False)}


def test_a_watched_directory_deleted_and_recreated(tmp_path: Path, monitor: FileMonitor) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    target = inbox / "in.dat"
    monitor.set_targets([str(target)], NOW)
    monitor.collect(NOW)
    assert monitor.plan.dirs == {str(inbox)}
    shutil.rmtree(inbox)
    collect_until(monitor, lambda _: monitor.plan.dirs == {str(tmp_path)})  # up
    inbox.mkdir()
    collect_until(monitor, lambda _: monitor.plan.dirs == {str(inbox)})  # and back
    target.write_text("again")
    assert collect_until(monitor, lambda seen: str(target) in seen)[str(target)].exists


def test_polled_targets_are_stated_when_their_poll_is_due(tmp_path: Path) -> None:
    slow = tmp_path / "slow"
    slow.mkdir()
    target = slow / "in.dat"
    monitor = FileMonitor(poll_prefixes=[str(slow)], poll_interval=5.0, scan_interval=60.0)
    try:
        monitor.set_targets([str(target)], NOW)
        assert monitor.plan.polled == {str(target)}
        assert monitor.plan.dirs == frozenset()  # no inotify involved
        assert monitor.collect(NOW) == {str(target): Stat(False)}
        target.write_text("x")
        assert not readable(monitor.fileno(), 0.2)
        assert monitor.next_due() == NOW + 5.0
        assert monitor.collect(NOW + 4.9) == {}
        assert monitor.collect(NOW + 5.0)[str(target)].exists
        assert monitor.next_due() == NOW + 10.0
    finally:
        monitor.close()


def test_the_scan_states_every_target_when_due(tmp_path: Path) -> None:
    targets = {str(tmp_path / f"d{i}" / "t") for i in range(3)}
    monitor = FileMonitor(scan_interval=60.0, mounts_text="")
    try:
        monitor.set_targets(targets, NOW)
        assert set(monitor.collect(NOW)) == targets
        assert monitor.collect(NOW + 59.0) == {}
        assert monitor.next_due() == NOW + 60.0
        assert set(monitor.collect(NOW + 60.0)) == targets
        assert monitor.next_due() == NOW + 120.0
    finally:
        monitor.close()


# -- scale -------------------------------------------------------------------------------


def test_ten_thousand_targets_in_a_thousand_directories(tmp_path: Path, watcher: Watcher) -> None:
    dirs = [tmp_path / f"d{i:04}" for i in range(1000)]
    for d in dirs:
        d.mkdir()
    targets = [str(d / f"t{j}") for d in dirs for j in range(10)]
    started = time.perf_counter()
    plan = make_plan(targets, parse_mountinfo(MOUNTINFO), ["/srv"])
    planned = time.perf_counter()
    hits = sum(len(plan.affected(target)) for target in targets)
    looked_up = time.perf_counter()
    assert len(plan.dirs) == 1000 and hits == 10_000
    assert plan.affected(str(dirs[7])) == {str(dirs[7] / f"t{j}") for j in range(10)}
    assert watcher.watch(plan.dirs)
    watching = time.perf_counter()
    print(
        f"\nmake_plan(10k targets, 1k dirs) {1000 * (planned - started):.1f} ms; "
        f"10k affected() {1000 * (looked_up - planned):.1f} ms; "
        f"Watcher start on 1k dirs {1000 * (watching - looked_up):.1f} ms"
    )
    Path(targets[-1]).write_text("")
    take_until(watcher, lambda seen: targets[-1] in seen)
