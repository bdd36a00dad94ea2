"""Folders of shared state (map files, pool slots) that outlive no one.

A folder's name carries the pid of the process that made it (``<prefix><pid>-<random>``), so
when that process dies before it can clean up (``kill -9``, a crash), the next process to make
a folder of the same kind, or a worker that outlives its machine, can tell the folder is
orphaned and remove it. Files a live process still maps stay valid after removal (tmpfs keeps
them until unmapped), so removing an orphan never pulls memory from under anyone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


def shm_root() -> str | None:
    """``/dev/shm`` where it is writable (state in RAM), else None (the system's temp folder)."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def make(prefix: str, root: str | None) -> Path:
    """A new folder owned by this process, after sweeping the orphans of the same kind."""
    sweep_orphaned(root, prefix)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=root))


def owner_alive(folder: Path, prefix: str) -> bool:
    """Whether the process that made ``folder`` (its pid follows ``prefix``) still runs."""
    try:
        pid = int(folder.name[len(prefix):].split("-", 1)[0])
    except ValueError:
        return True  # not ours to judge
    try:
        with open(f"/proc/{pid}/stat") as f:
            # A zombie has died: its parent just has not collected it yet.
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        return True  # no /proc: not ours to judge


def remove_if_orphaned(folder: Path, prefix: str) -> None:
    if folder.name.startswith(prefix) and not owner_alive(folder, prefix):
        shutil.rmtree(folder, ignore_errors=True)


def sweep_orphaned(root: str | None, prefix: str) -> None:
    """Remove the ``prefix`` folders in ``root`` whose owner died. A pid reused since is taken
    as alive: such a folder waits for a later sweep."""
    if root is None:
        return
    with contextlib.suppress(OSError):
        for entry in os.scandir(root):
            if entry.name.startswith(prefix):
                remove_if_orphaned(Path(entry.path), prefix)
