"""Abstract scalars: unsigned and signed 64- and 32-bit ranges plus a tnum, as the kernel keeps.

A :class:`Scalar` is immutable. :func:`sync` makes its five views agree (the kernel's
``reg_bounds_sync``: bounds from known bits, signed/unsigned deduction, 32/64-bit exchange,
known bits from bounds) and returns ``None`` when they admit no value, which is how a branch
whose condition cannot hold is found dead. ALU results and branch refinements go through it.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from . import tnum as tn
from .tnum import U32, U64, Tnum

S64_MIN, S64_MAX = -(1 << 63), (1 << 63) - 1
S32_MIN, S32_MAX = -(1 << 31), (1 << 31) - 1


def s64(x: int) -> int:
    x &= U64
    return x - (1 << 64) if x >> 63 else x


def s32(x: int) -> int:
    x &= U32
    return x - (1 << 32) if x >> 31 else x


class Scalar(NamedTuple):
    umin: int
    umax: int
    smin: int
    smax: int
    u32min: int
    u32max: int
    s32min: int
    s32max: int
    var: Tnum

    @property
    def is_const(self) -> bool:
        return self.var.mask == 0

    @property
    def value(self) -> int:
        return self.var.value

    def contains(self, new: Scalar) -> bool:
        """``new`` is within ``self`` (the kernel's ``range_within`` plus ``tnum_in``)."""
        return (self.umin <= new.umin and new.umax <= self.umax and self.smin <= new.smin
                and new.smax <= self.smax and self.u32min <= new.u32min and new.u32max <= self.u32max
                and self.s32min <= new.s32min and new.s32max <= self.s32max and self.var.contains(new.var))

    def describe(self) -> str:
        if self.is_const:
            v = self.var.value
            return f"{v}" if v < 1 << 32 else f"{v:#x}"
        parts = []
        if self.umin or self.umax != U64:
            parts.append(f"umin={self.umin},umax={self.umax}")
        if self.smin != S64_MIN or self.smax != S64_MAX:
            if not (self.smin == self.umin and self.smax == self.umax):
                parts.append(f"smin={self.smin},smax={self.smax}")
        if self.var.mask != U64:
            parts.append(f"var_off={self.var}")
        return "(" + ",".join(parts) + ")" if parts else "unknown"


UNKNOWN = Scalar(0, U64, S64_MIN, S64_MAX, 0, U32, S32_MIN, S32_MAX, tn.UNKNOWN)


@functools.lru_cache(maxsize=4096)  # Scalars are immutable; loops build the same constants again
def const(v: int) -> Scalar:
    v &= U64
    lo = v & U32
    return Scalar(v, v, s64(v), s64(v), lo, lo, s32(lo), s32(lo), Tnum(v, 0))


def unsigned_range(lo: int, hi: int) -> Scalar:
    r = sync(UNKNOWN._replace(umin=lo, umax=hi))
    assert r is not None
    return r


def signed_range(lo: int, hi: int) -> Scalar:
    r = sync(UNKNOWN._replace(smin=lo, smax=hi))
    assert r is not None
    return r


# -- bounds synchronisation -------------------------------------------------------------------

def _deduce(ul: int, uh: int, sl: int, sh: int, bits: int) -> tuple[int, int, int, int]:
    """Exchange information between an unsigned and a signed range of the same width."""
    half = 1 << (bits - 1)
    full = 1 << bits
    if sl >= 0 or sh < 0:  # the signed range does not cross the sign boundary
        lo, hi = max(ul, sl % full), min(uh, sh % full)
        return lo, hi, (lo - full if lo >= half else lo), (hi - full if hi >= half else hi)
    if uh < half:  # every value is non-negative
        lo, hi = max(sl, ul), min(sh, uh)
        return lo, hi, lo, hi
    if ul >= half:  # every value is negative as signed
        lo, hi = max(sl, ul - full), min(sh, uh - full)
        return lo + full, hi + full, lo, hi
    return ul, uh, sl, sh


def _range_tnum(lo: int, hi: int) -> tuple[int, int]:
    """``tnum.from_range`` as (value, mask) ints (sync is the verifier's hottest function)."""
    chi = lo ^ hi
    if chi == 0:
        return lo, 0
    bits = chi.bit_length()
    if bits > 63:
        return 0, U64
    delta = (1 << bits) - 1
    return lo & ~delta & U64, delta


def sync(s: Scalar) -> Scalar | None:
    umin, umax, smin, smax, u32min, u32max, s32min, s32max, var = s
    v, m = var
    if not m:  # a known constant (loop counters, mostly): it fits every range or none
        lo = v & U32
        if (umin <= v <= umax and smin <= s64(v) <= smax and u32min <= lo <= u32max
                and s32min <= s32(lo) <= s32max):
            return const(v)
        return None
    for _ in range(2):
        # bounds from known bits
        v32, m32 = v & U32, m & U32
        s32min = max(s32min, s32(v32 | (m32 & 0x80000000)))
        s32max = min(s32max, s32(v32 | (m32 & 0x7FFFFFFF)))
        u32min = max(u32min, v32)
        u32max = min(u32max, v32 | m32)
        smin = max(smin, s64(v | (m & (1 << 63))))
        smax = min(smax, s64(v | (m & S64_MAX)))
        umin = max(umin, v)
        umax = min(umax, v | m)
        if umin > umax or smin > smax or u32min > u32max or s32min > s32max:
            return None
        # 64-bit facts into the low half
        if umin >> 32 == umax >> 32:
            u32min, u32max = max(u32min, umin & U32), min(u32max, umax & U32)
            if s32(umin) <= s32(umax):
                s32min, s32max = max(s32min, s32(umin)), min(s32max, s32(umax))
        if (smin >> 32) == (smax >> 32):
            if s32(smin) <= s32(smax):
                s32min, s32max = max(s32min, s32(smin)), min(s32max, s32(smax))
            u32min, u32max = (max(u32min, smin & U32), min(u32max, smax & U32)) if (smin & U32) <= (
                smax & U32) else (u32min, u32max)
        if u32min > u32max or s32min > s32max:
            return None
        u32min, u32max, s32min, s32max = _deduce(u32min, u32max, s32min, s32max, 32)
        if u32min > u32max or s32min > s32max:
            return None
        # the low half's facts into 64 bits, when the high half is fixed
        if umin >> 32 == umax >> 32:
            hi = umin & ~U32 & U64
            umin, umax = max(umin, hi | u32min), min(umax, hi | u32max)
        if (smin >> 32) == (smax >> 32):
            hi = smin & ~U32
            smin, smax = max(smin, hi | u32min), min(smax, hi | u32max)
        if umin > umax or smin > smax:
            return None
        umin, umax, smin, smax = _deduce(umin, umax, smin, smax, 64)
        if umin > umax or smin > smax:
            return None
        # known bits from bounds (tnum intersections, on ints)
        rv, rm = _range_tnum(umin, umax)
        known = ~m & ~rm & U64
        if (v & known) != (rv & known):
            return None
        m &= rm
        v = (v | rv) & ~m & U64
        lv, lm = v & U32, m & U32
        rv, rm = _range_tnum(u32min, u32max)
        known = ~lm & ~rm & U64
        if (lv & known) != (rv & known):
            return None
        lm &= rm
        lv = (lv | rv) & ~lm & U64
        # the low half replaced by its intersection (tnum.with_subreg)
        v = (v & ~U32 & U64) | (lv & U32)
        m = ((m & ~U32 & U64) | (lm & U32)) & ~v & U64
    if umin > umax or smin > smax or u32min > u32max or s32min > s32max:
        return None
    if v > umax or (v | m) < umin:
        return None
    return Scalar(umin, umax, smin, smax, u32min, u32max, s32min, s32max, Tnum(v, m))


def zext32(s: Scalar) -> Scalar:
    """The 64-bit value after a 32-bit operation: the low half zero-extended."""
    r = sync(Scalar(s.u32min, s.u32max, s.u32min, s.u32max, s.u32min, s.u32max, s.s32min, s.s32max,
                    tn.subreg(s.var)))
    return r if r is not None else unsigned_range(0, U32)


def truncate(s: Scalar, size: int) -> Scalar:
    """The low ``size`` bytes, zero-extended (a narrow load or store of a known value)."""
    if size >= 8:
        return s
    if s.is_const:
        return const(s.value & ((1 << (8 * size)) - 1))
    hi = (1 << (8 * size)) - 1
    if s.umax <= hi:
        return s
    r = sync(UNKNOWN._replace(umin=0, umax=hi, var=tn.cast(s.var, size)))
    return r if r is not None else unsigned_range(0, hi)


# -- concrete semantics (as the interpreter computes) ------------------------------------------

def concrete(opname: str, x: int, y: int, bits: int) -> int:
    full = (1 << bits) - 1
    x &= full
    y &= full
    sx = x - (1 << bits) if x >> (bits - 1) else x
    sy = y - (1 << bits) if y >> (bits - 1) else y
    if opname == "add":
        r = x + y
    elif opname == "sub":
        r = x - y
    elif opname == "mul":
        r = x * y
    elif opname == "div":
        r = x // y if y else 0
    elif opname == "sdiv":
        r = 0 if y == 0 else (abs(sx) // abs(sy)) * (1 if (sx < 0) == (sy < 0) else -1)
    elif opname == "mod":
        r = x % y if y else x
    elif opname == "smod":
        r = sx if sy == 0 else sx - sy * ((abs(sx) // abs(sy)) * (1 if (sx < 0) == (sy < 0) else -1))
    elif opname == "or":
        r = x | y
    elif opname == "and":
        r = x & y
    elif opname == "xor":
        r = x ^ y
    elif opname == "lsh":
        r = x << (y & (bits - 1))
    elif opname == "rsh":
        r = x >> (y & (bits - 1))
    elif opname == "arsh":
        r = sx >> (y & (bits - 1))
    elif opname == "neg":
        r = -x
    elif opname == "mov":
        r = y
    else:
        raise ValueError(opname)
    return r & full


# -- abstract ALU ------------------------------------------------------------------------------

class _View(NamedTuple):
    ul: int
    uh: int
    sl: int
    sh: int
    var: Tnum


def _view(s: Scalar, bits: int) -> _View:
    if bits == 64:
        return _View(s.umin, s.umax, s.smin, s.smax, s.var)
    return _View(s.u32min, s.u32max, s.s32min, s.s32max, tn.subreg(s.var))


def _full(bits: int) -> tuple[int, int, int, int]:
    return 0, (1 << bits) - 1, -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _abstract(opname: str, a: _View, b: _View, bits: int) -> _View:
    umask = (1 << bits) - 1
    fu_lo, fu_hi, fs_lo, fs_hi = _full(bits)
    ul, uh, sl, sh = fu_lo, fu_hi, fs_lo, fs_hi
    var = tn.UNKNOWN
    bconst = b.var.mask == 0
    if opname in ("add", "sub"):
        if opname == "add":
            var = tn.add(a.var, b.var)
            lo, hi = a.ul + b.ul, a.uh + b.uh
            slo, shi = a.sl + b.sl, a.sh + b.sh
        else:
            var = tn.sub(a.var, b.var)
            lo, hi = a.ul - b.uh, a.uh - b.ul
            slo, shi = a.sl - b.sh, a.sh - b.sl
        if fu_lo <= lo and hi <= fu_hi:
            ul, uh = lo, hi
        if fs_lo <= slo and shi <= fs_hi:
            sl, sh = slo, shi
    elif opname == "mul":
        var = tn.mul(a.var, b.var)
        if a.uh * b.uh <= fu_hi:
            ul, uh = a.ul * b.ul, a.uh * b.uh
    elif opname == "and":
        var = tn.and_(a.var, b.var)
        ul, uh = var.value, min(a.uh, b.uh)
    elif opname == "or":
        var = tn.or_(a.var, b.var)
        ul, uh = max(a.ul, b.ul), var.value | var.mask
    elif opname == "xor":
        var = tn.xor(a.var, b.var)
        ul, uh = var.value, var.value | var.mask
    elif opname in ("lsh", "rsh", "arsh") and bconst:
        k = b.var.value & (bits - 1)
        if opname == "lsh":
            var = tn.lshift(a.var, k)
            if (a.uh << k) <= fu_hi:
                ul, uh = a.ul << k, a.uh << k
        elif opname == "rsh":
            var = tn.rshift(a.var, k)
            ul, uh = a.ul >> k, a.uh >> k
        else:
            var = tn.arshift(a.var, k, bits)
            sl, sh = a.sl >> k, a.sh >> k
    elif opname == "div":
        if bconst and b.var.value:
            ul, uh = a.ul // b.var.value, a.uh // b.var.value
        else:  # x / y <= x, and x / 0 == 0
            ul, uh = 0, a.uh
    elif opname == "mod":
        if bconst and b.var.value == 0:
            return a
        ul, uh = 0, a.uh if not bconst else min(a.uh, b.var.value - 1)
    elif opname == "mov":
        return b
    if opname in ("and", "or", "xor") and a.sl >= 0 and b.sl >= 0:
        sl, sh = ul, uh
    if bits == 32:
        var = tn.subreg(var)
    return _View(ul & umask if ul <= uh else 0, uh if ul <= uh else fu_hi, sl, sh, var)


def alu(opname: str, a: Scalar, b: Scalar, bits: int) -> Scalar:
    """``a = a <op> b`` on scalars, in 64- or 32-bit arithmetic (the latter zero-extends)."""
    if a.is_const and b.is_const:
        return const(concrete(opname, a.value, b.value, bits))
    if opname in ("neg", "sdiv", "smod"):
        return UNKNOWN if bits == 64 else zext32(UNKNOWN)
    v = _abstract(opname, _view(a, bits), _view(b, bits), bits)
    if bits == 64:
        r = sync(Scalar(v.ul, v.uh, v.sl, v.sh, 0, U32, S32_MIN, S32_MAX, v.var))
        return r if r is not None else UNKNOWN
    r = sync(Scalar(0, U64, S64_MIN, S64_MAX, v.ul, v.uh, v.sl, v.sh, v.var))
    return zext32(r if r is not None else UNKNOWN)


def sign_extend(s: Scalar, from_bits: int, to_bits: int) -> Scalar:
    """``movsx``: the low ``from_bits`` sign-extended to ``to_bits`` (then zero-extended)."""
    if s.is_const:
        x = s.value & ((1 << from_bits) - 1)
        if x >> (from_bits - 1):
            x -= 1 << from_bits
        return const(x & ((1 << to_bits) - 1))
    half = 1 << (from_bits - 1)
    if s.umax < half:
        return s if to_bits == 64 else zext32(s)
    if to_bits == 64:
        return signed_range(-half, half - 1)
    r = sync(UNKNOWN._replace(s32min=-half, s32max=half - 1))
    return zext32(r if r is not None else UNKNOWN)


def byteswap(s: Scalar, size_bits: int, swap: bool) -> Scalar:
    """``le``/``be``/``bswap`` of the low ``size_bits``; the result is zero-extended."""
    mask = (1 << size_bits) - 1
    if s.is_const:
        x = s.value & mask
        if swap:
            x = int.from_bytes(x.to_bytes(size_bits // 8, "little"), "big")
        return const(x)
    if not swap:
        return alu("and", s, const(mask), 64) if size_bits < 64 else s
    return unsigned_range(0, mask)


def loaded(size: int, signed: bool = False) -> Scalar:
    """What an unknown ``size``-byte load gives (zero- or sign-extended)."""
    bits = 8 * size
    if size >= 8:
        return UNKNOWN
    if signed:
        return signed_range(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    return unsigned_range(0, (1 << bits) - 1)


# -- branch refinement -------------------------------------------------------------------------

# Relations a conditional jump asserts on its taken branch, and their negations (fall-through).
NEGATE = {"eq": "ne", "ne": "eq", "gt": "le", "ge": "lt", "lt": "ge", "le": "gt", "sgt": "sle", "sge": "slt",
          "slt": "sge", "sle": "sgt", "set": "nset", "nset": "set"}
SWAP = {"eq": "eq", "ne": "ne", "gt": "lt", "ge": "le", "lt": "gt", "le": "ge", "sgt": "slt", "sge": "sle",
        "slt": "sgt", "sle": "sge"}


def _pack(s: Scalar, v: _View, bits: int) -> Scalar | None:
    if v.ul > v.uh or v.sl > v.sh:
        return None
    if bits == 64:
        return sync(s._replace(umin=v.ul, umax=v.uh, smin=v.sl, smax=v.sh, var=v.var))
    return sync(s._replace(u32min=v.ul, u32max=v.uh, s32min=v.sl, s32max=v.sh, var=tn.with_subreg(s.var, v.var)))


_HOLDS = {"eq": lambda x, y, sx, sy: x == y, "ne": lambda x, y, sx, sy: x != y,
          "gt": lambda x, y, sx, sy: x > y, "ge": lambda x, y, sx, sy: x >= y,
          "lt": lambda x, y, sx, sy: x < y, "le": lambda x, y, sx, sy: x <= y,
          "sgt": lambda x, y, sx, sy: sx > sy, "sge": lambda x, y, sx, sy: sx >= sy,
          "slt": lambda x, y, sx, sy: sx < sy, "sle": lambda x, y, sx, sy: sx <= sy,
          "set": lambda x, y, sx, sy: bool(x & y), "nset": lambda x, y, sx, sy: not x & y}


def refine(a: Scalar, b: Scalar, rel: str, bits: int) -> tuple[Scalar, Scalar] | None:
    """Assume ``a <rel> b`` (in ``bits``-bit comparison); the narrowed pair, or None if impossible."""
    if not a.var.mask and not b.var.mask:  # two constants (a loop counter against its bound): decided
        x, y = a.var.value, b.var.value
        if bits == 32:
            x, y = x & U32, y & U32
            sx, sy = s32(x), s32(y)
        else:
            sx, sy = s64(x), s64(y)
        return (a, b) if _HOLDS[rel](x, y, sx, sy) else None
    if rel in ("gt", "ge", "sgt", "sge"):
        r = refine(b, a, SWAP[rel], bits)
        return None if r is None else (r[1], r[0])
    x, y = _view(a, bits), _view(b, bits)
    if rel == "eq":
        if not tn.consistent_intersect(x.var, y.var):
            return None
        var = tn.intersect(x.var, y.var)
        v = _View(max(x.ul, y.ul), min(x.uh, y.uh), max(x.sl, y.sl), min(x.sh, y.sh), var)
        x = y = v
    elif rel == "ne":
        if x.var.mask == 0 and y.var.mask == 0 and x.var.value == y.var.value:
            return None
        x, y = _exclude(x, y, bits), _exclude(y, x, bits)
    elif rel == "lt":
        x = x._replace(uh=min(x.uh, y.uh - 1))
        y = y._replace(ul=max(y.ul, x.ul + 1))
    elif rel == "le":
        x = x._replace(uh=min(x.uh, y.uh))
        y = y._replace(ul=max(y.ul, x.ul))
    elif rel == "slt":
        x = x._replace(sh=min(x.sh, y.sh - 1))
        y = y._replace(sl=max(y.sl, x.sl + 1))
    elif rel == "sle":
        x = x._replace(sh=min(x.sh, y.sh))
        y = y._replace(sl=max(y.sl, x.sl))
    elif rel == "set":
        if (x.var.value | x.var.mask) & (y.var.value | y.var.mask) == 0:
            return None
        if y.var.mask == 0 and y.var.value and y.var.value & (y.var.value - 1) == 0:
            x = x._replace(var=tn.or_(x.var, y.var))
        elif x.var.mask == 0 and x.var.value and x.var.value & (x.var.value - 1) == 0:
            y = y._replace(var=tn.or_(y.var, x.var))
    elif rel == "nset":
        if x.var.value & y.var.value:
            return None
        if y.var.mask == 0:
            x = x._replace(var=tn.and_(x.var, tn.const(~y.var.value)))
        if x.var.mask == 0:
            y = y._replace(var=tn.and_(y.var, tn.const(~x.var.value)))
    na = _pack(a, x, bits)
    nb = _pack(b, y, bits)
    if na is None or nb is None:
        return None
    return na, nb


def _exclude(x: _View, y: _View, bits: int) -> _View:
    """``x != y`` where y is a constant: trim it off x's range ends."""
    if y.var.mask:
        return x
    c = y.var.value
    sc = c - (1 << bits) if c >> (bits - 1) else c
    if x.ul == c:
        x = x._replace(ul=x.ul + 1)
    if x.uh == c:
        x = x._replace(uh=x.uh - 1)
    if x.sl == sc:
        x = x._replace(sl=x.sl + 1)
    if x.sh == sc:
        x = x._replace(sh=x.sh - 1)
    return x
