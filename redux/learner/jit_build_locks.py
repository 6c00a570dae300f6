"""Stale lock files left by an interrupted JIT build of a torch C++ extension.

DeepSpeed JIT-compiles a communication op (``deepspeed_shm_comm``) the first time an
engine starts on the CPU accelerator, and reloads it through torch's extension
loader on every later start. The loader guards each build folder with a bare
``lock`` file and waits, without end, for that file to disappear. A process killed
while holding it (Ctrl-C during the first build, an OOM kill, a timed-out job)
leaves the file behind, and from then on every learner on the machine hangs in
``deepspeed.initialize`` with no message. The file records no owner, so the only
safe sign that nobody holds it is age: no build here takes anywhere near as long
as the bound the learner config sets.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from torch.utils.cpp_extension import get_default_build_root

log = logging.getLogger(__name__)

_LOCK_NAME = "lock"


def extension_build_root() -> Path:
    """The folder torch builds JIT extensions under (TORCH_EXTENSIONS_DIR wins, as in torch)."""
    return Path(os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root())


def _locks(root: Path) -> list[Path]:
    # build folders sit at root/<name> with TORCH_EXTENSIONS_DIR set, else at root/<python>_<accelerator>/<name>
    if not root.is_dir():
        return []
    return [*root.glob(f"*/{_LOCK_NAME}"), *root.glob(f"*/*/{_LOCK_NAME}")]


def clear_stale_build_locks(stale_after_s: float, root: Path | None = None) -> list[Path]:
    """Delete extension build locks older than ``stale_after_s``; return what was deleted."""
    root = extension_build_root() if root is None else root
    now = time.time()
    removed = []
    for lock in _locks(root):
        try:
            age_s = now - lock.stat().st_mtime
            if age_s <= stale_after_s:
                continue
            lock.unlink()
        except FileNotFoundError:
            continue  # its holder finished meanwhile
        log.warning(
            "removed %s, a JIT build lock %.0f s old left by an interrupted build; "
            "without this every DeepSpeed start would wait on it for ever", lock, age_s,
        )
        removed.append(lock)
    return removed


def settle_build_locks(stale_after_s: float, root: Path | None = None, poll_s: float = 1.0) -> list[Path]:
    """Wait while younger locks are held, and remove each once it is older than the bound.

    A young lock is either a build in progress (it goes when the build ends) or one a
    build killed moments ago left (it never goes); torch cannot tell them apart and
    would wait on the second for ever, so wait here, where the wait has an end.
    """
    root = extension_build_root() if root is None else root
    removed = clear_stale_build_locks(stale_after_s, root)
    while _locks(root):
        time.sleep(poll_s)
        removed += clear_stale_build_locks(stale_after_s, root)
    return removed
