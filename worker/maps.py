"""Map storage: one memory-mapped file per map, and the user-space view of it.

Layout of a map file (all areas 64-byte aligned; see ``mapops`` for the hot header words):

    header (4 KiB)   hot words (count, free-stack head, bump, clock hand, queue head/tail), then
                     the static description (type, sizes, offsets) so another process can map
                     the same file and rebuild the descriptor
    buckets          hash maps: u32 head per bucket (element index + 1)
    locks            hash maps: u32 lock words, owner-stamped (bucket % nlocks)
    refbits          LRU maps: one reference byte per element
    elements         hash maps: per element u32 next, u32 hash, key padded to 8
    values           round_up(value_size, 8) per slot; per-CPU maps: one row per CPU, each row
                     padded to a cache line, so each core writes only its own row

Values live apart from keys and chain links, so a program holding a value pointer can never
reach a map's structure. Files sit in a state directory: a private tmpfs folder by default,
removed when the store closes.
"""

from __future__ import annotations

import mmap
import os
import shutil
import struct
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bpfmc.ebpf import maps as mt

from . import mapops as ops
from . import statedir

MAP_TYPE_NAMES = mt.MAP_TYPE_NAMES

STATE_PREFIX = "bpfmc-maps-"  # an engine's own map folder: then its pid (see statedir)
_MAGIC = 0x50414D434D465042  # "BPFMCMAP" little-endian
_STATIC = struct.Struct("<16Q")  # the static description, at offset 64 of the header
_STATIC_OFFSET = 64
_HASH_TYPES = (mt.BPF_MAP_TYPE_HASH, mt.BPF_MAP_TYPE_PERCPU_HASH, mt.BPF_MAP_TYPE_LRU_HASH,
               mt.BPF_MAP_TYPE_LRU_PERCPU_HASH)
_PERCPU_TYPES = (mt.BPF_MAP_TYPE_PERCPU_HASH, mt.BPF_MAP_TYPE_PERCPU_ARRAY, mt.BPF_MAP_TYPE_LRU_PERCPU_HASH)
_ARRAY_TYPES = (mt.BPF_MAP_TYPE_ARRAY, mt.BPF_MAP_TYPE_PERCPU_ARRAY, mt.BPF_MAP_TYPE_PROG_ARRAY,
                mt.BPF_MAP_TYPE_DEVMAP, mt.BPF_MAP_TYPE_CPUMAP, mt.BPF_MAP_TYPE_XSKMAP,
                mt.BPF_MAP_TYPE_PERF_EVENT_ARRAY)
_QUEUE_TYPES = (mt.BPF_MAP_TYPE_QUEUE, mt.BPF_MAP_TYPE_STACK)
_HASH_LAYOUT = _HASH_TYPES + (mt.BPF_MAP_TYPE_LPM_TRIE,)
OWNER_USER = 0xFFFFFFFE  # lock owner id of user-space (control plane) writers
MAX_MAP_BYTES = 4 << 30


class MapError(OSError):
    """A map operation failed with a kernel errno (ENOENT, EEXIST, E2BIG, EINVAL, ...)."""

    def __init__(self, err: int, message: str):
        super().__init__(err, message)

    def __str__(self) -> str:  # the message names the map and the errno already
        return self.strerror


def _round(n: int, to: int) -> int:
    return (n + to - 1) // to * to


