"""Event steering: which emulated core runs each event of a batch.

Three modes, as a multi-queue NIC or a test harness would spread work:

``"rr"``
    Round-robin over the cores. The position carries over from one ``steer`` call to the next,
    so a stream cut into batches is spread exactly as if it had arrived in one batch.
``"rss"``
    Receive Side Scaling as Microsoft specifies it and NICs implement it: a Toeplitz hash over
    the flow tuple, whose value picks an entry of an indirection table holding core ids. Every
    packet of a flow therefore lands on the same core, which is what per-core program state
    (per-CPU maps) expects.
``"core"``
    The caller names the core of every event.

Flow tuple (the hash input), in the order Microsoft and NICs define it -- source address,
destination address, source port, destination port, each in network byte order as on the wire:

* Ethernet II, optionally with one 802.1Q (0x8100) or 802.1ad (0x88a8) tag. A second tag is not
  looked through: such a frame counts as non-IP, like on NICs without QinQ parsing.
* IPv4 (version 4, IHL >= 5): source and destination address (8 bytes); plus the TCP/UDP ports
  (12 bytes) unless the packet is a fragment (MF set or a non-zero offset) -- only the first
  fragment carries ports, so hashing them would split one datagram over two cores.
* IPv6 (version 6): source and destination address (32 bytes); plus the ports (36 bytes) when
  the Next Header field itself is TCP or UDP. Extension headers are not walked, so such packets
  hash on addresses only; that is still stable per flow.
* Ports are used only if the frame actually holds them; a truncated L4 header falls back to
  the addresses.
* Anything else (ARP, LLDP, runts, malformed IP) hashes an empty input: hash 0, hence table
  entry 0. We chose this over hashing the MAC addresses because it is what NICs do with frames
  they cannot classify (RSS hash type "none", default queue) -- such traffic is rare and the
  pool's behaviour then matches the hardware it emulates.

The indirection table is indexed by ``hash % len(table)``. For the power-of-two sizes NICs use
(128 by default, as in Windows), that is exactly the NIC's "low bits of the hash".

Symmetry is not promised: with the Microsoft key, A->B and B->A generally hash differently, as
on real hardware. Pass a symmetric key if both directions must meet on one core.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit

from . import jitcache  # noqa: F401  (sets the cache folder before anything is compiled)

# The key of Microsoft's "Verifying the RSS Hash Calculation"; also the default of most NIC
# drivers, so hashes match what a capture from such a NIC would have shown.
MICROSOFT_RSS_KEY = bytes.fromhex(
    "6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa")

DEFAULT_TABLE_SIZE = 128
MAX_TUPLE_LEN = 36  # IPv6 with ports: 16 + 16 + 2 + 2
MODES = ("rr", "rss", "core")

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
IPPROTO_TCP = 6
IPPROTO_UDP = 17

_MODE_RR, _MODE_RSS, _MODE_CORE = 0, 1, 2
_MASK32 = 0xFFFFFFFF


def toeplitz_hash(key: bytes, data: bytes) -> int:
    """Toeplitz hash of ``data`` under ``key`` -- the plain reference, written straight from the
    definition: for every set bit ``i`` of the input (most significant first), XOR in the 32 key
    bits starting at bit ``i``. Slow on purpose-free big integers; the compiled paths are
    checked against it."""
    key, data = bytes(key), bytes(data)
    if len(key) < len(data) + 4:
        raise ValueError(f"Toeplitz key of {len(key)} bytes is too short for {len(data)} bytes of input "
                         f"(needs at least {len(data) + 4})")
    k = int.from_bytes(key, "big")
    kbits = 8 * len(key)
    result = 0
    for i in range(8 * len(data)):
        if data[i // 8] & (0x80 >> (i % 8)):
            result ^= (k >> (kbits - 32 - i)) & _MASK32
    return result


@njit(cache=True)
def toeplitz_hash_nb(key: np.ndarray, data: np.ndarray, start: int, length: int) -> int:
    """Toeplitz hash of ``data[start:start+length]`` under ``key`` (both uint8 arrays), bit by
    bit with a sliding 32-bit key window. The caller guarantees ``len(key) >= length + 4``.
    Kept for single hashes inside compiled code; batches use :func:`toeplitz_lut`, which is
    about eight times fewer operations per byte."""
    # int64 arithmetic throughout: Numba turns uint64-with-int mixes into floats.
    window = (np.int64(key[0]) << 24) | (np.int64(key[1]) << 16) | (np.int64(key[2]) << 8) | np.int64(key[3])
    result = np.int64(0)
    for j in range(length):
        byte = np.int64(data[start + j])
        nxt = np.int64(key[j + 4]) if j + 4 < key.shape[0] else np.int64(0)
        for b in range(7, -1, -1):
            if (byte >> b) & 1:
                result ^= window
            # slide the window one bit: the next key bit enters at the bottom
            window = ((window << 1) | ((nxt >> b) & 1)) & _MASK32
    return result


@njit(cache=True)
def toeplitz_lut(key: np.ndarray, n_bytes: int) -> np.ndarray:
    """Per-position byte tables for ``key``: ``lut[j, v]`` is the hash contribution of byte value
    ``v`` at input position ``j``. The hash is linear in the input bits, so the hash of a tuple
    is the XOR of one table lookup per byte. ``len(key) >= n_bytes + 4`` is the caller's job."""
    nbits = 8 * n_bytes
    # windows[p]: the 32 key bits starting at bit p, i.e. what input bit p XORs in when set
    windows = np.zeros(nbits, np.int64)
    w = (np.int64(key[0]) << 24) | (np.int64(key[1]) << 16) | (np.int64(key[2]) << 8) | np.int64(key[3])
    for p in range(nbits):
        windows[p] = w
        q = p + 32  # key bit entering the window next
        bit = (np.int64(key[q >> 3]) >> (7 - (q & 7))) & 1 if (q >> 3) < key.shape[0] else np.int64(0)
        w = ((w << 1) | bit) & _MASK32
    lut = np.zeros((n_bytes, 256), np.uint32)
    for j in range(n_bytes):
        for v in range(256):
            h = np.int64(0)
            for b in range(8):
                if (v >> (7 - b)) & 1:
                    h ^= windows[8 * j + b]
            lut[j, v] = h
    return lut


