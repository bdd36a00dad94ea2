"""Helper functions (``call N``), by their Linux helper ids.

``call_helper`` is the one hook the interpreter calls; every helper is a case in it, so the
whole engine stays one compiled unit with no indirect calls. Helpers read their arguments from
r1-r5, write r0, and return a status: 0 to continue, or a fault code that ends the run.
Per-core state (core id, clock, random state) lives in the ``core`` array.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import jitcache  # noqa: F401  (sets the cache folder before anything is compiled)

# Linux helper ids (include/uapi/linux/bpf.h, __BPF_FUNC_MAPPER order).
BPF_FUNC_ktime_get_ns = 5
BPF_FUNC_get_prandom_u32 = 7
BPF_FUNC_get_smp_processor_id = 8
BPF_FUNC_ktime_get_boot_ns = 125

HELPER_NAMES = {
    BPF_FUNC_ktime_get_ns: "bpf_ktime_get_ns",
    BPF_FUNC_get_prandom_u32: "bpf_get_prandom_u32",
    BPF_FUNC_get_smp_processor_id: "bpf_get_smp_processor_id",
    BPF_FUNC_ktime_get_boot_ns: "bpf_ktime_get_boot_ns",
}
SUPPORTED_HELPERS = frozenset(HELPER_NAMES)

# Layout of the per-core state array (uint64).
CORE_ID = 0
CORE_CLOCK_HZ = 1
CORE_TIME_BASE_NS = 2  # virtual time at the start of the current run
CORE_PRNG = 3  # xorshift64* state, never 0
CORE_STATE_SIZE = 8

# Helper statuses.
HELPER_OK = 0
HELPER_UNKNOWN = 1


def new_core_state(core_id: int, clock_hz: int, seed: int) -> np.ndarray:
    core = np.zeros(CORE_STATE_SIZE, np.uint64)
    core[CORE_ID] = core_id
    core[CORE_CLOCK_HZ] = clock_hz
    # Distinct, reproducible streams per core from one seed (splitmix64 of seed and core id).
    core[CORE_PRNG] = _splitmix64((seed * 0x9E3779B97F4A7C15 + core_id + 1) & 0xFFFFFFFFFFFFFFFF) or 1
    return core


def _splitmix64(x: int) -> int:
    m = 0xFFFFFFFFFFFFFFFF
    x = (x + 0x9E3779B97F4A7C15) & m
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & m
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & m
    return x ^ (x >> 31)


@njit(cache=True)
def virtual_time_ns(core, cycles):
    # The core's clock: time at the start of the run plus the cycles run so far.
    return core[CORE_TIME_BASE_NS] + np.uint64(cycles) * np.uint64(1_000_000_000) // core[CORE_CLOCK_HZ]


@njit(cache=True)
def prandom_u32(core):
    x = core[CORE_PRNG]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    core[CORE_PRNG] = x
    return (x * np.uint64(0x2545F4914F6CDD1D)) >> np.uint64(32)


@njit(cache=True)
def call_helper(helper_id, regs, core, cycles):
    if helper_id == BPF_FUNC_ktime_get_ns or helper_id == BPF_FUNC_ktime_get_boot_ns:
        regs[0] = virtual_time_ns(core, cycles)
    elif helper_id == BPF_FUNC_get_prandom_u32:
        regs[0] = prandom_u32(core)
    elif helper_id == BPF_FUNC_get_smp_processor_id:
        regs[0] = core[CORE_ID]
    else:
        return HELPER_UNKNOWN
    return HELPER_OK