@dataclass(frozen=True)
class MapDef:
    """What a map is: its type and sizes (from an object's map definition or the user)."""

    name: str
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0

    @property
    def type_name(self) -> str:
        return MAP_TYPE_NAMES.get(self.map_type, f"type {self.map_type}")

    @property
    def per_cpu(self) -> bool:
        return self.map_type in _PERCPU_TYPES

    def check(self) -> None:
        """Refuse definitions the kernel would refuse, naming the map."""
        where = f"map {self.name!r} ({self.type_name})"
        if self.map_type not in MAP_TYPE_NAMES:
            raise MapError(22, f"{where}: unsupported map type")
        if self.map_type not in _HASH_LAYOUT + _ARRAY_TYPES + _QUEUE_TYPES + (mt.BPF_MAP_TYPE_RINGBUF,):
            raise MapError(95, f"{where}: not supported by this version of the engine")
        if self.max_entries < 1:
            raise MapError(22, f"{where}: max_entries must be at least 1")
        if self.map_type in _QUEUE_TYPES and self.key_size != 0:
            raise MapError(22, f"{where}: queue and stack maps have no key (key_size 0)")
        if self.map_type == mt.BPF_MAP_TYPE_RINGBUF:
            n = self.max_entries
            if self.key_size or self.value_size or n % 4096 or n & (n - 1):
                raise MapError(22, f"{where}: a ring buffer has key and value size 0 and a size in max_entries "
                                   "that is a power of 2 and a multiple of 4096")
            return
        if self.map_type in _ARRAY_TYPES and self.key_size != 4:
            raise MapError(22, f"{where}: array maps need 4-byte keys, not {self.key_size}")
        if self.map_type in _HASH_TYPES and not 1 <= self.key_size <= 512:
            raise MapError(22, f"{where}: key_size must be 1..512")
        if self.map_type == mt.BPF_MAP_TYPE_LPM_TRIE and not 5 <= self.key_size <= 4 + 256:
            raise MapError(22, f"{where}: an LPM trie key is a u32 prefix length and 1..256 data bytes")
        if self.value_size < 1 and self.map_type not in (mt.BPF_MAP_TYPE_PROG_ARRAY,):
            raise MapError(22, f"{where}: value_size must be at least 1")


class MapLayout:
    """Sizes and offsets of one map file."""

    def __init__(self, mdef: MapDef, ncpu: int):
        t = mdef.map_type
        self.stride = _round(max(mdef.value_size, 1), 8)
        self.ncpu = ncpu if mdef.per_cpu else 1
        n = mdef.max_entries
        is_hash = t in _HASH_LAYOUT
        self.nbuckets = n if is_hash else 0
        self.nlocks = min(max(self.nbuckets, 1), 4096) if is_hash else 1
        slots = n + 1 if t in _QUEUE_TYPES else n
        self.elem_size = 8 + _round(mdef.key_size, 8) if is_hash else 0
        self.row = _round(n * self.stride, 64)
        off = ops.HEADER_SIZE
        self.buckets = off
        off = _round(off + 4 * self.nbuckets, 64)
        self.locks = off
        off = _round(off + 4 * self.nlocks, 64)
        self.refbits = off
        off = _round(off + (n if t in (mt.BPF_MAP_TYPE_LRU_HASH, mt.BPF_MAP_TYPE_LRU_PERCPU_HASH) else 0), 64)
        self.plens = off
        off = _round(off + (4 * (8 * (mdef.key_size - 4) + 1) if t == mt.BPF_MAP_TYPE_LPM_TRIE else 0), 64)
        self.elems = off
        off = _round(off + n * self.elem_size, 64)
        self.values = off
        if t == mt.BPF_MAP_TYPE_RINGBUF:
            self.stride, self.values_size = 1, n
        else:
            self.values_size = self.row * self.ncpu if mdef.per_cpu else slots * self.stride
        self.size = _round(off + max(self.values_size, 8), 4096)