@njit(cache=True)
def _u16(blob: np.ndarray, at: int) -> int:
    return (np.int64(blob[at]) << 8) | np.int64(blob[at + 1])


@njit(cache=True)
def flow_tuple_nb(blob: np.ndarray, start: int, end: int, l4: bool) -> tuple[int, int, int, int]:
    """Where the flow tuple of frame ``blob[start:end]`` sits, as two byte runs:
    ``(addr_at, addr_len, port_at, port_len)``. The addresses (src then dst) and the ports
    (src then dst) are each contiguous in the headers, so no copy is needed. Lengths are
    0/8/32 and 0/4; ``addr_len == 0`` means "not hashable" (see the module docstring)."""
    if end - start < 14:
        return 0, 0, 0, 0
    l3 = start + 14
    etype = _u16(blob, start + 12)
    if etype == ETH_P_8021Q or etype == ETH_P_8021AD:
        if end - start < 18:
            return 0, 0, 0, 0
        etype = _u16(blob, start + 16)
        l3 = start + 18
    if etype == ETH_P_IP:
        if end - l3 < 20 or (blob[l3] >> 4) != 4:
            return 0, 0, 0, 0
        ihl = np.int64(blob[l3] & 0x0F) * 4
        if ihl < 20:
            return 0, 0, 0, 0
        if l4 and (_u16(blob, l3 + 6) & 0x3FFF) == 0:  # neither MF nor a fragment offset
            proto = blob[l3 + 9]
            if (proto == IPPROTO_TCP or proto == IPPROTO_UDP) and l3 + ihl + 4 <= end:
                return l3 + 12, 8, l3 + ihl, 4
        return l3 + 12, 8, 0, 0
    if etype == ETH_P_IPV6:
        if end - l3 < 40 or (blob[l3] >> 4) != 6:
            return 0, 0, 0, 0
        if l4:
            nh = blob[l3 + 6]
            if (nh == IPPROTO_TCP or nh == IPPROTO_UDP) and l3 + 44 <= end:
                return l3 + 8, 32, l3 + 40, 4
        return l3 + 8, 32, 0, 0
    return 0, 0, 0, 0


