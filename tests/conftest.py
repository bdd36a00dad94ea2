"""Shared test plumbing. Keep it small: fixtures used by many test modules only.

``SHARED`` is the shared data folder (conformance suite, benchmarks): ``$BPFMC_SHARED`` if set,
else ``<repo>/../shared``; ``None`` when neither exists, and tests that need it skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_dir() -> Path | None:
    env = os.environ.get("BPFMC_SHARED")
    for candidate in ([Path(env)] if env else []) + [REPO.parent / "shared"]:
        if candidate.is_dir():
            return candidate
    return None


SHARED = shared_dir()
CONFORMANCE = SHARED / "conformance" if SHARED is not None else None


def conformance_files(subdir: str, pattern: str = "*.data") -> list[Path]:
    """Files of ``conformance/<subdir>`` for parametrizing at collection time ([] if absent)."""
    if CONFORMANCE is None:
        return []
    return sorted((CONFORMANCE / subdir).glob(pattern))


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    if CONFORMANCE is None or not CONFORMANCE.is_dir():
        pytest.skip("shared conformance data not found (set BPFMC_SHARED)")
    return CONFORMANCE


# --- the host kernel as reference (ebpf/kernel.py) ------------------------------------------

CLANG = os.environ.get("BPFMC_CLANG", "clang-19")
# Debian keeps asm/ headers under the multiarch directory, which -target bpf does not search.
BPF_CFLAGS = ["-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu"]


def kernel_skip_reason() -> str | None:
    """Why kernel-differential tests cannot run here, or None when they can."""
    from bpfmc.ebpf import kernel

    ok, reason = kernel.available()
    return None if ok else f"host kernel bpf() unavailable: {reason}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Every @pytest.mark.kernel test is skipped, with the probe's reason, where bpf() is refused,
    # so no test has to remember to ask.
    marked = [item for item in items if item.get_closest_marker("kernel")]
    if not marked:
        return
    reason = kernel_skip_reason()
    if reason:
        for item in marked:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def kernel() -> ModuleType:
    """The ``bpfmc.ebpf.kernel`` module, skipping the test when the host kernel cannot be used."""
    reason = kernel_skip_reason()
    if reason:
        pytest.skip(reason)
    from bpfmc.ebpf import kernel as mod

    return mod


@pytest.fixture
def libbpf(kernel: ModuleType) -> ModuleType:
    """Like ``kernel``, and also skips when libbpf.so.1 cannot be loaded through ctypes."""
    ok, reason = kernel.libbpf_available()
    if not ok:
        pytest.skip(f"libbpf unavailable: {reason}")
    return kernel


@pytest.fixture
def bpf_cc(tmp_path: Path) -> Callable[..., Path]:
    """Compile eBPF C to an object: ``bpf_cc(source_text_or_path, *extra_flags) -> Path``.
    Skips the test when clang is missing."""
    if shutil.which(CLANG) is None:
        pytest.skip(f"{CLANG} not installed")

    def compile_(source: str | Path, *flags: str) -> Path:
        if isinstance(source, Path):
            src = source
        else:
            src = tmp_path / f"prog{len(list(tmp_path.glob('*.c')))}.c"
            src.write_text(source)
        out = tmp_path / (src.stem + ".o")
        proc = subprocess.run([CLANG, *BPF_CFLAGS, *flags, "-c", str(src), "-o", str(out)],
                              capture_output=True, text=True)
        if proc.returncode:
            raise AssertionError(f"{CLANG} failed on {src}:\n{proc.stderr}")
        return out

    return compile_
