"""Soundness: whatever the verifier accepts must never trip the engine's runtime bounds check.

A generator builds XDP programs from fragments that touch the stack, the context, the packet
(with and without bounds checks, at fixed and variable offsets) and map values (with and
without null checks and index bounds), joined by forward branches and small bounded loops; a
mutator then changes offsets, immediates, registers and jump targets of random instructions,
which turns safe programs into near-misses. Every program the verifier accepts runs through
the engine on a few packets of different lengths; a load/store fault, a misaligned atomic or a
helper's bad-pointer fault is a soundness bug.

The short run is part of CI; ``BPFMC_SOUNDNESS_SCALE`` multiplies it for the ``slow`` run, and
``python tests/test_verifier_soundness.py N`` runs N programs as a script and prints a summary.
"""

from __future__ import annotations

import os
import random
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

from bpfmc.ebpf.insn import Insn, encode
from bpfmc.ebpf.maps import MapSpec
from bpfmc.ebpf.program import Program
from bpfmc.ebpf.verifier import verify

MAPS = [MapSpec("arr", 2, 4, 24, 4), MapSpec("hash", 1, 8, 16, 8)]
PACKETS = [bytes(range(14)), bytes(range(60)), bytes((i * 7) & 0xFF for i in range(200))]
# Faults that mean an access the verifier should have refused (interp.FAULT_*).
MEMORY_FAULTS = {1: "out_of_bounds_load", 2: "out_of_bounds_store", 6: "misaligned_atomic", 9: "helper_error"}

SIZES = {1: 0x10, 2: 0x08, 4: 0x00, 8: 0x18}
SCRATCH = (0, 4, 5, 7, 8)  # r6 = ctx, r2/r3 = data/data_end, r9 = map value (when looked up)


def _ldx(size: int, dst: int, src: int, off: int) -> Insn:
    return Insn(0x61 & ~0x18 | SIZES[size], dst, src, off)


def _stx(size: int, dst: int, src: int, off: int) -> Insn:
    return Insn(0x63 & ~0x18 | SIZES[size], dst, src, off)


def _st(size: int, dst: int, off: int, imm: int) -> Insn:
    return Insn(0x62 & ~0x18 | SIZES[size], dst, 0, off, imm)


def mov(dst: int, imm: int) -> Insn:
    return Insn(0xB7, dst, 0, 0, imm)


def movr(dst: int, src: int) -> Insn:
    return Insn(0xBF, dst, src)


def alu(code: int, dst: int, imm: int) -> Insn:
    return Insn(0x07 | code, dst, 0, 0, imm)


def jmp(code: int, dst: int, imm: int, off: int) -> Insn:
    return Insn(0x05 | code, dst, 0, off, imm)


def jmpr(code: int, dst: int, src: int, off: int) -> Insn:
    return Insn(0x0D | code, dst, src, off)


EXIT = Insn(0x95)
JGT, JGE, JLT, JEQ, JNE, JSGT, JSLT = 0x20, 0x30, 0xA0, 0x10, 0x50, 0x60, 0xC0