class Map:
    """One map file, mapped into this process, with kernel-style user-space operations.

    ``lookup`` of a per-CPU map returns ``ncpu × round_up(value_size, 8)`` bytes, exactly what the
    kernel's BPF_MAP_LOOKUP_ELEM returns; ``per_cpu`` splits it, ``merged`` adds it up.
    """

    def __init__(self, mdef: MapDef, path: Path, *, ncpu: int, map_id: int, create: bool = True):
        mdef.check()
        self.mdef = mdef
        self.name = mdef.name
        self.id = map_id
        self.path = Path(path)
        self.layout = lay = MapLayout(mdef, ncpu)
        if lay.size > MAX_MAP_BYTES:
            raise MapError(7, f"map {mdef.name!r} would need {lay.size} bytes (limit {MAX_MAP_BYTES})")
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
        fd = os.open(self.path, flags, 0o600)
        try:
            if create:
                os.ftruncate(fd, lay.size)
            self._mmap = mmap.mmap(fd, lay.size)
        finally:
            os.close(fd)
        self.buf = np.frombuffer(self._mmap, dtype=np.uint8)
        base = self.buf.ctypes.data
        if create:
            static = (mdef.map_type, mdef.key_size, mdef.value_size, mdef.max_entries, mdef.flags, lay.ncpu,
                      lay.nbuckets, lay.elem_size, lay.buckets, lay.locks, lay.refbits, lay.elems, lay.values,
                      lay.row, lay.nlocks, map_id)
            self._mmap[_STATIC_OFFSET:_STATIC_OFFSET + _STATIC.size] = _STATIC.pack(*static)
            self._mmap[0:8] = struct.pack("<Q", _MAGIC)
        d = np.zeros(ops.DESC_SIZE, np.int64)
        d[ops.D_TYPE], d[ops.D_KEY_SIZE], d[ops.D_VALUE_SIZE] = mdef.map_type, mdef.key_size, mdef.value_size
        d[ops.D_MAX_ENTRIES], d[ops.D_FLAGS], d[ops.D_NCPU] = mdef.max_entries, mdef.flags, lay.ncpu
        d[ops.D_STRIDE], d[ops.D_NBUCKETS], d[ops.D_ELEM_SIZE] = lay.stride, lay.nbuckets, lay.elem_size
        d[ops.D_HEADER] = base
        d[ops.D_BUCKETS], d[ops.D_LOCKS] = base + lay.buckets, base + lay.locks
        d[ops.D_ELEMS], d[ops.D_VALUES] = base + lay.elems, base + lay.values
        d[ops.D_NLOCKS], d[ops.D_ROW], d[ops.D_REFBITS] = lay.nlocks, lay.row, base + lay.refbits
        d[ops.D_ID] = map_id
        d[ops.D_PLENS] = base + lay.plens
        self.desc = d
        self._kbuf = np.zeros(_round(max(mdef.key_size, 8), 8), np.uint8)
        self._kbuf2 = np.zeros_like(self._kbuf)
        self._vbuf = np.zeros(lay.stride * lay.ncpu, np.uint8)
        self._tmp = np.zeros(_round(max(mdef.key_size, 8), 8), np.uint8)

    # -- views --------------------------------------------------------------------------------
    @property
    def values_view(self) -> np.ndarray:
        """The value area, the memory programs reach through value pointers."""
        lay = self.layout
        return self.buf[lay.values:lay.values + lay.values_size]

    def __len__(self) -> int:
        return int(ops.map_count(self.desc))

    # -- operations (user space: all CPUs at once for per-CPU maps) --------------------------
    def _key(self, key: bytes | int, buf: np.ndarray | None = None) -> int:
        buf = self._kbuf if buf is None else buf
        if isinstance(key, int):
            key = key.to_bytes(self.mdef.key_size, "little")
        if len(key) != self.mdef.key_size:
            raise MapError(22, f"map {self.name!r}: key must be {self.mdef.key_size} bytes, got {len(key)}")
        buf[:len(key)] = np.frombuffer(key, np.uint8)
        return buf.ctypes.data

    def lookup(self, key: bytes | int) -> bytes | None:
        slot = ops.map_lookup(self.desc, np.uint64(self._key(key)), 0, np.uint64(self._tmp.ctypes.data))
        if slot < 0:
            return None
        return self._read_slot(int(slot))

    def _read_slot(self, slot: int) -> bytes:
        lay, vs = self.layout, self.mdef.value_size
        start = lay.values + slot * lay.stride
        if not self.mdef.per_cpu:
            return self.buf[start:start + vs].tobytes()
        # The kernel's per-CPU layout: one round_up(value_size, 8) slot per CPU.
        out = bytearray()
        for c in range(lay.ncpu):
            s = start + c * lay.row
            out += self.buf[s:s + lay.stride].tobytes()
        return bytes(out)

    def update(self, key: bytes | int, value: bytes, flags: int = ops.BPF_ANY) -> None:
        lay, vs = self.layout, self.mdef.value_size
        if self.mdef.per_cpu:
            if len(value) == vs and lay.ncpu > 1:
                value = b"".join(value.ljust(lay.stride, b"\0") for _ in range(lay.ncpu))
            if len(value) != lay.stride * lay.ncpu:
                raise MapError(22, f"map {self.name!r}: per-CPU value must be {lay.ncpu} x {lay.stride} bytes "
                                   f"(or one {vs}-byte value for every CPU), got {len(value)}")
        elif len(value) != vs:
            raise MapError(22, f"map {self.name!r}: value must be {vs} bytes, got {len(value)}")
        self._vbuf[:len(value)] = np.frombuffer(value, np.uint8)
        rc = ops.map_update(self.desc, np.uint64(self._key(key)), np.uint64(self._vbuf.ctypes.data), flags, 0,
                            self.mdef.per_cpu, OWNER_USER, np.uint64(self._tmp.ctypes.data))
        _check(rc, self.name, "update")

    def delete(self, key: bytes | int) -> None:
        _check(ops.map_delete(self.desc, np.uint64(self._key(key)), OWNER_USER, np.uint64(self._tmp.ctypes.data)),
               self.name, "delete")

    # -- queue and stack ----------------------------------------------------------------------
    def push(self, value: bytes, flags: int = ops.BPF_ANY) -> None:
        if len(value) != self.mdef.value_size:
            raise MapError(22, f"map {self.name!r}: value must be {self.mdef.value_size} bytes, got {len(value)}")
        self._vbuf[:len(value)] = np.frombuffer(value, np.uint8)
        _check(ops.queue_push(self.desc, np.uint64(self._vbuf.ctypes.data), flags, OWNER_USER), self.name, "push")

    def pop(self) -> bytes | None:
        return self._take(True)

    def peek(self) -> bytes | None:
        return self._take(False)

    def _take(self, remove: bool) -> bytes | None:
        rc = ops.queue_take(self.desc, np.uint64(self._vbuf.ctypes.data), remove, OWNER_USER)
        if rc == -ops.ENOENT:
            return None
        _check(rc, self.name, "pop" if remove else "peek")
        return self._vbuf[:self.mdef.value_size].tobytes()

    def next_key(self, key: bytes | None) -> bytes | None:
        kaddr = 0 if key is None else self._key(key)
        rc = ops.map_next_key(self.desc, np.uint64(kaddr), np.uint64(self._kbuf2.ctypes.data))
        if rc == -ops.ENOENT:
            return None
        _check(rc, self.name, "get_next_key")
        return self._kbuf2[:self.mdef.key_size].tobytes()

    def keys(self):
        key = self.next_key(None)
        seen = 0
        while key is not None and seen <= self.mdef.max_entries:
            yield key
            seen += 1
            key = self.next_key(key)

    def items(self):
        for key in self.keys():
            value = self.lookup(key)
            if value is not None:
                yield key, value

    def release_locks(self, owners) -> int:
        """Clear every lock word stamped with one of ``owners`` (lock ids of a process that died
        holding them); returns how many. Plain stores are safe here: only a word's owner ever
        changes a taken word, and that owner is gone."""
        lay = self.layout
        words = self.buf[lay.locks:lay.locks + 4 * lay.nlocks].view(np.uint32)
        stale = np.isin(words, np.asarray(list(owners), np.uint32))
        words[stale] = 0
        return int(stale.sum())

    def per_cpu(self, value: bytes) -> list[bytes]:
        """Split a per-CPU lookup result into one value per CPU (padding dropped)."""
        s, vs = self.layout.stride, self.mdef.value_size
        return [value[c * s:c * s + vs] for c in range(self.layout.ncpu)]

    def close(self) -> None:
        if self._mmap is not None:
            self.buf = None
            try:
                self._mmap.close()
            except BufferError:  # a numpy view is still alive; the OS frees it with the process
                pass
            self._mmap = None


