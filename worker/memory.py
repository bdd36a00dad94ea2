"""Tagged addresses and the region table.

Every pointer a program holds is ``region_id << 32 | offset``. The region table maps a region
id to the host address of its backing memory and to how many bytes may be read and written
there. Region 0 is never backed, so NULL and small integers fault on access. A region may be
readable further than writable (``wlen < rlen``) -- read-only data, a context whose tail is not
writable.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import jitcache  # noqa: F401  (sets the cache folder before anything is compiled)

REGION_SHIFT = 32
OFFSET_MASK = (1 << REGION_SHIFT) - 1

# Fixed region ids; maps and further memory get ids from FIRST_DYNAMIC_REGION on.
REGION_NULL = 0
REGION_STACK = 1
REGION_INPUT = 2  # raw programs' bytes
REGION_CTX = 3  # the context structure (xdp_md, __sk_buff)
REGION_PACKET = 4  # the packet buffer, headroom and tailroom included
REGION_CODE = 5  # unbacked: function pointers (callbacks) are pc values in this region
FIRST_DYNAMIC_REGION = 8  # then two per map: its handle (unbacked) and its value area
MAX_REGIONS = 1024

# Columns of the region table.
COL_BASE, COL_RLEN, COL_WLEN = 0, 1, 2

FIXED_REGION_NAMES = {REGION_NULL: "null", REGION_STACK: "stack", REGION_INPUT: "input", REGION_CTX: "ctx",
                      REGION_PACKET: "packet", REGION_CODE: "code"}


def make_address(region: int, offset: int) -> int:
    return (region << REGION_SHIFT) | (offset & OFFSET_MASK)


def split_address(addr: int) -> tuple[int, int]:
    return addr >> REGION_SHIFT, addr & OFFSET_MASK


class RegionTable:
    """The table the interpreter reads, plus the buffers it points into (kept alive here)."""

    def __init__(self, capacity: int = MAX_REGIONS):
        self.table = np.zeros((capacity, 3), np.uint64)
        self.names: dict[int, str] = dict(FIXED_REGION_NAMES)
        self._buffers: dict[int, object] = {}

    def attach(self, region: int, buf: np.ndarray, name: str, *, writable: bool = True,
               readable_len: int | None = None) -> None:
        if buf.dtype != np.uint8 or not buf.flags.c_contiguous:
            raise ValueError("region buffers must be contiguous uint8 arrays")
        base = buf.ctypes.data
        if base % 8:
            raise ValueError(f"region {name!r} is not 8-byte aligned")
        size = len(buf) if readable_len is None else readable_len
        self.table[region, COL_BASE] = base
        self.table[region, COL_RLEN] = size
        self.table[region, COL_WLEN] = size if writable else 0
        self.names[region] = name
        self._buffers[region] = buf

    def name(self, region: int) -> str:
        return self.names.get(region, f"region {region}")

    def describe(self, addr: int) -> str:
        region, offset = split_address(addr)
        return f"{self.name(region)}+{offset}"


_SH = np.uint64(REGION_SHIFT)
_M32 = np.uint64(OFFSET_MASK)


@njit(cache=True, inline="always")
def host_address(regions, addr, size, col):
    """Host address of ``size`` bytes at tagged ``addr`` that may be read (``col`` =
    COL_RLEN) or written (COL_WLEN), or 0 when the region or the bytes are out of bounds.
    The one bounds check of the engine: every load, store, atomic and helper argument
    passes here (inlined where it is used)."""
    rid = addr >> _SH
    if rid >= np.uint64(regions.shape[0]):
        return np.uint64(0)
    off = addr & _M32
    if off + np.uint64(size) > regions[rid, col]:
        return np.uint64(0)
    return regions[rid, COL_BASE] + off