class Gen:
    """Random XDP programs from fragments (each fragment keeps its registers' roles)."""

    def __init__(self, rnd: random.Random):
        self.r = rnd

    def size(self) -> int:
        return self.r.choice((1, 2, 4, 8))

    def scratch(self) -> int:
        return self.r.choice(SCRATCH)

    def small(self) -> int:
        return self.r.choice((0, 1, 2, 3, 4, 7, 8, 13, 14, 15, 16, 20, 23, 24, 31, 32, 60, 64, 255, -1, -8))

    def frag_stack(self) -> list[Insn]:
        off = -self.r.choice((8, 16, 24, 32, 4, 2, 1, 512, 520, 0)) + self.r.choice((0, 0, 0, 1, 4))
        size = self.size()
        out = []
        if self.r.random() < 0.6:
            out.append(_st(size, 10, off, self.small()) if self.r.random() < 0.5 else _stx(size, 10, self.scratch(),
                                                                                           off))
        out.append(_ldx(size, self.scratch(), 10, off))
        return out

    def frag_var_stack(self) -> list[Insn]:
        d = self.scratch()
        mask = self.r.choice((7, 15, 8, 24, 63))
        return [_st(8, 10, -32, 1), _st(8, 10, -24, 2), _st(8, 10, -16, 3), _st(8, 10, -8, 4),
                alu(0x50, d, mask), movr(1, 10), Insn(0x0F, 1, d), _ldx(self.r.choice((1, 8)), self.scratch(), 1,
                                                                         -self.r.choice((32, 40, 8)))]

    def frag_ctx(self) -> list[Insn]:
        return [_ldx(self.r.choice((4, 4, 2, 8)), self.scratch(), 6, self.r.choice((0, 4, 8, 12, 16, 20, 24, 2)))]

    def frag_alu(self) -> list[Insn]:
        code = self.r.choice((0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x90, 0xA0, 0xC0))
        d = self.scratch()
        if self.r.random() < 0.5:
            return [alu(code, d, self.small())]
        return [Insn(0x0F | code, d, self.scratch())]

    def frag_packet(self) -> list[Insn]:
        k = self.r.choice((1, 2, 4, 8, 14, 20, 34, 54, 60))
        off = self.r.choice((0, k - 1, k - 2, k - 4, k - 8, k, 0))
        size = self.size()
        body = [_ldx(size, self.scratch(), 2, off)]
        if self.r.random() < 0.3:
            body.append(_st(size, 2, off, self.small()))
        op = self.r.choice((JGT, JGE))
        return [movr(1, 2), alu(0x00, 1, k), jmpr(op, 1, 3, len(body)), *body]

    def frag_packet_var(self) -> list[Insn]:
        mask = self.r.choice((3, 7, 15, 31, 255))
        k = self.r.choice((1, 2, 4, 8))
        return [mov(4, 0), movr(1, 2), alu(0x00, 1, 1), jmpr(JGT, 1, 3, 7),
                _ldx(1, 4, 2, 0), alu(0x50, 4, mask), movr(5, 2), Insn(0x0F, 5, 4),
                movr(1, 5), alu(0x00, 1, k), jmpr(JGT, 1, 3, 1),
                _ldx(self.r.choice((1, 2, 4, 8)), 0, 5, self.r.choice((0, k - 1, k)))]

    def frag_map(self) -> list[Insn]:
        m = self.r.choice((0, 1))
        spec = MAPS[m]
        key = [_st(4, 10, -8, self.r.choice((0, 1, 5)))] if spec.key_size == 4 else [_st(8, 10, -8, 3)]
        lookup = [*key, movr(2, 10), alu(0x00, 2, -8), Insn(0x18, 1, 5, 0, m), Insn(0x85, 0, 0, 0, 1)]
        off = self.r.choice((0, 4, 8, spec.value_size - 8, spec.value_size - 4, spec.value_size))
        access = [_ldx(self.r.choice((4, 8)), 7, 0, off)]
        if self.r.random() < 0.4:
            access.append(_st(self.r.choice((4, 8)), 0, off, 9))
        if self.r.random() < 0.4:  # variable index into the value
            bound = self.r.choice((8, 16, spec.value_size - 8, spec.value_size))
            access = [_ldx(4, 4, 0, 0), jmp(self.r.choice((JGT, JGE)), 4, bound, 3), movr(5, 0), Insn(0x0F, 5, 4),
                      _ldx(self.r.choice((1, 8)), 7, 5, 0)]
        if self.r.random() < 0.2:
            access.append(Insn(0xDB, 0, 7, self.r.choice((0, 4, 8)), 0))  # lock add [r0+off], r7
        check = [jmp(JEQ, 0, 0, len(access))] if self.r.random() < 0.85 else []
        # the call clobbers r1-r5: give the scratch registers and packet pointers back
        return [*lookup, mov(4, 0), mov(5, 0), *check, *access, *self.reload_packet()]

    def reload_packet(self) -> list[Insn]:
        return [_ldx(4, 2, 6, 0), _ldx(4, 3, 6, 4)]

    def frag_branch(self, inner: list[Insn]) -> list[Insn]:
        d = self.scratch()
        return [jmp(self.r.choice((JGT, JGE, JLT, JEQ, JNE, JSGT, JSLT)), d, self.small(), len(inner)), *inner]

    def frag_loop(self) -> list[Insn]:
        n = self.r.choice((2, 5, 16))
        return [mov(8, 0), alu(0x00, 8, 1), alu(0x00, 0, 3), jmp(JLT, 8, n, -3)]

    def program(self) -> list[Insn]:
        out = [movr(6, 1), *(mov(r, 0) for r in (0, 4, 5, 7, 8)), *self.reload_packet()]
        makers = [self.frag_stack, self.frag_var_stack, self.frag_ctx, self.frag_alu, self.frag_packet,
                  self.frag_packet_var, self.frag_map, self.frag_loop]
        for _ in range(self.r.randint(1, 4)):
            frag = self.r.choice(makers)()
            if self.r.random() < 0.25:
                frag = self.frag_branch(frag)
            out += frag
        out += [mov(0, self.r.choice((0, 1, 2))), EXIT]
        return out

    def mutate(self, prog: list[Insn]) -> list[Insn]:
        """Change fields that keep the encoding valid: offsets of memory and jump instructions,
        immediates of K-form instructions, and registers."""
        prog = list(prog)
        for _ in range(self.r.randint(1, 3)):
            i = self.r.randrange(len(prog) - 1)
            ins = prog[i]
            cls = ins.opcode & 0x07
            if ins.opcode in (0x18, 0x85, 0x95):
                continue
            is_mem = cls in (0x01, 0x02, 0x03)
            is_jmp = cls in (0x05, 0x06)
            what = self.r.choice(("off", "imm", "reg"))
            off, imm, dst, src = ins.off, ins.imm, ins.dst, ins.src
            if what == "off" and (is_mem or is_jmp):
                off += self.r.choice((-8, -4, -1, 1, 2, 4, 8) if is_mem else (-1, 1, 2))
            elif what == "imm" and not ins.opcode & 0x08 and cls in (0x02, 0x04, 0x05, 0x06, 0x07):
                if (ins.opcode & 0xF0) in (0x60, 0x70, 0xC0):
                    imm = self.r.randrange(64)
                else:
                    imm += self.r.choice((-8, -1, 1, 8, 64))
            elif what == "reg":
                if ins.opcode & 0x08 or cls in (0x01, 0x03):
                    src = self.r.choice((0, 1, 2, 3, 4, 5, 6, 7, 8, 10))
                elif dst != 10:
                    dst = self.r.choice((0, 1, 2, 3, 4, 5, 6, 7, 8, 9))
            new = Insn(ins.opcode, dst, src, off, imm)
            if is_jmp and not 0 <= i + 1 + off < len(prog):
                continue
            prog[i] = new
        return prog


