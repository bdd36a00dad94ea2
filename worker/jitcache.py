"""Where Numba keeps the compiled engine on disk.

Numba's own cache is keyed by the source file of each jitted function only, so editing a
helper in another module would leave a stale engine behind. We therefore give each version of
the engine's sources its own cache folder: a hash over every module of this package plus the
Numba version. It also moves the cache out of site-packages, which may be read-only.
Must run before any ``@njit(cache=True)`` function of the package is defined.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numba

# Modules with no compiled code that no compiled module imports from (so no constant of theirs
# is baked into a compiled function): editing them must not throw away a 30-60 s engine compile.
# tests/test_jitcache.py keeps this list honest.
PURE_PYTHON = {"pool.py", "mailbox.py", "recycle.py", "replay.py", "engine.py", "maps.py", "image.py", "tracefmt.py"}


def engine_fingerprint(root: Path | None = None) -> str:
    h = hashlib.sha256(numba.__version__.encode())
    for path in sorted((root or Path(__file__).parent).glob("*.py")):
        if path.name in PURE_PYTHON:
            continue
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def configure() -> Path:
    root = os.environ.get("BPFMC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "bpfmc")
    path = Path(root) / f"jit-{engine_fingerprint()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return Path(numba.config.CACHE_DIR or "")  # unwritable: Numba falls back to its default
    numba.config.CACHE_DIR = str(path)
    return path


CACHE_DIR = configure()


def _tune_llvm() -> None:
    # The interpreter reads registers through a one-entry cache (`cv if i == cd else regs[i]`).
    # LLVM's x86 cmov converter turns such selects inside loops into branches, which mispredict
    # on the data-dependent hit pattern; keep them as cmov.
    import llvmlite.binding as llvm

    llvm.set_option("bpfmc", "-x86-cmov-converter=false")


_tune_llvm()
