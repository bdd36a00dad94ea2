"""A batch on its way through a pool slot, in compiled code: one call per batch for each step.

The parent only copies the batch in (``pack_batch``: offsets, cores and the blob, with the
round-robin cores and the per-core counts made in the same pass); everything per event that can
be done in parallel is left to the workers. A worker gathers the bounds of its cores' events,
grouped by core (``select_events``), so that its engine runs each core's events with one call,
reading them where they lie in the slot, and writes their result rows into private columns; it
then puts the rows into the slot at the events' own indexes (``scatter_rows``), where the parent
finds them in event order. The engine runs all of a worker's cores in one call, switching cores
at each segment (``core_segments``); a worker hosting every core runs the batch in its own order
with no gathering at all (``core_runs``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import jitcache  # noqa: F401  (sets the cache folder before anything is compiled)
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
def select_events(offsets: np.ndarray, cores: np.ndarray, mine: np.ndarray, first: np.ndarray, starts: np.ndarray,
                  positions: np.ndarray, in_order: np.ndarray, ev_starts: np.ndarray, ev_ends: np.ndarray
                  ) -> tuple[int, bool]:
    """The events of the cores ``c`` with ``mine[c]``, grouped by core in arrival order; the
    events stay where they are in the batch (``offsets``), only their bounds are gathered.

    Fills ``first`` (the index of each core's first event; -1 for none) and ``starts``
    (core ``c``'s events are grouped positions ``starts[c]`` to ``starts[c+1]``). Returns the
    longest of those events and whether each core's events are already one contiguous run of
    the batch (one core, or explicit steering in core order): then nothing more is filled and
    the caller runs indexes ``first[c]`` to ``first[c] + starts[c+1] - starts[c]`` as they are.
    Otherwise grouped position ``p`` is event ``positions[p]``, which spans bytes
    ``ev_starts[p]`` to ``ev_ends[p]``, and ``in_order`` lists the grouped positions in the
    events' order (``positions[in_order]`` ascends)."""
    n = cores.shape[0]
    ncores = mine.shape[0]
    last = np.full(ncores, -1, np.int64)
    first[:] = -1
    starts[:] = 0
    longest = 0
    for i in range(n):
        c = cores[i]
        if not mine[c]:
            continue
        starts[c + 1] += 1
        longest = max(longest, offsets[i + 1] - offsets[i])
        if first[c] < 0:
            first[c] = i
        last[c] = i
    in_place = True
    for c in range(ncores):
        if first[c] >= 0 and last[c] - first[c] + 1 != starts[c + 1]:
            in_place = False
        starts[c + 1] += starts[c]
    if in_place:
        return longest, True
    at = starts[:ncores].copy()
    j = 0
    for i in range(n):
        c = cores[i]
        if not mine[c]:
            continue
        p = at[c]
        at[c] = p + 1
        positions[p] = i
        in_order[j] = p
        j += 1
        ev_starts[p] = offsets[i]
        ev_ends[p] = offsets[i + 1]
    return longest, False


@njit(cache=True, error_model="numpy")
def scatter_rows(positions: np.ndarray, in_order: np.ndarray, backwards: bool, cols: np.ndarray, meta: np.ndarray,
                 ctx: np.ndarray, out_cols: np.ndarray, out_meta: np.ndarray, out_ctx: np.ndarray) -> None:
    """Result rows from grouped positions to the events' own indexes: row ``p`` of ``cols`` (one
    column per result figure), ``meta`` and ``ctx`` becomes row ``positions[p]`` of the outputs.

    The rows are written in the events' order (``in_order``), so each output column is swept
    once, or in reverse order (``backwards``): two workers writing their rows at the same time
    into the same cache lines (round-robin interleaves them) then meet once, in the middle,
    instead of taking each line from each other all the way along."""
    ncols, n = cols.shape
    mcols, cbytes = meta.shape[1], ctx.shape[1]
    first, last, step = (n - 1, -1, -1) if backwards else (0, n, 1)
    # Column by column: each inner loop then reads one stream and writes one.
    for k in range(ncols):
        src, dst = cols[k], out_cols[k]
        for j in range(first, last, step):
            p = in_order[j]
            dst[positions[p]] = src[p]
    for j in range(first, last, step):
        p = in_order[j]
        i = positions[p]
        for k in range(mcols):
            out_meta[i, k] = meta[p, k]
    if cbytes:
        for j in range(first, last, step):
            p = in_order[j]
            i = positions[p]
            for k in range(cbytes):
                out_ctx[i, k] = ctx[p, k]


@njit(cache=True, error_model="numpy")
def core_runs(offsets: np.ndarray, cores: np.ndarray, row_of: np.ndarray, seg: np.ndarray) -> tuple[int, int]:
    """For a worker hosting every core: its engine runs the events in the batch's own order,
    in place, a segment for each run of consecutive events of one core (round-robin: a segment
    per event). Fills ``seg`` (rows: the core's row in the engine, first event, end) and
    returns the segments' number and the longest event."""
    n = cores.shape[0]
    nseg = 0
    longest = 0
    prev = -1
    for i in range(n):
        longest = max(longest, offsets[i + 1] - offsets[i])
        c = cores[i]
        if c != prev:
            if nseg:
                seg[2, nseg - 1] = i
            seg[0, nseg] = row_of[c]
            seg[1, nseg] = i
            nseg += 1
            prev = c
    if nseg:
        seg[2, nseg - 1] = n
    return nseg, longest


@njit(cache=True, error_model="numpy")
def core_segments(first: np.ndarray, starts: np.ndarray, in_place: bool, row_of: np.ndarray, seg: np.ndarray) -> int:
    """The segments of ``select_events``' grouping, one per hosted core with events: its row in
    the engine, then where its events are (in the batch if ``in_place``, else among the
    grouped positions). Returns their number."""
    nseg = 0
    for c in range(row_of.shape[0]):
        count = starts[c + 1] - starts[c]
        if count == 0:
            continue
        at = first[c] if in_place else starts[c]
        seg[0, nseg] = row_of[c]
        seg[1, nseg] = at
        seg[2, nseg] = at + count
        nseg += 1
    return nseg


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