def make(seed: int) -> Program:
    g = Gen(random.Random(seed))
    prog = g.program()
    if g.r.random() < 0.45:
        prog = g.mutate(prog)
    return Program(encode(prog), name=f"gen{seed}", prog_type="xdp")


def run_one(seed: int) -> tuple[bool, str | None]:
    """(accepted, soundness failure or None)."""
    from bpfmc.ebpf.elf import ObjectFile
    from bpfmc.worker.engine import Engine

    prog = make(seed)
    v = verify(prog, maps=MAPS, insn_limit=LIMIT)
    if not v.accepted:
        return False, None
    with Engine.from_object(ObjectFile({prog.name: prog}, list(MAPS))) as eng:
        res = eng.run_batch(PACKETS)
        for i in range(len(res)):
            status = int(res.status[i])
            if status in MEMORY_FAULTS:
                err = res.error(i)
                return True, f"seed {seed}: verifier accepted, run faulted ({err}) on a {len(PACKETS[i])}-byte packet"
    return True, None


def run_many(n: int, start: int = 0) -> dict:
    t0 = time.perf_counter()
    accepted = 0
    failures: list[str] = []
    for seed in range(start, start + n):
        ok, fail = run_one(seed)
        accepted += ok
        if fail:
            failures.append(fail)
    return {"programs": n, "accepted": accepted, "rejected": n - accepted, "failures": failures,
            "seconds": round(time.perf_counter() - t0, 1)}


LIMIT = 50_000  # a generated program still running after this is refused as too complex
SCALE = int(os.environ.get("BPFMC_SOUNDNESS_SCALE", "1"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hst.integers(min_value=0, max_value=2**32))
def test_accepted_programs_never_fault(seed):
    accepted, failure = run_one(seed)
    assert failure is None, failure


def test_generator_makes_both_verdicts():
    verdicts = {verify(make(s), maps=MAPS, insn_limit=LIMIT).accepted for s in range(60)}
    assert verdicts == {True, False}


@pytest.mark.slow
def test_soundness_long():
    summary = run_many(2000 * SCALE, start=10_000_000)
    assert not summary["failures"], summary["failures"][:5]


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    start = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    print(run_many(count, start))
