"""Batch slots: shared memory through which batches reach the workers and results come back.

A pipe would copy every event several times (pickle, socket buffer, read buffer, unpickle, and
the same again for results); on a two-CPU host that dispatch work competes with the workers
themselves. Instead the parent writes a batch once into a slot, a file in the machine's state
folder that every worker maps, and sends each worker only the slot's number. Each worker picks
out the events steered to its cores, runs them, and writes their result rows straight into the
slot at the events' own indexes, so the rows are already in event order when the parent copies
them out. Pipes carry only what is small or rare: the slot number, timings, trace lines and
records, and packets a program changed.

Layout of a slot holding ``n`` events of ``nbytes`` bytes in all (every part 64-byte aligned)::

    lengths  int64[n]      event sizes
    cores    int32[n]      the emulated core of each event (the parent's steering)
    rows     int64[n, T]   results, one row per event (BatchResult's table columns)
    ctx      uint8[n, C]   context rows of __sk_buff programs (C = 0 otherwise)
    blob     uint8[nbytes] the events, back to back

A slot's file grows by being replaced: a new file under a new generation number, which the
workers map when a message names it.
"""

from __future__ import annotations

import mmap
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ALIGN = 64


def _up(n: int) -> int:
    return (n + ALIGN - 1) & ~(ALIGN - 1)


@dataclass
class SlotViews:
    lengths: np.ndarray
    cores: np.ndarray
    rows: np.ndarray
    ctx: np.ndarray
    blob: np.ndarray


def slot_size(n: int, nbytes: int, cols: int, ctx_bytes: int) -> int:
    return _up(8 * n) + _up(4 * n) + _up(8 * n * cols) + _up(n * ctx_bytes) + _up(nbytes)


def slot_views(buf: np.ndarray, n: int, nbytes: int, cols: int, ctx_bytes: int) -> SlotViews:
    off = 0

    def take(size: int) -> np.ndarray:
        nonlocal off
        part = buf[off:off + size]
        off += _up(size)
        return part

    lengths = take(8 * n).view(np.int64)
    cores = take(4 * n).view(np.int32)
    rows = take(8 * n * cols).view(np.int64).reshape(n, cols)
    ctx = take(n * ctx_bytes).reshape(n, ctx_bytes)
    blob = take(nbytes)
    return SlotViews(lengths, cores, rows, ctx, blob)


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
    """The parent's slots: ``acquire`` blocks while every slot holds a batch in flight (the
    machine's back-pressure), ``release`` frees one when all its workers have answered."""

    def __init__(self, folder: Path, count: int):
        self.folder = Path(folder)
        self._free = list(range(count))
        self._maps: list[SharedFile | None] = [None] * count
        self._gen = [0] * count
        self._cond = threading.Condition()
        self._closed = False

    def acquire(self, size: int) -> tuple[int, int, np.ndarray]:
        """(slot, generation, its bytes) with room for ``size`` bytes."""
        with self._cond:
            while not self._free:
                if self._closed:
                    raise RuntimeError("the machine is closed")
                self._cond.wait()
            i = self._free.pop()
        m = self._maps[i]
        if m is None or m.size < size:
            if m is not None:
                m.close()
                self._path(i, self._gen[i]).unlink(missing_ok=True)
            self._gen[i] += 1
            m = self._maps[i] = SharedFile(self._path(i, self._gen[i]), max(_up(size), 1 << 20), create=True)
        return i, self._gen[i], m.buf

    def release(self, i: int) -> None:
        with self._cond:
            self._free.append(i)
            self._cond.notify()

    def path(self, i: int) -> Path:
        return self._path(i, self._gen[i])

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

    def get(self, i: int, gen: int) -> np.ndarray:
        have = self._maps.get(i)
        if have is None or have[0] != gen:
            if have is not None:
                have[1].close()
            path = self.folder / f"slot-{i}-{gen}"
            m = SharedFile(path, os.path.getsize(path), create=False)
            self._maps[i] = (gen, m)
            have = self._maps[i]
        return have[1].buf

    def close(self) -> None:
        for _, m in self._maps.values():
            m.close()
        self._maps.clear()