@njit(cache=True)
def _hash_frame(blob: np.ndarray, start: int, end: int, lut: np.ndarray, l4: bool) -> int:
    addr_at, addr_len, port_at, port_len = flow_tuple_nb(blob, start, end, l4)
    h = np.uint32(0)
    for j in range(addr_len):
        h ^= lut[j, blob[addr_at + j]]
    for j in range(port_len):
        h ^= lut[addr_len + j, blob[port_at + j]]
    return h


@njit(cache=True)
def rss_hashes_nb(blob: np.ndarray, offsets: np.ndarray, lut: np.ndarray, l4: bool) -> np.ndarray:
    """RSS hash of every event of a batch (uint32)."""
    n = offsets.shape[0] - 1
    out = np.empty(n, np.uint32)
    for i in range(n):
        out[i] = _hash_frame(blob, offsets[i], offsets[i + 1], lut, l4)
    return out


@njit(cache=True)
def _steer_nb(mode: int, blob: np.ndarray, offsets: np.ndarray, cores: np.ndarray, lut: np.ndarray,
              table: np.ndarray, l4: bool, rr_next: int, n_cores: int) -> np.ndarray:
    """Core id per event for the whole batch in one call; inputs are validated by Steering."""
    n = offsets.shape[0] - 1
    out = np.empty(n, np.int32)
    if mode == _MODE_RR:
        c = rr_next
        for i in range(n):
            out[i] = c
            c += 1
            if c == n_cores:
                c = 0
    elif mode == _MODE_RSS:
        size = table.shape[0]
        for i in range(n):
            h = np.int64(_hash_frame(blob, offsets[i], offsets[i + 1], lut, l4))
            out[i] = table[h % size]
    else:
        for i in range(n):
            out[i] = cores[i]
    return out


def flow_tuple(frame: bytes, l4: bool = True) -> bytes:
    """The hash input the compiled path extracts from one frame (b"" when not hashable).
    For tests and diagnostics; batches never come through here."""
    buf = np.frombuffer(bytes(frame), np.uint8)
    addr_at, addr_len, port_at, port_len = flow_tuple_nb(buf, 0, buf.shape[0], l4)
    return bytes(buf[addr_at:addr_at + addr_len]) + bytes(buf[port_at:port_at + port_len])


def _min_key_len(l4: bool) -> int:
    # the longest input (IPv6 with or without ports) plus the 4 bytes of the first window
    return (MAX_TUPLE_LEN if l4 else 32) + 4


