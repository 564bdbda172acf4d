"""The copy-loop helpers of fsutil: ordered parallel map, batched directory syncs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from conftest import wait_for

from upgrade_tasks import fsutil


def test_parallel_map_keeps_order_and_uses_threads() -> None:
    seen: set[str] = set()

    def slow_square(x: int) -> int:
        seen.add(threading.current_thread().name)
        time.sleep(0.01 * (5 - x % 5))  # later items finish first
        return x * x

    assert fsutil.parallel_map(slow_square, range(20)) == [x * x for x in range(20)]
    assert len(seen) > 1 and all(n.startswith("praxis-io") for n in seen)


def test_parallel_map_raises_the_error_and_cancels_queued_calls() -> None:
    started: list[int] = []

    def f(x: int) -> int:
        started.append(x)
        if x == 0:
            raise ValueError("boom")
        time.sleep(0.05)
        return x

    with pytest.raises(ValueError, match="boom"):
        fsutil.parallel_map(f, range(100))
    assert len(started) < 100  # the queue was cancelled, not drained


def test_batched_dir_syncs_defers_to_the_end_and_survives_vanished_dirs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[Path] = []
    real = fsutil.fsync_dir

    def spy(path: Path) -> None:
        real(path)  # raises for a vanished directory, which the block skips
        synced.append(Path(path))

    monkeypatch.setattr(fsutil, "fsync_dir", spy)
    with fsutil.batched_dir_syncs():
        for i in range(5):
            fsutil.atomic_write_bytes(tmp_path / "a" / f"f{i}", b"x")
        fsutil.atomic_write_bytes(tmp_path / "gone" / "f", b"x")
        fsutil.durable_unlink(tmp_path / "gone" / "f")
        (tmp_path / "gone").rmdir()
        assert synced == []  # nothing synced inside the block
    assert synced == [tmp_path / "a"]  # once per directory; the vanished one is skipped
    synced.clear()
    fsutil.atomic_write_bytes(tmp_path / "a" / "g", b"y")
    assert synced == [tmp_path / "a"]  # outside a block: at once


def test_discard_tree_takes_it_out_at_once_and_deletes_it_in_the_background(tmp_path: Path) -> None:
    env = tmp_path / ".venvs" / "env-old"
    for i in range(300):
        (env / f"lib{i % 7}").mkdir(parents=True, exist_ok=True)
        (env / f"lib{i % 7}" / f"m{i}.py").write_text("x = 1\n")
    trash = tmp_path / ".upgrade-state" / "trash"
    (trash / "left-by-a-killed-deleter").mkdir(parents=True)
    fsutil.discard_tree(env, trash)
    assert not env.exists()  # gone from its place before the call returns
    wait_for(lambda: not any(trash.iterdir()), timeout=60)  # both deleted, the old one too
    fsutil.discard_tree(tmp_path / "absent", trash)  # nothing there: nothing to do
