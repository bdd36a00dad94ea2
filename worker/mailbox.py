"""Batch slots: shared memory through which batches reach the workers and results come back.

A pipe would copy every event several times (pickle, socket buffer, read buffer, unpickle, and
the same again for results); on a two-CPU host that dispatch work competes with the workers
themselves. Instead the parent writes a batch once into a slot, a file in the machine's state
folder that every worker maps, and sends each worker only the slot's number. Each worker picks
out the events steered to its cores, runs them where they lie, and writes their result rows into
the slot at the events' own indexes (:mod:`.layout` does the per-event parts in compiled code),
so the rows are in event order when the batch is done: a result takes them as its own arrays
(the slot is lent to it), or a copy when too many slots are lent already. Pipes carry only what
is small or rare: the slot number, timings, trace lines and records, and packets a program
changed.

Layout of a slot holding ``n`` events of ``nbytes`` bytes in all (every part 64-byte aligned)::

    offsets  int64[n + 1]   event i is blob[offsets[i]:offsets[i+1]]
    cores    int32[n]       the emulated core of each event (the parent's steering)
    cols     int64[F, n]    results, one column per figure (F = 6: r0, insns, cycles, status, pc, aux)
    meta     int64[n, M]    results: BatchResult.meta rows
    ctx      uint8[n, C]    context rows of __sk_buff programs (C = 0 otherwise)
    blob     uint8[nbytes]  the events, back to back

A slot's file grows by being replaced: a new file under a new generation number, which the
workers map when a message names it.
"""

from __future__ import annotations

import mmap
import os
import sys
import threading
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

ALIGN = 64


def _up(n: int) -> int:
    return (n + ALIGN - 1) & ~(ALIGN - 1)


@dataclass
class SlotViews:
    offsets: np.ndarray
    cores: np.ndarray
    cols: np.ndarray
    meta: np.ndarray
    ctx: np.ndarray
    blob: np.ndarray
    # A worker's engine arguments made from these views, kept with them (see
    # ``pool._engine_columns``) so that they go when a remapped slot drops its views.
    engine_columns: tuple | None = None


@dataclass(frozen=True)
class SlotShape:
    """What a slot holds: ``n`` events of ``nbytes`` bytes, results of ``cols`` figures,
    ``meta_cols`` meta columns and ``ctx_bytes`` context bytes per event. Get one from
    :func:`slot_shape`, which keeps the ones in use (their part bounds computed once)."""

    n: int
    nbytes: int
    cols: int
    meta_cols: int
    ctx_bytes: int

    def parts(self) -> tuple[int, ...]:
        n = self.n
        return 8 * (n + 1), 4 * n, 8 * self.cols * n, 8 * n * self.meta_cols, n * self.ctx_bytes, self.nbytes

    @cached_property
    def _bounds(self) -> list[tuple[int, int]]:
        out, off = [], 0
        for size in self.parts():
            out.append((off, off + size))
            off += _up(size)
        return out

    def size(self) -> int:
        return self._bounds[-1][0] + _up(self.nbytes)

    def views(self, buf: np.ndarray) -> SlotViews:
        (o0, o1), (c0, c1), (f0, f1), (m0, m1), (x0, x1), (b0, b1) = self._bounds
        n = self.n
        return SlotViews(buf[o0:o1].view(np.int64), buf[c0:c1].view(np.int32),
                         buf[f0:f1].view(np.int64).reshape(self.cols, n),
                         buf[m0:m1].view(np.int64).reshape(n, self.meta_cols), buf[x0:x1].reshape(n, self.ctx_bytes),
                         buf[b0:b1])


@lru_cache(maxsize=64)
def slot_shape(n: int, nbytes: int, cols: int, meta_cols: int, ctx_bytes: int) -> SlotShape:
    return SlotShape(n, nbytes, cols, meta_cols, ctx_bytes)


class SharedFile:
    """A file of the state folder mapped into this process (created and sized, or opened)."""

    def __init__(self, path: Path, size: int, create: bool):
        fd = os.open(path, os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0), 0o600)
        try:
            if create:
                os.ftruncate(fd, size)
            self.mmap = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self.buf = np.frombuffer(self.mmap, np.uint8)
        self.size = size

    def close(self) -> None:
        self.buf = None
        try:
            self.mmap.close()
        except BufferError:
            pass  # a view still lives (a result not yet copied out); the mapping goes with it


