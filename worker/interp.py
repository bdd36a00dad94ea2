"""The interpreter: one compiled loop over a decoded program's columns.

``execute`` runs one program invocation; ``run_batch`` runs a whole batch of inputs without
returning to Python. Registers are ``uint64`` throughout (Numba promotes ``uint64 op int64`` to
float64, so immediates arrive already sign-extended into ``uint64``). Every load, store and
atomic goes through the region table and is bounds-checked; a failed check ends the run with a
fault code, the pc and the address, never touching memory outside the region.

Metering follows ``decode.py``: instructions and cycles are charged per straight-line run when
control arrives, and the budget is checked on backward jumps and calls, which every loop and
every recursion must pass through.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import jitcache  # noqa: F401  (sets the cache folder before anything is compiled)
from .decode import OP_FELL_OFF, OP_MOVSX32, OP_MOVSX64
from .helpers import HELPER_OK, HELPER_UNKNOWN, call_helper
from .intrinsics import (
    atomic_add_u32,
    atomic_add_u64,
    atomic_and_u32,
    atomic_and_u64,
    atomic_or_u32,
    atomic_or_u64,
    atomic_xchg_u32,
    atomic_xchg_u64,
    atomic_xor_u32,
    atomic_xor_u64,
    cmpxchg_u32,
    cmpxchg_u64,
    load_u8,
    load_u16,
    load_u32,
    load_u64,
    store_u8,
    store_u16,
    store_u32,
    store_u64,
)
from .memory import COL_BASE, COL_RLEN, COL_WLEN, REGION_INPUT, REGION_SHIFT, REGION_STACK

# Run outcomes (``status``); everything but OK is a fault that ended the run.
OK = 0
FAULT_LOAD = 1  # load outside readable memory; aux = address
FAULT_STORE = 2  # store outside writable memory; aux = address
FAULT_BUDGET = 3  # instruction budget exhausted; aux = budget
FAULT_CALL_DEPTH = 4  # bpf-to-bpf call nesting too deep; aux = depth limit
FAULT_UNKNOWN_HELPER = 5  # aux = helper id
FAULT_MISALIGNED_ATOMIC = 6  # aux = address
FAULT_BAD_OPCODE = 7  # aux = opcode
FAULT_FELL_OFF = 8  # ran past the last instruction
FAULT_HELPER = 9  # a helper failed; aux = helper id

M32 = np.uint64(0xFFFFFFFF)
U0 = np.uint64(0)
U1 = np.uint64(1)
S32 = np.uint64(32)
SH = np.uint64(REGION_SHIFT)
M5 = np.uint64(31)
M6 = np.uint64(63)
NOREG = np.uint8(0xFF)  # no register is cached


@njit(cache=True, inline="always")
def _sx32(x):
    """Low 32 bits, sign-extended, as int64."""
    return np.int64(x << S32) >> np.int64(32)


@njit(cache=True, inline="always")
def _host(regions, addr, size, limit_col):
    """Host address of ``size`` bytes at tagged ``addr``, or 0 when not allowed."""
    rid = addr >> SH
    if rid >= np.uint64(regions.shape[0]):
        return U0
    off = addr & M32
    if off + np.uint64(size) > regions[rid, limit_col]:
        return U0
    return regions[rid, COL_BASE] + off


@njit(cache=True)
def _sdiv(a, b):
    """Signed division truncating toward zero on int64 operands; INT_MIN / -1 wraps."""
    ua = np.uint64(a) if a >= 0 else U0 - np.uint64(a)
    ub = np.uint64(b) if b >= 0 else U0 - np.uint64(b)
    q = ua // ub
    return U0 - q if (a < 0) != (b < 0) else q


@njit(cache=True)
def _smod(a, b):
    """Signed remainder with the dividend's sign."""
    ua = np.uint64(a) if a >= 0 else U0 - np.uint64(a)
    ub = np.uint64(b) if b >= 0 else U0 - np.uint64(b)
    r = ua % ub
    return U0 - r if a < 0 else r


