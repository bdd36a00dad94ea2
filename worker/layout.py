"""A batch on its way through a pool slot, in compiled code: one call per batch for each step.

The parent only copies the batch in (``pack_batch``: offsets, cores and the blob, with the
round-robin cores and the per-core counts made in the same pass); everything per event that can
be done in parallel is left to the workers. A worker runs its cores' events in the batch's own
order, where they lie in the slot, with one engine call that switches cores at each segment
(``core_runs``: a segment per run of consecutive events of one of its cores), and writes each
result row at its event's index, where the parent finds the rows in event order. The worker's
statistics come from the same segments (``figure_ranges``, ``count_values``, ``gather_values``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import jitcache  # noqa: F401  (sets the cache folder before anything is compiled)
from .helpers import CORE_CYCLES, CORE_EVENTS, CORE_FAULTS, CORE_INSNS
from .intrinsics import copy_bytes


@njit(cache=True, error_model="numpy")
def pack_batch(blob: np.ndarray, lengths: np.ndarray, cores: np.ndarray, rr_first: int, slot_offsets: np.ndarray,
               slot_cores: np.ndarray, slot_blob: np.ndarray, counts: np.ndarray) -> tuple[int, int]:
    """Write a batch into a slot: the blob, the event offsets and each event's core, which is
    ``cores[i]``, or round-robin over ``len(counts)`` cores from core ``rr_first`` if that is not
    negative. ``counts`` gets the events of each core. Returns the shortest length and the
    lengths' sum, for the caller to refuse the batch with: nothing here depends on them being
    valid (the blob is copied by its own size)."""
    n = lengths.shape[0]
    ncores = counts.shape[0]
    counts[:] = 0
    at = 0
    shortest = lengths[0] if n else 0
    slot_offsets[0] = 0
    c = rr_first
    for i in range(n):
        if rr_first >= 0:
            core = c
            c += 1
            if c == ncores:
                c = 0
        else:
            core = cores[i]
        slot_cores[i] = core
        counts[core] += 1
        size = lengths[i]
        shortest = min(shortest, size)
        at += size
        slot_offsets[i + 1] = at
    # memcpy by address: Numba's slice assignment copied byte by byte here (~20 ns per 64-byte
    # event against ~2).
    copy_bytes(slot_blob.ctypes.data, blob.ctypes.data, blob.shape[0])
    return shortest, at


@njit(cache=True, error_model="numpy")
def core_runs(offsets: np.ndarray, cores: np.ndarray, row_of: np.ndarray, seg: np.ndarray) -> tuple[int, int, int]:
    """A worker's segments of a batch: its engine runs the events of the cores it hosts
    (``row_of[c]`` is core ``c``'s row in the engine, -1 for another worker's core) in the
    batch's own order, in place, a segment for each run of consecutive events of one core
    (round-robin: a segment per event). Fills ``seg`` (rows: the core's row in the engine, first
    event, end) and returns the segments' number, their events' number and the longest of
    those events."""
    n = cores.shape[0]
    nseg = 0
    events = 0
    longest = 0
    prev = -1
    for i in range(n):
        c = cores[i]
        if row_of[c] < 0:  # another worker's event: it ends this worker's run
            if prev >= 0:
                seg[2, nseg - 1] = i
                prev = -1
            continue
        events += 1
        longest = max(longest, offsets[i + 1] - offsets[i])
        if c != prev:
            if prev >= 0:
                seg[2, nseg - 1] = i
            seg[0, nseg] = row_of[c]
            seg[1, nseg] = i
            nseg += 1
            prev = c
    if prev >= 0:
        seg[2, nseg - 1] = n
    return nseg, events, longest


@njit(cache=True, error_model="numpy")
def figure_ranges(insns: np.ndarray, cycles: np.ndarray, seg: np.ndarray, nseg: int) -> tuple[int, int, int, int]:
    """The smallest and largest instruction and cycle counts of the segments' events, for a
    worker's statistics, in one pass (``(0, 0, 0, 0)`` for none)."""
    s = 0
    while s < nseg and seg[1, s] == seg[2, s]:
        s += 1
    if s == nseg:
        return 0, 0, 0, 0
    ilo = ihi = insns[seg[1, s]]
    clo = chi = cycles[seg[1, s]]
    while s < nseg:
        # Segments that follow each other (a worker hosting every core has one per event) are
        # taken as one span, and a span as views from 0: indexes that cannot be negative need
        # no wrap-around test, and the loop vectorises (3.5x faster than over the columns).
        first, end = seg[1, s], seg[2, s]
        s += 1
        while s < nseg and seg[1, s] == end:
            end = seg[2, s]
            s += 1
        ins, cyc = insns[first:end], cycles[first:end]
        for i in range(ins.shape[0]):
            ilo, ihi = min(ilo, ins[i]), max(ihi, ins[i])
            clo, chi = min(clo, cyc[i]), max(chi, cyc[i])
    return ilo, ihi, clo, chi


