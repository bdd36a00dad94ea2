"""Numba intrinsics for raw host-memory access and real atomics.

The interpreter addresses every memory region (stack, input, context, map values) through a
host address that the region table holds; these intrinsics turn such an address into one LLVM
load, store, ``atomicrmw`` or ``cmpxchg``. The atomics are real hardware atomics, so they stay
atomic when the memory is a file that several processes have mapped (DESIGN: "Concurrency is
real"). Callers must have bounds-checked the address first: these functions trust it.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

_WIDTH = {1: ir.IntType(8), 2: ir.IntType(16), 4: ir.IntType(32), 8: ir.IntType(64)}


def _ptr(builder, addr, size):
    return builder.inttoptr(addr, _WIDTH[size].as_pointer())


def _make_load(size):
    @intrinsic
    def load(typingctx, addr):
        if not isinstance(addr, types.Integer):
            return None

        def codegen(context, builder, sig, args):
            # align 1: eBPF programs may load at any offset within a region.
            val = builder.load(_ptr(builder, args[0], size), align=1)
            return builder.zext(val, ir.IntType(64)) if size < 8 else val

        return types.uint64(addr), codegen

    return load


def _make_store(size):
    @intrinsic
    def store(typingctx, addr, value):
        if not isinstance(addr, types.Integer) or not isinstance(value, types.Integer):
            return None

        def codegen(context, builder, sig, args):
            val = args[1]
            if val.type.width > size * 8:
                val = builder.trunc(val, _WIDTH[size])
            builder.store(val, _ptr(builder, args[0], size), align=1)
            return context.get_dummy_value()

        return types.void(addr, value), codegen

    return store


load_u8, load_u16, load_u32, load_u64 = (_make_load(s) for s in (1, 2, 4, 8))
store_u8, store_u16, store_u32, store_u64 = (_make_store(s) for s in (1, 2, 4, 8))


def _make_rmw(size, llvm_op):
    @intrinsic
    def rmw(typingctx, addr, value):
        if not isinstance(addr, types.Integer) or not isinstance(value, types.Integer):
            return None

        def codegen(context, builder, sig, args):
            val = args[1]
            if size < 8:
                val = builder.trunc(val, _WIDTH[size])
            old = builder.atomic_rmw(llvm_op, _ptr(builder, args[0], size), val, "seq_cst")
            return builder.zext(old, ir.IntType(64)) if size < 8 else old

        return types.uint64(addr, value), codegen

    return rmw


# Returns the old value, zero-extended to 64 bits.
atomic_add_u32, atomic_add_u64 = _make_rmw(4, "add"), _make_rmw(8, "add")
atomic_or_u32, atomic_or_u64 = _make_rmw(4, "or"), _make_rmw(8, "or")
atomic_and_u32, atomic_and_u64 = _make_rmw(4, "and"), _make_rmw(8, "and")
atomic_xor_u32, atomic_xor_u64 = _make_rmw(4, "xor"), _make_rmw(8, "xor")
atomic_xchg_u32, atomic_xchg_u64 = _make_rmw(4, "xchg"), _make_rmw(8, "xchg")


def _make_cmpxchg(size):
    @intrinsic
    def cmpxchg(typingctx, addr, expected, desired):
        if not all(isinstance(t, types.Integer) for t in (addr, expected, desired)):
            return None

        def codegen(context, builder, sig, args):
            exp, des = args[1], args[2]
            if size < 8:
                exp = builder.trunc(exp, _WIDTH[size])
                des = builder.trunc(des, _WIDTH[size])
            pair = builder.cmpxchg(_ptr(builder, args[0], size), exp, des, "seq_cst", "seq_cst")
            old = builder.extract_value(pair, 0)
            return builder.zext(old, ir.IntType(64)) if size < 8 else old

        return types.uint64(addr, expected, desired), codegen

    return cmpxchg


# Returns the value memory held before the operation (equal to `expected` on success).
cmpxchg_u32, cmpxchg_u64 = _make_cmpxchg(4), _make_cmpxchg(8)



# Byte-range fill and copy as LLVM's memset/memcpy. Written as loops of load_u64/store_u64, LLVM
# vectorises them into scatter/gather instructions (it cannot see that addresses made by
# inttoptr are consecutive), which made clearing a 512-byte stack frame cost more than most
# programs take to run; the intrinsics become a few vector stores or a libc call.
def _i8ptr(builder, addr):
    return builder.inttoptr(addr, ir.IntType(8).as_pointer())


@intrinsic
def fill_zero(typingctx, addr, n):
    if not isinstance(addr, types.Integer) or not isinstance(n, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        size = args[1] if args[1].type.width == 64 else builder.zext(args[1], ir.IntType(64))
        fn = builder.module.declare_intrinsic("llvm.memset", [ir.IntType(8).as_pointer(), ir.IntType(64)])
        builder.call(fn, [_i8ptr(builder, args[0]), ir.Constant(ir.IntType(8), 0), size, ir.Constant(ir.IntType(1), 0)])
        return context.get_dummy_value()

    return types.void(addr, n), codegen


@intrinsic
def copy_bytes(typingctx, dst, src, n):
    """``n`` bytes from ``src`` to ``dst``; the ranges must not overlap."""
    if not all(isinstance(t, types.Integer) for t in (dst, src, n)):
        return None

    def codegen(context, builder, sig, args):
        size = args[2] if args[2].type.width == 64 else builder.zext(args[2], ir.IntType(64))
        i8p = ir.IntType(8).as_pointer()
        fn = builder.module.declare_intrinsic("llvm.memcpy", [i8p, i8p, ir.IntType(64)])
        builder.call(fn, [_i8ptr(builder, args[0]), _i8ptr(builder, args[1]), size, ir.Constant(ir.IntType(1), 0)])
        return context.get_dummy_value()

    return types.void(dst, src, n), codegen


@intrinsic
def never_inline(typingctx):
    """Called first in a function, keeps LLVM from inlining that function into its callers.

    The per-event setup and teardown around the interpreter loop are small enough for LLVM to
    inline into ``run_events``, and doing so changes the loop's code layout, which cost benchmark
    B1 about 15%; the call they cost instead is a few nanoseconds per event."""

    def codegen(context, builder, sig, args):
        builder.function.attributes.add("noinline")
        return context.get_dummy_value()

    return types.void(), codegen