class Steering:
    """Assigns each event of a batch to one of ``n_cores`` emulated cores.

    ``key``, ``table``, ``table_size`` and ``l4`` matter only in ``"rss"`` mode but are checked
    in every mode, so a bad configuration fails when built rather than when first switched to.
    ``l4=False`` hashes addresses only (the NIC's plain IPv4/IPv6 hash types).
    """

    def __init__(self, n_cores: int, mode: str = "rr", *, key: bytes = MICROSOFT_RSS_KEY,
                 table: Sequence[int] | np.ndarray | None = None, table_size: int = DEFAULT_TABLE_SIZE,
                 l4: bool = True) -> None:
        if isinstance(n_cores, bool) or not isinstance(n_cores, int | np.integer) or n_cores < 1:
            raise ValueError(f"n_cores must be a positive integer, got {n_cores!r}")
        if mode not in MODES:
            raise ValueError(f"unknown steering mode {mode!r}; expected one of {', '.join(MODES)}")
        if not isinstance(key, bytes | bytearray | memoryview):
            raise ValueError(f"RSS key must be bytes, got {type(key).__name__}")
        key = bytes(key)
        need = _min_key_len(l4)
        if len(key) < need:
            raise ValueError(f"RSS key of {len(key)} bytes is too short: hashing IPv6 "
                             f"{'with' if l4 else 'without'} ports needs at least {need} bytes")
        self.n_cores = int(n_cores)
        self.mode = mode
        self.key = key
        self.l4 = bool(l4)
        self.table = self._check_table(table, table_size)
        self._key_arr = np.frombuffer(key, np.uint8).copy()
        self._lut = toeplitz_lut(self._key_arr, MAX_TUPLE_LEN if l4 else 32)
        self._rr_next = 0

    def _check_table(self, table: Sequence[int] | np.ndarray | None, table_size: int) -> np.ndarray:
        if table is None:
            if isinstance(table_size, bool) or not isinstance(table_size, int | np.integer) or table_size < 1:
                raise ValueError(f"table_size must be a positive integer, got {table_size!r}")
            # filled round-robin, as drivers fill the indirection table by default
            return (np.arange(int(table_size), dtype=np.int64) % self.n_cores).astype(np.int32)
        arr = np.asarray(table)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError("indirection table must be a non-empty 1-D sequence of core ids")
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"indirection table entries must be integers, got dtype {arr.dtype}")
        bad = (arr < 0) | (arr >= self.n_cores)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"indirection table entry {i} is {int(arr[i])}, not a core id in "
                             f"[0, {self.n_cores})")
        return arr.astype(np.int32)

    @property
    def next_core(self) -> int:
        """The core round-robin gives the next event."""
        return self._rr_next

    def reset(self) -> None:
        """Restart round-robin at core 0."""
        self._rr_next = 0

    def advance(self, n: int) -> int:
        """Round-robin only: the core of the next event, moving the position past ``n`` events.
        For callers that write the cores out themselves in a pass they make anyway (the pool
        does, while copying a batch into shared memory); the same cores as ``steer``."""
        if self.mode != "rr":
            raise ValueError(f'advance is for steering mode "rr", not {self.mode!r}')
        first = self._rr_next
        self._rr_next = (first + n) % self.n_cores
        return first

    @staticmethod
    def _check_batch(blob: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(blob, np.ndarray) or blob.ndim != 1 or blob.dtype != np.uint8:
            raise ValueError("blob must be a 1-D uint8 array")
        if not isinstance(offsets, np.ndarray) or offsets.ndim != 1 or not np.issubdtype(offsets.dtype, np.integer):
            raise ValueError("offsets must be a 1-D integer array")
        if offsets.shape[0] < 1:
            raise ValueError("offsets must hold n_events + 1 entries (at least one)")
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        if offsets[0] < 0 or offsets[-1] > blob.shape[0]:
            raise ValueError(f"offsets run from {int(offsets[0])} to {int(offsets[-1])}, outside the blob "
                             f"of {blob.shape[0]} bytes")
        if offsets.shape[0] > 1 and (np.diff(offsets) < 0).any():
            raise ValueError("offsets must be non-decreasing")
        return np.ascontiguousarray(blob), offsets

    def steer(self, blob: np.ndarray, offsets: np.ndarray, cores: np.ndarray | None = None) -> np.ndarray:
        """Core id (int32) of every event ``blob[offsets[i]:offsets[i+1]]``. ``cores`` is required
        in ``"core"`` mode and refused otherwise (silently ignoring it would hide a caller bug)."""
        blob, offsets = self._check_batch(blob, offsets)
        n = offsets.shape[0] - 1
        if self.mode == "core":
            if cores is None:
                raise ValueError('steering mode "core" needs the core id of every event (cores=...)')
            c = np.asarray(cores)
            if c.ndim != 1 or c.shape[0] != n:
                raise ValueError(f"cores must be a 1-D array with one entry per event ({n}), got shape {c.shape}")
            if n and not np.issubdtype(c.dtype, np.integer):
                raise ValueError(f"core ids must be integers, got dtype {c.dtype}")
            bad = (c < 0) | (c >= self.n_cores)
            if bad.any():
                i = int(np.argmax(bad))
                raise ValueError(f"event {i} names core {int(c[i])}, outside [0, {self.n_cores})")
            cores_arr = np.ascontiguousarray(c, dtype=np.int64)
        else:
            if cores is not None:
                raise ValueError(f'explicit core ids are only accepted in mode "core", not {self.mode!r}')
            cores_arr = np.zeros(0, np.int64)
        mode = {"rr": _MODE_RR, "rss": _MODE_RSS, "core": _MODE_CORE}[self.mode]
        out = _steer_nb(mode, blob, offsets, cores_arr, self._lut, self.table, self.l4, self._rr_next, self.n_cores)
        if self.mode == "rr":
            self._rr_next = (self._rr_next + n) % self.n_cores
        return out

    def hashes(self, blob: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """RSS hash (uint32) of every event under this steering's key, whatever the mode."""
        blob, offsets = self._check_batch(blob, offsets)
        return rss_hashes_nb(blob, offsets, self._lut, self.l4)
