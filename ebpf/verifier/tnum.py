"""Tristate numbers: the known bits of a 64-bit value, as the kernel's ``tnum``.

A tnum is ``(value, mask)``: bits set in ``mask`` are unknown, the others equal ``value``'s.
Every operation over-approximates: the result contains every concrete result of the operation
on any pair of members. Values are plain Python ints kept in ``[0, 2**64)``.
"""

from __future__ import annotations

from typing import NamedTuple

U64 = (1 << 64) - 1
U32 = (1 << 32) - 1


class Tnum(NamedTuple):
    value: int
    mask: int

    @property
    def is_const(self) -> bool:
        return self.mask == 0

    @property
    def umin(self) -> int:
        return self.value

    @property
    def umax(self) -> int:
        return self.value | self.mask

    def contains(self, other: Tnum) -> bool:
        """Every member of ``other`` is a member of ``self``."""
        if other.mask & ~self.mask & U64:
            return False
        return (other.value & ~self.mask) == (self.value & ~self.mask)

    def member(self, v: int) -> bool:
        return (v & ~self.mask & U64) == self.value

    def __str__(self) -> str:
        if self.mask == 0:
            return f"{self.value:#x}"
        return f"({self.value:#x}; {self.mask:#x})"


UNKNOWN = Tnum(0, U64)


def const(v: int) -> Tnum:
    return Tnum(v & U64, 0)


def from_range(lo: int, hi: int) -> Tnum:
    """The smallest tnum holding every value of ``[lo, hi]`` (unsigned)."""
    chi = lo ^ hi
    if chi == 0:
        return Tnum(lo, 0)
    bits = chi.bit_length()
    if bits > 63:
        return UNKNOWN
    delta = (1 << bits) - 1
    return Tnum(lo & ~delta & U64, delta)


def add(a: Tnum, b: Tnum) -> Tnum:
    sm = (a.mask + b.mask) & U64
    sv = (a.value + b.value) & U64
    sigma = (sm + sv) & U64
    chi = sigma ^ sv
    mu = chi | a.mask | b.mask
    return Tnum(sv & ~mu & U64, mu & U64)


def sub(a: Tnum, b: Tnum) -> Tnum:
    dv = (a.value - b.value) & U64
    alpha = (dv + a.mask) & U64
    beta = (dv - b.mask) & U64
    chi = alpha ^ beta
    mu = chi | a.mask | b.mask
    return Tnum(dv & ~mu & U64, mu & U64)


def and_(a: Tnum, b: Tnum) -> Tnum:
    alpha = a.value | a.mask
    beta = b.value | b.mask
    v = a.value & b.value
    return Tnum(v, alpha & beta & ~v & U64)


def or_(a: Tnum, b: Tnum) -> Tnum:
    v = a.value | b.value
    mu = a.mask | b.mask
    return Tnum(v, mu & ~v & U64)


def xor(a: Tnum, b: Tnum) -> Tnum:
    v = a.value ^ b.value
    mu = a.mask | b.mask
    return Tnum(v & ~mu & U64, mu)


def lshift(a: Tnum, k: int) -> Tnum:
    return Tnum((a.value << k) & U64, (a.mask << k) & U64)


def rshift(a: Tnum, k: int) -> Tnum:
    return Tnum(a.value >> k, a.mask >> k)


def arshift(a: Tnum, k: int, bits: int = 64) -> Tnum:
    """Arithmetic shift of the low ``bits`` bits (32 or 64); the result is zero-extended."""
    full = (1 << bits) - 1

    def sar(x: int) -> int:
        x &= full
        if x >> (bits - 1):
            x -= 1 << bits
        return (x >> k) & full

    return Tnum(sar(a.value), sar(a.mask))


def mul(a: Tnum, b: Tnum) -> Tnum:
    # Long multiplication where each partial product is either known (a bit of b known set) or
    # an unknown-or-zero copy of a: the kernel's tnum_mul.
    # On plain ints: the accumulator's value stays 0 (it only ever adds value-0 tnums), so
    # add(acc, (0, t)) is acc_mask' = (acc_mask + t) | acc_mask | t; once every bit is unknown
    # nothing can make one known again, so the loop may stop.
    acc_v = (a.value * b.value) & U64
    acc = 0
    xv, xm, yv, ym = a.value, a.mask, b.value, b.mask
    while (xv or xm) and acc != U64:
        if xv & 1:
            t = ym
        elif xm & 1:
            t = yv | ym
        else:
            t = 0
        if t:
            acc = ((acc + t) | acc | t) & U64
        xv, xm = xv >> 1, xm >> 1
        yv, ym = (yv << 1) & U64, (ym << 1) & U64
    return add(Tnum(acc_v, 0), Tnum(0, acc))


def intersect(a: Tnum, b: Tnum) -> Tnum:
    v = a.value | b.value
    mu = a.mask & b.mask
    return Tnum(v & ~mu & U64, mu)


def consistent_intersect(a: Tnum, b: Tnum) -> bool:
    """Whether ``a`` and ``b`` share at least one member (their known bits agree)."""
    known = ~a.mask & ~b.mask & U64
    return (a.value & known) == (b.value & known)


def subreg(a: Tnum) -> Tnum:
    return Tnum(a.value & U32, a.mask & U32)


def clear_subreg(a: Tnum) -> Tnum:
    return Tnum(a.value & ~U32 & U64, a.mask & ~U32 & U64)


def with_subreg(a: Tnum, low: Tnum) -> Tnum:
    return or_(clear_subreg(a), subreg(low))


def cast(a: Tnum, size: int) -> Tnum:
    """Truncate to ``size`` bytes."""
    m = (1 << (8 * size)) - 1
    return Tnum(a.value & m, a.mask & m)


def is_aligned(a: Tnum, size: int) -> bool:
    if size <= 1:
        return True
    return ((a.value | a.mask) & (size - 1)) == 0