@njit(cache=True, inline="always")
def _bswap16(x):
    return ((x & np.uint64(0xFF)) << np.uint64(8)) | ((x >> np.uint64(8)) & np.uint64(0xFF))


@njit(cache=True, inline="always")
def _bswap32(x):
    return (
        ((x & np.uint64(0xFF)) << np.uint64(24))
        | ((x & np.uint64(0xFF00)) << np.uint64(8))
        | ((x >> np.uint64(8)) & np.uint64(0xFF00))
        | ((x >> np.uint64(24)) & np.uint64(0xFF))
    )


@njit(cache=True, inline="always")
def _bswap64(x):
    return (_bswap32(x & M32) << S32) | _bswap32(x >> S32)


@njit(cache=True, inline="always")
def _rd(regs, i, cd, cv):
    """Read register i through the one-entry cache of the last register written.

    Most eBPF code chains several operations on one register (``r5 <<= 13; r5 ^= r1``); the
    cache lets the next instruction take that value from a host register instead of waiting
    for the store it just made to be forwarded back from memory, about halving the latency of
    such chains. Writes still go to ``regs`` (write-through), so the array is always current.
    """
    # Branch-free on purpose: a conditional expression would become a branch that mispredicts
    # on the hit pattern; loading unconditionally lets LLVM emit a cmov.
    x = regs[i]
    m = U0 - np.uint64(i == cd)
    return (cv & m) | (x & ~m)


@njit(cache=True, inline="always")
def _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget):
    """Take or skip a conditional jump, charging the run that starts where control lands.
    The last value is True when a backward jump found the budget exhausted."""
    if c:
        t = ctgt[pc]
        ni += crun_len[t]
        return t, ni, nc + crun_cyc[t] + taken_extra, t <= pc and ni > budget
    p = pc + U1
    return p, ni + crun_len[p], nc + crun_cyc[p], False


