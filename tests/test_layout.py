"""The compiled per-batch passes of the pool (worker/layout.py) against plain numpy."""

from __future__ import annotations

import numpy as np
import pytest

from bpfmc.worker import layout
from bpfmc.worker.layout import pack_batch, scatter_rows, select_events


def _batch(rng, n: int):
    lengths = rng.integers(0, 40, n).astype(np.int64)
    blob = rng.integers(0, 256, int(lengths.sum()), dtype=np.uint8)
    return blob, lengths


@pytest.mark.parametrize("rr_first", [-1, 0, 3])
def test_pack_batch(rr_first):
    rng = np.random.default_rng(1)
    blob, lengths = _batch(rng, 300)
    ncores = 5
    given = rng.integers(0, ncores, 300).astype(np.int32)
    offsets, cores = np.empty(301, np.int64), np.empty(300, np.int32)
    out_blob, counts = np.empty(len(blob), np.uint8), np.empty(ncores, np.int64)
    shortest, total = pack_batch(blob, lengths, given, rr_first, offsets, cores, out_blob, counts)
    want = given if rr_first < 0 else ((rr_first + np.arange(300)) % ncores).astype(np.int32)
    assert (cores == want).all()
    assert (offsets == np.concatenate(([0], np.cumsum(lengths)))).all()
    assert (out_blob == blob).all()
    assert counts.tolist() == np.bincount(want, minlength=ncores).tolist()
    assert (shortest, total) == (lengths.min(), lengths.sum())


def test_pack_batch_reports_bad_lengths_without_reading_past_the_blob():
    blob = np.arange(10, dtype=np.uint8)
    out_blob = np.zeros(10, np.uint8)
    args = (np.empty(3, np.int64), np.empty(2, np.int32), out_blob, np.empty(2, np.int64))
    assert pack_batch(blob, np.array([4, -1]), np.zeros(0, np.int32), 0, *args) == (-1, 3)
    assert pack_batch(blob, np.array([40, 1]), np.zeros(0, np.int32), 0, *args) == (1, 41)
    assert (out_blob == blob).all()


def _select(offsets, cores, mine):
    n = len(cores)
    first, starts = np.empty(len(mine), np.int64), np.empty(len(mine) + 1, np.int64)
    positions, in_order, ev_starts, ev_ends = (np.full(n, -1, np.int64) for _ in range(4))
    longest, in_place = select_events(offsets, cores, mine, first, starts, positions, in_order, ev_starts, ev_ends)
    return longest, in_place, first, starts, positions, in_order, ev_starts, ev_ends


@pytest.mark.parametrize("hosted", [[0, 2], [1], [0, 1, 2, 3]])
def test_select_events_groups_the_hosted_cores(hosted):
    rng = np.random.default_rng(2)
    _, lengths = _batch(rng, 200)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    cores = rng.integers(0, 4, 200).astype(np.int32)
    mine = np.isin(np.arange(4), hosted)
    longest, in_place, first, starts, positions, in_order, ev_starts, ev_ends = _select(offsets, cores, mine)
    assert not in_place
    order = np.concatenate([np.flatnonzero(cores == c) for c in range(4) if mine[c]])
    m = len(order)
    assert (positions[:m] == order).all()
    assert (positions[in_order[:m]] == np.sort(order)).all()
    assert (ev_starts[:m] == offsets[order]).all() and (ev_ends[:m] == offsets[order + 1]).all()
    assert np.diff(starts).tolist() == [int((cores == c).sum()) if mine[c] else 0 for c in range(4)]
    assert longest == lengths[order].max()
    assert first.tolist() == [int(np.flatnonzero(cores == c)[0]) if mine[c] else -1 for c in range(4)]


def test_select_events_leaves_runs_in_place():
    offsets = np.arange(0, 70, 10, dtype=np.int64)
    cores = np.array([3, 3, 1, 1, 1, 0], np.int32)  # core 2 has none; each other core one run
    longest, in_place, first, starts, *_ = _select(offsets, cores, np.array([True, True, False, True]))
    assert in_place and longest == 10
    assert first.tolist() == [5, 2, -1, 0] and np.diff(starts).tolist() == [1, 3, 0, 2]


@pytest.mark.parametrize("backwards", [False, True])
def test_scatter_rows(backwards):
    rng = np.random.default_rng(3)
    positions = rng.permutation(50)[:30].astype(np.int64)
    in_order = np.argsort(positions)
    cols, meta = rng.integers(0, 99, (6, 30)), rng.integers(0, 99, (30, 5))
    ctx = rng.integers(0, 255, (30, 7), dtype=np.uint8)
    out_cols, out_meta, out_ctx = np.zeros((6, 50), np.int64), np.zeros((50, 5), np.int64), np.zeros((50, 7), np.uint8)
    scatter_rows(positions, in_order, backwards, cols, meta, ctx, out_cols, out_meta, out_ctx)
    assert (out_cols[:, positions] == cols).all() and (out_meta[positions] == meta).all()
    assert (out_ctx[positions] == ctx).all()
    untouched = np.setdiff1d(np.arange(50), positions)
    assert not out_cols[:, untouched].any() and not out_meta[untouched].any()


def test_core_runs_cut_the_batch_where_the_core_changes():
    offsets = np.array([0, 5, 9, 30, 31, 40, 41], np.int64)
    cores = np.array([2, 2, 0, 1, 1, 2], np.int32)
    seg = np.full((3, 6), -1, np.int64)
    row_of = np.array([1, 2, 0], np.int64)
    assert layout.core_runs(offsets, cores, row_of, seg) == (4, 21)
    assert seg[:, :4].tolist() == [[0, 1, 2, 0], [0, 2, 3, 5], [2, 3, 5, 6]]
    assert layout.core_runs(offsets[:1], cores[:0], row_of, seg) == (0, 0)


@pytest.mark.parametrize("in_place", [False, True])
def test_core_segments_one_per_core_with_events(in_place):
    first = np.array([5, -1, 0, 2], np.int64)
    starts = np.array([0, 1, 1, 3, 6], np.int64)  # counts 1, 0, 2, 3
    seg = np.full((3, 4), -1, np.int64)
    row_of = np.array([0, -1, 1, 2], np.int64)
    assert layout.core_segments(first, starts, in_place, row_of, seg) == 3
    want_first = [5, 0, 2] if in_place else [0, 1, 3]
    assert seg[:, :3].tolist() == [[0, 1, 2], want_first, [a + n for a, n in zip(want_first, (1, 2, 3), strict=True)]]


def test_figures_of_segments():
    insns, cycles = np.array([5, 3, 9, 3, 1, 7]), np.array([7, 7, 7, 8, 2, 2])
    seg = np.array([[0, 1], [3, 0], [4, 3]], np.int64)  # events 3, then 0-2; 4 and 5 not mine
    assert layout.figure_ranges(insns, cycles, seg, 2) == (3, 9, 7, 8)
    assert layout.figure_ranges(insns, cycles, seg, 0) == (0, 0, 0, 0)
    one_each = np.array([[0, 1, 0, 1], [1, 2, 3, 4], [2, 3, 4, 6]], np.int64)  # taken as one span 1-6
    assert layout.figure_ranges(insns, cycles, one_each, 4) == (1, 9, 2, 8)
    counts = np.full(7, -1, np.int64)
    layout.count_values(insns, seg, 2, 3, counts)
    assert counts.tolist() == [2, 0, 1, 0, 0, 0, 1]
    out = np.zeros(4, np.int64)
    layout.gather_values(cycles, seg, 2, out)
    assert out.tolist() == [8, 7, 7, 7]