def _check(rc: int, name: str, what: str) -> None:
    if rc < 0:
        err = -int(rc)
        reason = {ops.ENOENT: "no such key", ops.EEXIST: "key exists", ops.E2BIG: "map is full or index out of range",
                  ops.EINVAL: "invalid argument", ops.EBUSY: "map is busy", ops.ENOMEM: "no memory"}.get(err, "")
        raise MapError(err, f"map {name!r}: {what} failed: {os.strerror(err)}" + (f" ({reason})" if reason else ""))


def merge_values(values: list[bytes], op: str = "sum", fields: list[tuple[int, int, bool]] | None = None) -> bytes:
    """Merge per-CPU values into one, per integer field (``(offset, size, signed)`` from BTF)
    or, without BTF, per natural word: the whole value for sizes 1, 2 and 4, else 8-byte words
    (a tail shorter than 8 bytes is one word of its size). Sums wrap like the fields do."""
    if not values:
        return b""
    size = len(values[0])
    if fields is None:
        fields = natural_words(size)
    out = bytearray(values[0])
    for off, width, signed in fields:
        nums = [int.from_bytes(v[off:off + width], "little", signed=signed) for v in values]
        if op == "sum":
            r = sum(nums)
        elif op == "min":
            r = min(nums)
        elif op == "max":
            r = max(nums)
        else:
            raise ValueError(f"unknown merge {op!r} (sum, min, max)")
        r &= (1 << (8 * width)) - 1
        out[off:off + width] = r.to_bytes(width, "little")
    return bytes(out)