class SlotPool:
    """The parent's slots. ``acquire`` blocks while ``in_flight`` batches are in flight (the
    machine's back-pressure) and hands out a slot that neither a batch in flight nor a result
    refers to; ``release`` ends a batch's flight.

    A result may keep its slot's rows as its own arrays instead of a copy (``may_lend``): the
    slot is then reused only once nothing refers to its memory any more, which Python's
    reference count tells exactly (as in :mod:`.recycle`). At most ``lend`` slots of at most
    ``lend_bytes`` in all are lent at once; past that a result is copied out, so a caller that
    holds on to every result does not make the pool map ever more memory, and there is always
    a slot free for a batch to fly in."""

    def __init__(self, folder: Path, in_flight: int, lend: int = 0, lend_bytes: int = 0):
        self.folder = Path(folder)
        self._in_flight = in_flight
        self._lend, self._lend_bytes = lend, lend_bytes
        self._maps: list[SharedFile] = []
        self._gen: list[int] = []
        self._busy: set[int] = set()
        self._cond = threading.Condition()
        self._closed = False

    def _referenced(self, i: int) -> bool:
        # Referrers of an unused slot's array: its SharedFile, and getrefcount's argument.
        return sys.getrefcount(self._maps[i].buf) > 2

    def acquire(self, size: int) -> tuple[int, int, np.ndarray]:
        """(slot, generation, its bytes) with room for ``size`` bytes."""
        with self._cond:
            while len(self._busy) >= self._in_flight:
                if self._closed:
                    raise RuntimeError("the machine is closed")
                self._cond.wait()
            if self._closed:
                raise RuntimeError("the machine is closed")
            free = [i for i in range(len(self._maps)) if i not in self._busy and not self._referenced(i)]
            i = next((i for i in free if self._maps[i].size >= size), free[0] if free else len(self._maps))
            if i == len(self._maps):
                self._maps.append(None)
                self._gen.append(0)
            m = self._maps[i]
            if m is None or m.size < size:
                if m is not None:
                    m.close()
                    self._path(i, self._gen[i]).unlink(missing_ok=True)
                self._gen[i] += 1
                m = self._maps[i] = SharedFile(self._path(i, self._gen[i]), max(_up(size), 1 << 20), create=True)
            self._busy.add(i)
            return i, self._gen[i], m.buf

    def may_lend(self, i: int) -> bool:
        """Whether the result of the batch in slot ``i`` may keep the slot's memory."""
        with self._cond:
            if len(self._maps) <= self._lend and sum(m.size for m in self._maps) <= self._lend_bytes:
                return True  # even were every other slot lent
            lent = [j for j in range(len(self._maps)) if j not in self._busy and self._referenced(j)]
            return (len(lent) < self._lend
                    and sum(self._maps[j].size for j in lent) + self._maps[i].size <= self._lend_bytes)

    def release(self, i: int) -> None:
        """The batch in slot ``i`` is over; drop every reference to the slot's memory that a
        result is not to keep before calling this."""
        with self._cond:
            self._busy.discard(i)
            self._cond.notify()

    def _path(self, i: int, gen: int) -> Path:
        return self.folder / f"slot-{i}-{gen}"

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for i, m in enumerate(self._maps):
            if m is not None:
                m.close()
                self._path(i, self._gen[i]).unlink(missing_ok=True)


class SlotMaps:
    """A worker's mappings of the parent's slots, remapped when a slot's generation changes."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._maps: dict[int, tuple[int, SharedFile]] = {}
        self._views: dict[int, tuple[int, SlotShape, SlotViews]] = {}

    def get(self, i: int, gen: int) -> np.ndarray:
        have = self._maps.get(i)
        if have is None or have[0] != gen:
            if have is not None:
                self._views.pop(i, None)  # views of the old mapping would keep it from closing
                have[1].close()
            path = self.folder / f"slot-{i}-{gen}"
            m = SharedFile(path, os.path.getsize(path), create=False)
            self._maps[i] = (gen, m)
            have = self._maps[i]
        return have[1].buf

    def views(self, i: int, gen: int, shape: SlotShape) -> SlotViews:
        """Slot ``i``'s parts for a batch of ``shape``, kept while a stream repeats the slot's
        generation and the shape (building them took several µs per batch)."""
        have = self._views.get(i)
        if have is not None and have[0] == gen and have[1] == shape:
            return have[2]
        views = shape.views(self.get(i, gen))
        self._views[i] = (gen, shape, views)
        return views

    def close(self) -> None:
        self._views.clear()
        for _, m in self._maps.values():
            m.close()
        self._maps.clear()
