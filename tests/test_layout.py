"""The compiled per-batch passes of the pool (worker/layout.py) against plain numpy."""

from __future__ import annotations

import numpy as np
import pytest

from bpfmc.worker import layout
from bpfmc.worker.layout import pack_batch


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


def test_core_runs_cut_the_batch_where_the_core_changes():
    offsets = np.array([0, 5, 9, 30, 31, 40, 41], np.int64)
    cores = np.array([2, 2, 0, 1, 1, 2], np.int32)
    seg = np.full((3, 6), -1, np.int64)
    row_of = np.array([1, 2, 0], np.int64)
    assert layout.core_runs(offsets, cores, row_of, seg) == (4, 6, 21)
    assert seg[:, :4].tolist() == [[0, 1, 2, 0], [0, 2, 3, 5], [2, 3, 5, 6]]
    assert layout.core_runs(offsets[:1], cores[:0], row_of, seg) == (0, 0, 0)


def test_core_runs_skip_the_other_workers_events():
    offsets = np.array([0, 5, 9, 30, 31, 40, 41, 50], np.int64)
    cores = np.array([0, 1, 1, 2, 3, 0, 0], np.int32)  # this worker hosts cores 0 and 2
    row_of = np.array([0, -1, 1, -1], np.int64)
    seg = np.full((3, 7), -1, np.int64)
    assert layout.core_runs(offsets, cores, row_of, seg) == (3, 4, 9)  # events 0, 3, 5, 6 (the 21-byte one is not its)
    assert seg[:, :3].tolist() == [[0, 1, 0], [0, 3, 5], [1, 4, 7]]
    assert layout.core_runs(offsets[:3], cores[1:3], row_of, seg)[0] == 0  # none of its cores


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


@pytest.mark.parametrize("ran_cycles", [True, False])
def test_core_figures_share_busy_time_by_cycles_else_events(ran_cycles):
    from bpfmc.worker.helpers import CORE_CYCLES, CORE_EVENTS, CORE_FAULTS, CORE_INSNS, new_core_table

    table = new_core_table([4, 6, 9], 1_000_000_000, 0)
    table[:, CORE_EVENTS] = [10, 20, 30]  # counters from earlier batches
    before = np.empty((4, 3), np.uint64)
    layout.counters_before(table, before)
    events, insns, cycles, faults = [3, 1, 0], [30, 5, 0], [20, 60, 0] if ran_cycles else [0, 0, 0], [1, 0, 0]
    for col, grow in ((CORE_EVENTS, events), (CORE_INSNS, insns), (CORE_CYCLES, cycles), (CORE_FAULTS, faults)):
        table[:, col] += np.array(grow, np.uint64)
    out = np.empty((4, 3), np.int64)
    assert layout.core_figures(table, before, 8000, out) == 1
    assert out[1:].tolist() == [events, insns, cycles]
    assert out[0].tolist() == ([2000, 6000, 0] if ran_cycles else [6000, 2000, 0])