@njit(cache=True, error_model="numpy")
def execute(cop, cdst, csrc, coff, cimm, ctgt, crun_len, crun_cyc, ccyc, taken_extra,
            regions, regs, frames, core, budget, stack_size, max_depth):
    """Run from pc 0 until the outermost exit or a fault.

    Returns (status, pc, aux, instructions, cycles). ``frames[d]`` saves r6-r9, the return pc
    and r10 of the caller at depth d.
    """
    pc = U0  # unsigned, so Numba indexes the columns without a negative-index fixup
    ni = crun_len[0]
    nc = crun_cyc[0]
    depth = 0
    status = OK
    aux = U0
    cd = NOREG  # register cache: index and value of the last register written
    cv = U0
    over = False
    while True:
        o = cop[pc]
        # ---- ALU64 -----------------------------------------------------------------------
        if o == 0xB7:  # mov imm
            d = cdst[pc]
            cv = cimm[pc]
            regs[d] = cv
            cd = d
            pc += U1
        elif o == 0xBF:  # mov reg
            d = cdst[pc]
            cv = _rd(regs, csrc[pc], cd, cv)
            regs[d] = cv
            cd = d
            pc += U1
        elif o == 0x07:  # add
            d = cdst[pc]
            cv = _rd(regs, d, cd, cv) + cimm[pc]
            regs[d] = cv
            cd = d
            pc += U1
        elif o == 0x0F:
            d = cdst[pc]
            cv = _rd(regs, d, cd, cv) + _rd(regs, csrc[pc], cd, cv)
            regs[d] = cv
            cd = d
            pc += U1
        elif o == 0x17:  # sub
            d = cdst[pc]
            cv = _rd(regs, d, cd, cv) - cimm[pc]
            regs[d] = cv
            cd = d
            pc += U1
        elif o == 0x1F:
            d = cdst[pc]
            cv = _rd(regs, d, cd, cv) - _rd(regs, csrc[pc], cd, cv)
            regs[d] = cv
            cd = d
            pc += U1
        elif o == 0x27:  # mul
            d = cdst[pc]
            cv = _rd(regs, d, cd, cv) * cimm[pc]
            regs[d] = cv
            cd = d
            pc += U1
        elif o == 0x2F:
            d = cdst[pc]
            cv = _rd(regs, d, cd, cv) * _rd(regs, csrc[pc], cd, cv)
            regs[d] = cv
            cd = d
            pc += U1
        elif o == 0x47:  # or
            d = cdst[pc]
            cv = _rd(regs, d, cd, cv) | cimm[pc]
            regs[d] = cv
            cd = d
            pc += U1
        elif o == 0x4F:
            d = cdst[pc]
            cv = _rd(regs, d, cd, cv) | _rd(regs, csrc[pc], cd, cv)
            regs[d] = cv
            cd = d
            pc += U1
        elif o == 0x57:  # and
            d = cdst[pc]
            cv = _rd(regs, d, cd, cv) & cimm[pc]
            regs[d] = cv
            cd = d
            pc += U1
        elif o == 0x5F:
            d = cdst[pc]
            cv = _rd(regs, d, cd, cv) & _rd(regs, csrc[pc], cd, cv)
            regs[d] = cv
            cd = d
            pc += U1
        elif o == 0x67:  # lsh
            d = cdst[pc]
            cv = _rd(regs, d, cd, cv) << (cimm[pc] & M6)
            regs[d] = cv
            cd = d
            pc += U1
        elif o == 0x6F:
            d = cdst[pc]
            cv = _rd(regs, d, cd, cv) << (_rd(regs, csrc[pc], cd, cv) & M6)
            regs[d] = cv
            cd = d
            pc += U1
        elif o == 0x77:  # rsh
            d = cdst[pc]
            cv = _rd(regs, d, cd, cv) >> (cimm[pc] & M6)
            regs[d] = cv
            cd = d
            pc += U1
        elif o == 0x7F:
            d = cdst[pc]
            cv = _rd(regs, d, cd, cv) >> (_rd(regs, csrc[pc], cd, cv) & M6)
            regs[d] = cv
            cd = d
            pc += U1
        elif o == 0xC7:  # arsh
            d = cdst[pc]
            cv = np.uint64(np.int64(_rd(regs, d, cd, cv)) >> np.int64(cimm[pc] & M6))
            regs[d] = cv
            cd = d
            pc += U1
        elif o == 0xCF:
            d = cdst[pc]
            cv = np.uint64(np.int64(_rd(regs, d, cd, cv)) >> np.int64(_rd(regs, csrc[pc], cd, cv) & M6))
            regs[d] = cv
            cd = d
            pc += U1
        elif o == 0xA7:  # xor
            d = cdst[pc]
            cv = _rd(regs, d, cd, cv) ^ cimm[pc]
            regs[d] = cv
            cd = d
            pc += U1
        elif o == 0xAF:
            d = cdst[pc]
            cv = _rd(regs, d, cd, cv) ^ _rd(regs, csrc[pc], cd, cv)
            regs[d] = cv
            cd = d
            pc += U1
        elif o == 0x87:  # neg
            d = cdst[pc]
            cv = U0 - _rd(regs, d, cd, cv)
            regs[d] = cv
            cd = d
            pc += U1
        elif o == OP_MOVSX64:  # movsx 8/16/32 -> 64 (0xbf with off = width)
            d = cdst[pc]
            sh = np.uint64(64) - np.uint64(coff[pc])
            cv = np.uint64(np.int64(_rd(regs, csrc[pc], cd, cv) << sh) >> np.int64(sh))
            regs[d] = cv
            cd = d
            pc += U1
        elif o == 0x37 or o == 0x3F or o == 0x97 or o == 0x9F:  # div / mod, sdiv / smod (off = 1)
            d = cdst[pc]
            b = cimm[pc] if o & 0x08 == 0 else _rd(regs, csrc[pc], cd, cv)
            a = _rd(regs, d, cd, cv)
            if o & 0xF0 == 0x30:
                if b == U0:
                    a = U0
                elif coff[pc] == 0:
                    a = a // b
                else:
                    a = _sdiv(np.int64(a), np.int64(b))
            elif b != U0:  # modulo by zero leaves dst unchanged
                if coff[pc] == 0:
                    a = a % b
                else:
                    a = _smod(np.int64(a), np.int64(b))
            cv = a
            regs[d] = cv
            cd = d
            pc += U1
        # ---- memory ----------------------------------------------------------------------
        elif o == 0x79 or o == 0x61 or o == 0x69 or o == 0x71:  # ldx dw/w/h/b
            addr = _rd(regs, csrc[pc], cd, cv) + np.uint64(coff[pc])
            sz = 8 if o == 0x79 else (4 if o == 0x61 else (2 if o == 0x69 else 1))
            h = _host(regions, addr, sz, COL_RLEN)
            if h == U0:
                status = FAULT_LOAD
                aux = addr
                break
            if sz == 8:
                cv = load_u64(h)
            elif sz == 4:
                cv = load_u32(h)
            elif sz == 2:
                cv = load_u16(h)
            else:
                cv = load_u8(h)
            d = cdst[pc]
            regs[d] = cv
            cd = d
            pc += U1
        elif o == 0x7B or o == 0x63 or o == 0x6B or o == 0x73 or o == 0x7A or o == 0x62 or o == 0x6A or o == 0x72:
            # stx / st  (dw, w, h, b)
            addr = _rd(regs, cdst[pc], cd, cv) + np.uint64(coff[pc])
            v = _rd(regs, csrc[pc], cd, cv) if o & 0x07 == 0x03 else cimm[pc]
            sz = o & 0x18
            n = 8 if sz == 0x18 else (4 if sz == 0x00 else (2 if sz == 0x08 else 1))
            h = _host(regions, addr, n, COL_WLEN)
            if h == U0:
                status = FAULT_STORE
                aux = addr
                break
            if n == 8:
                store_u64(h, v)
            elif n == 4:
                store_u32(h, v)
            elif n == 2:
                store_u16(h, v)
            else:
                store_u8(h, v)
            pc += U1
        elif o == 0x81 or o == 0x89 or o == 0x91:  # ldxs w/h/b: sign-extending loads
            addr = _rd(regs, csrc[pc], cd, cv) + np.uint64(coff[pc])
            sz = 4 if o == 0x81 else (2 if o == 0x89 else 1)
            h = _host(regions, addr, sz, COL_RLEN)
            if h == U0:
                status = FAULT_LOAD
                aux = addr
                break
            if sz == 4:
                cv = np.uint64(np.int64(load_u32(h) << S32) >> np.int64(32))
            elif sz == 2:
                cv = np.uint64(np.int64(load_u16(h) << np.uint64(48)) >> np.int64(48))
            else:
                cv = np.uint64(np.int64(load_u8(h) << np.uint64(56)) >> np.int64(56))
            d = cdst[pc]
            regs[d] = cv
            cd = d
            pc += U1
        elif o == 0x18:  # lddw
            d = cdst[pc]
            cv = cimm[pc]
            regs[d] = cv
            cd = d
            pc += np.uint64(2)
        # ---- control flow (64-bit compares) ----------------------------------------------
        elif o == 0x05 or o == 0x06:  # ja, ja32
            pc, ni, nc, over = _branch(True, pc, ctgt, crun_len, crun_cyc, 0, ni, nc, budget)
            if over:
                status = FAULT_BUDGET
                break
        elif o == 0x15:
            pc, ni, nc, over = _branch(_rd(regs, cdst[pc], cd, cv) == cimm[pc], pc, ctgt, crun_len, crun_cyc,
                                       taken_extra, ni, nc, budget)
            if over:
                status = FAULT_BUDGET
                break
        elif o == 0x1D:
            pc, ni, nc, over = _branch(_rd(regs, cdst[pc], cd, cv) == _rd(regs, csrc[pc], cd, cv), pc, ctgt,
                                       crun_len, crun_cyc, taken_extra, ni, nc, budget)
            if over:
                status = FAULT_BUDGET
                break
        elif o == 0x55:
            pc, ni, nc, over = _branch(_rd(regs, cdst[pc], cd, cv) != cimm[pc], pc, ctgt, crun_len, crun_cyc,
                                       taken_extra, ni, nc, budget)
            if over:
                status = FAULT_BUDGET
                break
        elif o == 0x5D:
            pc, ni, nc, over = _branch(_rd(regs, cdst[pc], cd, cv) != _rd(regs, csrc[pc], cd, cv), pc, ctgt,
                                       crun_len, crun_cyc, taken_extra, ni, nc, budget)
            if over:
                status = FAULT_BUDGET
                break
        elif o == 0x25:
            pc, ni, nc, over = _branch(_rd(regs, cdst[pc], cd, cv) > cimm[pc], pc, ctgt, crun_len, crun_cyc,
                                       taken_extra, ni, nc, budget)
            if over:
                status = FAULT_BUDGET
                break
        elif o == 0xA5:
            pc, ni, nc, over = _branch(_rd(regs, cdst[pc], cd, cv) < cimm[pc], pc, ctgt, crun_len, crun_cyc,
                                       taken_extra, ni, nc, budget)
            if over:
                status = FAULT_BUDGET
                break
        elif o == 0x95:  # exit
            if depth == 0:
                break
            depth -= 1
            regs[6] = frames[depth, 0]
            regs[7] = frames[depth, 1]
            regs[8] = frames[depth, 2]
            regs[9] = frames[depth, 3]
            regs[10] = frames[depth, 5]
            cd = NOREG
            pc = frames[depth, 4]
            ni += crun_len[pc]
            nc += crun_cyc[pc]
        elif o == 0x85:  # call
            cd = NOREG
            if csrc[pc] == 0:  # helper: its cost is part of the run already
                hs = call_helper(cimm[pc], regs, core, nc)
                if hs != HELPER_OK:
                    status = FAULT_UNKNOWN_HELPER if hs == HELPER_UNKNOWN else FAULT_HELPER
                    aux = cimm[pc]
                    break
                pc += U1
            else:  # bpf-to-bpf call: a new frame with its own stack
                if depth + 1 >= max_depth:
                    status = FAULT_CALL_DEPTH
                    aux = np.uint64(max_depth)
                    break
                if ni > budget:
                    status = FAULT_BUDGET
                    break
                frames[depth, 0] = regs[6]
                frames[depth, 1] = regs[7]
                frames[depth, 2] = regs[8]
                frames[depth, 3] = regs[9]
                frames[depth, 4] = pc + U1
                frames[depth, 5] = regs[10]
                depth += 1
                regs[10] -= np.uint64(stack_size)
                t = ctgt[pc]
                ni += crun_len[t]
                nc += crun_cyc[t]
                pc = t
        # ---- ALU32: operands' low 32 bits, result zero-extended ---------------------------
        elif o == 0xB4:  # mov32 imm
            d = cdst[pc]
            cv = cimm[pc] & M32
            regs[d] = cv
            cd = d
            pc += U1
        elif o == 0xBC:  # mov32 reg
            d = cdst[pc]
            cv = _rd(regs, csrc[pc], cd, cv) & M32
            regs[d] = cv
            cd = d
            pc += U1
        elif o == OP_MOVSX32:  # movsx 8/16 -> 32 (0xbc with off = width)
            d = cdst[pc]
            sh = np.uint64(64) - np.uint64(coff[pc])
            cv = np.uint64(np.int64(_rd(regs, csrc[pc], cd, cv) << sh) >> np.int64(sh)) & M32
            regs[d] = cv
            cd = d
            pc += U1
        elif (o & 0x07) == 0x04 and o != 0xD4 and o != 0xDC:
            # The other ALU32 operations share one handler: the operation is a second dispatch.
            d = cdst[pc]
            a = _rd(regs, d, cd, cv) & M32
            b = (cimm[pc] if o & 0x08 == 0 else _rd(regs, csrc[pc], cd, cv)) & M32
            aop = o & 0xF0
            if aop == 0x00:
                a = (a + b) & M32
            elif aop == 0x10:
                a = (a - b) & M32
            elif aop == 0x20:
                a = (a * b) & M32
            elif aop == 0x40:
                a = a | b
            elif aop == 0x50:
                a = a & b
            elif aop == 0xA0:
                a = a ^ b
            elif aop == 0x60:
                a = (a << (b & M5)) & M32
            elif aop == 0x70:
                a = a >> (b & M5)
            elif aop == 0xC0:
                a = np.uint64(_sx32(a) >> np.int64(b & M5)) & M32
            elif aop == 0x80:
                a = (U0 - a) & M32
            elif aop == 0x30:
                if b == U0:
                    a = U0
                elif coff[pc] == 0:
                    a = a // b
                else:
                    a = _sdiv(_sx32(a), _sx32(b)) & M32
            elif aop == 0x90:
                if b != U0:
                    if coff[pc] == 0:
                        a = a % b
                    else:
                        a = _smod(_sx32(a), _sx32(b)) & M32
            else:
                status = FAULT_BAD_OPCODE
                aux = np.uint64(o)
                break
            cv = a
            regs[d] = cv
            cd = d
            pc += U1
        # ---- byte order ------------------------------------------------------------------
        elif o == 0xD4 or o == 0xDC or o == 0xD7:  # le, be, bswap
            d = cdst[pc]
            w = cimm[pc]
            x = _rd(regs, d, cd, cv)
            if o == 0xD4:  # to little-endian: the host order, so only truncate
                if w == 16:
                    x = x & np.uint64(0xFFFF)
                elif w == 32:
                    x = x & M32
            elif w == 16:
                x = _bswap16(x & np.uint64(0xFFFF))
            elif w == 32:
                x = _bswap32(x & M32)
            else:
                x = _bswap64(x)
            cv = x
            regs[d] = cv
            cd = d
            pc += U1
        elif o == 0xDB or o == 0xC3:  # atomics
            addr = _rd(regs, cdst[pc], cd, cv) + np.uint64(coff[pc])
            wide = o == 0xDB
            n = 8 if wide else 4
            h = _host(regions, addr, n, COL_WLEN)
            if h == U0:
                status = FAULT_STORE
                aux = addr
                break
            if addr & np.uint64(n - 1) != U0:
                status = FAULT_MISALIGNED_ATOMIC
                aux = addr
                break
            cd = NOREG
            s = csrc[pc]
            v = regs[s]
            aop = cimm[pc]
            if aop == 0xF1:  # cmpxchg: r0 holds the expected value and receives the old one
                if wide:
                    regs[0] = cmpxchg_u64(h, regs[0], v)
                else:
                    regs[0] = cmpxchg_u32(h, regs[0] & M32, v & M32)
            else:
                base = aop & np.uint64(0xF0)
                if base == 0x00:
                    old = atomic_add_u64(h, v) if wide else atomic_add_u32(h, v)
                elif base == 0x40:
                    old = atomic_or_u64(h, v) if wide else atomic_or_u32(h, v)
                elif base == 0x50:
                    old = atomic_and_u64(h, v) if wide else atomic_and_u32(h, v)
                elif base == 0xA0:
                    old = atomic_xor_u64(h, v) if wide else atomic_xor_u32(h, v)
                else:  # 0xE0: xchg
                    old = atomic_xchg_u64(h, v) if wide else atomic_xchg_u32(h, v)
                if aop & U1 != U0:  # fetch: src receives the old value
                    regs[s] = old
            pc += U1
        elif o == 0x8D:  # callx: helper id in dst (the conformance suite's convention)
            cd = NOREG
            hid = regs[cdst[pc]]
            hs = call_helper(hid, regs, core, nc)
            if hs != HELPER_OK:
                status = FAULT_UNKNOWN_HELPER if hs == HELPER_UNKNOWN else FAULT_HELPER
                aux = hid
                break
            pc += U1
            ni += crun_len[pc]
            nc += crun_cyc[pc]
        elif o == OP_FELL_OFF:
            status = FAULT_FELL_OFF
            break
        else:
            # ---- the remaining conditional jumps, 64- and 32-bit --------------------------
            cls = o & 0x07
            if cls != 0x05 and cls != 0x06:
                status = FAULT_BAD_OPCODE
                aux = np.uint64(o)
                break
            a = _rd(regs, cdst[pc], cd, cv)
            b = cimm[pc] if o & 0x08 == 0 else _rd(regs, csrc[pc], cd, cv)
            if cls == 0x06:
                a &= M32
                b &= M32
            jop = o & 0xF0
            if jop == 0x10:
                c = a == b
            elif jop == 0x50:
                c = a != b
            elif jop == 0x20:
                c = a > b
            elif jop == 0x30:
                c = a >= b
            elif jop == 0xA0:
                c = a < b
            elif jop == 0xB0:
                c = a <= b
            elif jop == 0x40:
                c = (a & b) != U0
            else:
                sa = _sx32(a) if cls == 0x06 else np.int64(a)
                sb = _sx32(b) if cls == 0x06 else np.int64(b)
                if jop == 0x60:
                    c = sa > sb
                elif jop == 0x70:
                    c = sa >= sb
                elif jop == 0xC0:
                    c = sa < sb
                elif jop == 0xD0:
                    c = sa <= sb
                else:
                    status = FAULT_BAD_OPCODE
                    aux = np.uint64(o)
                    break
            pc, ni, nc, over = _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
            if over:
                status = FAULT_BUDGET
                break
    if status == FAULT_BUDGET:
        aux = np.uint64(budget)
    elif status != OK:
        # Give back the part of the run after the faulting instruction.
        ni -= crun_len[pc] - 1
        nc -= crun_cyc[pc] - ccyc[pc]
    return status, pc, aux, ni, nc