@njit(cache=True, error_model="numpy")
def count_values(values: np.ndarray, seg: np.ndarray, nseg: int, lo: int, counts: np.ndarray) -> None:
    """``counts[v - lo]``: how many of the segments' events have value ``v`` (``counts`` spans
    the values' range)."""
    counts[:] = 0
    for s in range(nseg):
        for i in range(seg[1, s], seg[2, s]):
            counts[values[i] - lo] += 1


@njit(cache=True, error_model="numpy")
def gather_values(values: np.ndarray, seg: np.ndarray, nseg: int, out: np.ndarray) -> None:
    """The segments' events' values, one after another, into ``out``."""
    j = 0
    for s in range(nseg):
        for i in range(seg[1, s], seg[2, s]):
            out[j] = values[i]
            j += 1


# The rows of a batch's per-core figures (``core_figures``), as a worker's reply carries them.
FIG_BUSY, FIG_EVENTS, FIG_INSNS, FIG_CYCLES = range(4)


@njit(cache=True, error_model="numpy")
def counters_before(table: np.ndarray, before: np.ndarray) -> None:
    """Each hosted core's event, instruction, cycle and fault counters (rows of ``before``,
    a column per core) as they stand before a batch."""
    for r in range(table.shape[0]):
        before[0, r] = table[r, CORE_EVENTS]
        before[1, r] = table[r, CORE_INSNS]
        before[2, r] = table[r, CORE_CYCLES]
        before[3, r] = table[r, CORE_FAULTS]


@njit(cache=True, error_model="numpy")
def core_figures(table: np.ndarray, before: np.ndarray, busy: int, out: np.ndarray) -> int:
    """A batch's figures per hosted core into ``out`` (int64 rows ``FIG_*``: busy ns, events,
    instructions, cycles; a column per core), from the counters' growth since ``before``;
    returns the faults. The cores ran in one call, so its time ``busy`` is shared out in
    proportion to the cycles each core ran (the model's cost of its events), or to the events
    if no core ran a cycle."""
    ncores = table.shape[0]
    faults = 0
    total_cycles = 0
    total_events = 0
    for r in range(ncores):
        out[FIG_EVENTS, r] = np.int64(table[r, CORE_EVENTS] - before[0, r])
        out[FIG_INSNS, r] = np.int64(table[r, CORE_INSNS] - before[1, r])
        out[FIG_CYCLES, r] = np.int64(table[r, CORE_CYCLES] - before[2, r])
        faults += np.int64(table[r, CORE_FAULTS] - before[3, r])
        total_cycles += out[FIG_CYCLES, r]
        total_events += out[FIG_EVENTS, r]
    weight_row = FIG_CYCLES if total_cycles > 0 else FIG_EVENTS
    total = max(total_cycles if total_cycles > 0 else total_events, 1)
    for r in range(ncores):
        out[FIG_BUSY, r] = np.int64(busy * (out[weight_row, r] / total))
    return faults
