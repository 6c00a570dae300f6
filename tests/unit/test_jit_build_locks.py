"""Stale torch extension build locks: old ones go, a build in progress keeps its own."""

import os
import threading
import time

from redux.learner.jit_build_locks import clear_stale_build_locks, extension_build_root, settle_build_locks


def _lock(folder, age_s):
    folder.mkdir(parents=True)
    lock = folder / "lock"
    lock.touch()
    then = time.time() - age_s
    os.utime(lock, (then, then))
    return lock


def test_only_locks_older_than_the_bound_are_removed_at_both_folder_depths(tmp_path):
    stale_default_layout = _lock(tmp_path / "py311_cpu" / "deepspeed_shm_comm", age_s=3600)
    stale_env_layout = _lock(tmp_path / "cpu_adam", age_s=3600)
    building = _lock(tmp_path / "py311_cpu" / "fused_op", age_s=30)
    build_output = tmp_path / "py311_cpu" / "deepspeed_shm_comm" / "deepspeed_shm_comm.so"
    build_output.touch()
    os.utime(build_output, (0, 0))

    removed = clear_stale_build_locks(600.0, root=tmp_path)

    assert sorted(removed) == sorted([stale_default_layout, stale_env_layout])
    assert not stale_default_layout.exists() and not stale_env_layout.exists()
    assert building.exists() and build_output.exists()


def test_a_missing_build_root_is_nothing_to_clear(tmp_path):
    assert clear_stale_build_locks(600.0, root=tmp_path / "never-built") == []


def test_the_build_root_follows_torch_extensions_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    assert extension_build_root() == tmp_path
    _lock(tmp_path / "deepspeed_shm_comm", age_s=3600)
    assert clear_stale_build_locks(600.0) == [tmp_path / "deepspeed_shm_comm" / "lock"]


def test_settling_waits_for_a_build_in_progress_to_release_its_lock(tmp_path):
    lock = _lock(tmp_path / "py311_cpu" / "deepspeed_shm_comm", age_s=0)
    builder = threading.Timer(0.3, lock.unlink)
    builder.start()
    assert settle_build_locks(600.0, root=tmp_path, poll_s=0.05) == []
    builder.join()
    assert not lock.exists()


def test_settling_removes_a_young_orphan_once_it_is_older_than_the_bound(tmp_path):
    orphan = _lock(tmp_path / "py311_cpu" / "deepspeed_shm_comm", age_s=0)
    assert settle_build_locks(0.3, root=tmp_path, poll_s=0.05) == [orphan]
    assert not orphan.exists()