@njit(cache=True)
def run_batch(cop, cdst, csrc, coff, cimm, ctgt, crun_len, crun_cyc, ccyc, taken_extra,
              regions, regs, frames, core, stack, inbuf, budget, stack_size, max_depth,
              blob, offsets, out_r0, out_insns, out_cycles, out_status, out_pc, out_aux, out_data):
    """Run every input of a batch: input ``e`` is ``blob[offsets[e]:offsets[e+1]]``.

    Each run gets a fresh copy of its input (r1 points at it, r2 holds its length), a zeroed
    outermost stack frame, and zeroed registers. The input as the program left it is copied
    back into ``out_data`` at the same offsets.
    """
    stack_top = np.uint64(stack.shape[0])
    for e in range(offsets.shape[0] - 1):
        start = offsets[e]
        length = offsets[e + 1] - start
        inbuf[:length] = blob[start:start + length]
        regions[REGION_INPUT, COL_RLEN] = np.uint64(length)
        regions[REGION_INPUT, COL_WLEN] = np.uint64(length)
        stack[stack.shape[0] - stack_size:] = 0
        for i in range(regs.shape[0]):
            regs[i] = U0
        regs[1] = np.uint64(REGION_INPUT) << SH
        regs[2] = np.uint64(length)
        regs[10] = (np.uint64(REGION_STACK) << SH) | stack_top
        status, pc, aux, ni, nc = execute(cop, cdst, csrc, coff, cimm, ctgt, crun_len, crun_cyc, ccyc,
                                          taken_extra, regions, regs, frames, core, budget, stack_size,
                                          max_depth)
        out_r0[e] = regs[0]
        out_insns[e] = ni
        out_cycles[e] = nc
        out_status[e] = status
        out_pc[e] = pc
        out_aux[e] = aux
        out_data[start:start + length] = inbuf[:length]
    regions[REGION_INPUT, COL_RLEN] = U0
    regions[REGION_INPUT, COL_WLEN] = U0