def natural_words(size: int) -> list[tuple[int, int, bool]]:
    if size in (1, 2, 4):
        return [(0, size, False)]
    words = [(o, 8, False) for o in range(0, size - size % 8, 8)]
    tail = size % 8
    off = size - tail
    for w in (4, 2, 1):
        if tail >= w:
            words.append((off, w, False))
            off += w
            tail -= w
    return words


class MapStore:
    """The folder of map files of one owner (an engine today, the server later)."""

    def __init__(self, state_dir: str | Path | None = None, *, ncpu: int = 1, attach: bool = False):
        self.ncpu = ncpu
        # attach: open the map files another process (the pool's parent) already created and
        # initialised, in the same order, instead of creating them: a worker must never
        # re-initialise maps that other cores may already be using.
        self.attach = attach
        if attach and state_dir is None:
            raise ValueError("attaching to a map store needs its state_dir")
        if state_dir is None:
            # Owner-stamped, so a process killed before closing its store leaves nothing behind
            # for long: the next store made on this host removes the folder.
            self.dir = statedir.make(STATE_PREFIX, statedir.shm_root())
            self._owned = True
        else:
            self.dir = Path(state_dir)
            self.dir.mkdir(parents=True, exist_ok=True)
            self._owned = False
        self.maps: list[Map] = []
        self._finalizer = weakref.finalize(self, _remove_dir, self.dir if self._owned else None)

    def create(self, mdef: MapDef) -> Map:
        map_id = len(self.maps) + 1
        safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in mdef.name)[:64]
        m = Map(mdef, self.dir / f"map-{map_id}-{safe}", ncpu=self.ncpu, map_id=map_id, create=not self.attach)
        self.maps.append(m)
        return m

    def descriptors(self) -> np.ndarray:
        table = np.zeros((max(len(self.maps), 1), ops.DESC_SIZE), np.int64)
        for i, m in enumerate(self.maps):
            table[i] = m.desc
        return table

    def close(self) -> None:
        for m in self.maps:
            m.close()
        self.maps = []
        self._finalizer()


def _remove_dir(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)
