"""Random straight-line ALU/JMP programs: the engine against the host kernel and a reference.

Every program is generated from one integer seed (reproducible: ``generate(seed)``), starts by
giving r0-r9 constants (the kernel refuses reads of uninitialised registers), then mixes ALU64
and ALU32 operations with forward jumps, and ends by folding every register into r0 and r0's
high half into its low half before ``exit``. The fold makes a wrong value in any register, in
any bit, visible in the 32 bits that ``BPF_PROG_TEST_RUN`` reports.

Two tests use the same generator:

* ``test_engine_matches_kernel`` (marked ``kernel``): each program is loaded into the host
  kernel as a socket filter and test-run on a 64-byte packet; the kernel's 32-bit return value
  must equal the low half of the engine's r0, and the reference evaluator must agree with both.
  A program the kernel refuses is a generator bug and fails with the verifier log.
* ``test_engine_matches_reference`` runs everywhere: a larger set of programs through the
  engine only, against :func:`reference_run`, a small evaluator written from RFC 9669. It
  compares all 64 bits of r0 and the executed-instruction count, which checks the engine's
  per-block metering across taken and fall-through jumps.

A mismatch is reported with the seed, the disassembly and a shrunk program that still shows it.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest

from bpfmc.ebpf import opcodes as op
from bpfmc.ebpf.insn import Insn, decode, pcs
from bpfmc.ebpf.program import Program
from bpfmc.worker.engine import Engine

U64 = (1 << 64) - 1
U32 = (1 << 32) - 1

# Kernel side: BPF_PROG_TEST_RUN of a socket filter wants at least an Ethernet header (14
# bytes). The programs never read it (r1 is overwritten first), so its content does not matter.
PACKET = bytes(range(64))

# CI size: a few seconds in all. BPFMC_DIFF_SCALE=N runs N times as many programs per batch
# (a soak run; the first programs of each batch stay the same).
SCALE = int(os.environ.get("BPFMC_DIFF_SCALE", "1"))
KERNEL_BATCHES = range(4)
KERNEL_PROGRAMS_PER_BATCH = 300 * SCALE
ENGINE_BATCHES = range(8)
ENGINE_PROGRAMS_PER_BATCH = 500 * SCALE


# --- generator -------------------------------------------------------------------------------

# Values that sit on the edges of every operation: zero, one, all-ones, the signed extremes of
# each width, byte/half boundaries (for movsx and byte swaps), and a 33-bit value that only a
# 64-bit operation can see.
EDGE64 = [0, 1, 2, U64, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, U32,
          1 << 32, 0x7FFFFFFFFFFFFFFF, 1 << 63, 0xFFFFFFFF80000000, 0x0123456789ABCDEF]
EDGE32 = [0, 1, 2, -1, -2, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, -0x80000000, 63, 64, 31, 32]

BINARY_OPS = [op.BPF_ADD, op.BPF_SUB, op.BPF_MUL, op.BPF_DIV, op.BPF_MOD, op.BPF_OR, op.BPF_AND,
              op.BPF_XOR, op.BPF_LSH, op.BPF_RSH, op.BPF_ARSH, op.BPF_MOV]
DIVISIONS = (op.BPF_DIV, op.BPF_MOD)
SHIFTS = (op.BPF_LSH, op.BPF_RSH, op.BPF_ARSH)
COND_JUMPS = list(op.JMP_OP_NAMES)
REGS = range(10)  # r0-r9: r10 is never written, and never read (it is a pointer to the kernel)


def _value64(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.4:
        return rng.choice(EDGE64)
    if r < 0.6:
        return rng.randrange(-16, 17) & U64
    if r < 0.8:
        return rng.getrandbits(32)
    return rng.getrandbits(64)


def _imm32(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.5:
        return rng.choice(EDGE32)
    if r < 0.75:
        return rng.randrange(-16, 17)
    return rng.getrandbits(32) - (1 << 31)


@dataclass(frozen=True)
class Item:
    """One instruction of a generated program; a jump names its target by item index, so that
    items can be removed (unreachable ones, or while shrinking) and offsets recomputed."""

    insn: Insn
    target: int | None = None


def _lddw(dst: int, value: int) -> Insn:
    return Insn(op.LDDW, dst, imm=value & U64)


def _init(rng: random.Random, reg: int) -> Insn:
    value = _value64(rng)
    kind = rng.random()
    if kind < 0.4:
        return _lddw(reg, value)
    cls = op.BPF_ALU64 if kind < 0.7 else op.BPF_ALU  # mov sign-extends, mov32 zero-extends
    return Insn(cls | op.BPF_MOV | op.BPF_K, reg, imm=_imm32(rng))


def _alu(rng: random.Random) -> Insn:
    dst = rng.choice(REGS)
    src = rng.choice(REGS)
    alu64 = rng.random() < 0.5
    cls = op.BPF_ALU64 if alu64 else op.BPF_ALU
    r = rng.random()
    if r < 0.04:
        return Insn(cls | op.BPF_NEG, dst)
    if r < 0.10:  # movsx: only from a register, ALU32 knows 8 and 16 bits
        return Insn(cls | op.BPF_MOV | op.BPF_X, dst, src, off=rng.choice((8, 16, 32) if alu64 else (8, 16)))
    if r < 0.14:
        return Insn(op.BPF_ALU64 | op.BPF_END | op.BPF_TO_LE, dst, imm=rng.choice((16, 32, 64)))  # bswap
    if r < 0.20:
        return Insn(op.BPF_ALU | op.BPF_END | rng.choice((op.BPF_TO_LE, op.BPF_TO_BE)), dst,
                    imm=rng.choice((16, 32, 64)))
    if r < 0.22:
        return _lddw(dst, _value64(rng))
    code = rng.choice(BINARY_OPS)
    off = 1 if code in DIVISIONS and rng.random() < 0.5 else 0  # sdiv/smod
    if rng.random() < 0.5:
        return Insn(cls | code | op.BPF_X, dst, src, off=off)
    if code in DIVISIONS:
        imm = _imm32(rng) or rng.choice((1, -1, 3))  # the verifier refuses a constant divisor of 0
    elif code in SHIFTS:
        imm = rng.randrange(64 if alu64 else 32)  # ... and constant shifts past the width
    else:
        imm = _imm32(rng)
    return Insn(cls | code | op.BPF_K, dst, off=off, imm=imm)


def _jump(rng: random.Random) -> Insn:
    r = rng.random()
    if r < 0.08:
        return Insn(op.JA)
    if r < 0.12:
        return Insn(op.JA32)  # gotol: the offset lives in imm
    cls = op.BPF_JMP if rng.random() < 0.5 else op.BPF_JMP32
    code = rng.choice(COND_JUMPS)
    if rng.random() < 0.5:
        return Insn(cls | code | op.BPF_X, rng.choice(REGS), rng.choice(REGS))
    return Insn(cls | code | op.BPF_K, rng.choice(REGS), imm=_imm32(rng))


def _fold_tail() -> list[Insn]:
    # r0 = ((r0 * K) + r1) * K + r2 ...; then r0 ^= r0 >> 32, so the kernel's 32-bit retval
    # depends on every bit of every register.
    out: list[Insn] = []
    for reg in range(1, 10):
        out.append(Insn(op.BPF_ALU64 | op.BPF_MUL | op.BPF_K, op.R0, imm=0x2545F491))
        out.append(Insn(op.BPF_ALU64 | op.BPF_ADD | op.BPF_X, op.R0, reg))
    out += [Insn(op.BPF_ALU64 | op.BPF_MOV | op.BPF_X, op.R1, op.R0),
            Insn(op.BPF_ALU64 | op.BPF_RSH | op.BPF_K, op.R1, imm=32),
            Insn(op.BPF_ALU64 | op.BPF_XOR | op.BPF_X, op.R0, op.R1)]
    return out


def generate_items(seed: int, max_body: int = 40) -> list[Item]:
    rng = random.Random(seed)
    regs = list(REGS)
    rng.shuffle(regs)
    items = [Item(_init(rng, reg)) for reg in regs]
    body_start = len(items)
    body = rng.randrange(1, max_body + 1)
    jump_rate = rng.choice((0.1, 0.25, 0.4))
    for _ in range(body):
        items.append(Item(_jump(rng)) if rng.random() < jump_rate else Item(_alu(rng)))
    fold = rng.random() < 0.9  # now and then r0 goes straight to exit, unmixed
    items += [Item(i) for i in (_fold_tail() if fold else [])]
    items.append(Item(Insn(op.EXIT)))
    # Jumps go forward only (no loops), to any later item of the body, the tail or the exit.
    items = [replace(it, target=rng.randrange(k + 1, len(items)))
             if _is_jump(it.insn) and k >= body_start else it for k, it in enumerate(items)]
    return prune_unreachable(items)


def _is_jump(insn: Insn) -> bool:
    return op.is_jmp(insn.opcode) and insn.opcode not in (op.EXIT, op.CALL, op.CALLX)


def _successors(items: list[Item], k: int) -> list[int]:
    insn = items[k].insn
    if insn.opcode == op.EXIT:
        return []
    if insn.opcode in (op.JA, op.JA32):
        return [items[k].target]
    if _is_jump(insn):
        return [k + 1, items[k].target]
    return [k + 1]


def prune_unreachable(items: list[Item]) -> list[Item]:
    """Drop items no path reaches (the kernel refuses programs with unreachable instructions).
    A jump into a dropped item is itself unreachable, so every kept target survives."""
    seen, todo = {0}, [0]
    while todo:
        for nxt in _successors(items, todo.pop()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    keep = sorted(seen)
    new_index = {old: new for new, old in enumerate(keep)}
    return [replace(items[k], target=None if items[k].target is None else new_index[items[k].target])
            for k in keep]


def encode_items(items: list[Item]) -> bytes:
    slot, slots = 0, []
    for it in items:
        slots.append(slot)
        slot += it.insn.slots
    out = []
    for k, it in enumerate(items):
        insn = it.insn
        if it.target is not None:
            rel = slots[it.target] - slots[k] - 1
            insn = replace(insn, imm=rel) if insn.opcode == op.JA32 else replace(insn, off=rel)
        out.append(insn.encode())
    return b"".join(out)


def generate(seed: int) -> bytes:
    return encode_items(generate_items(seed))


# --- reference evaluator (RFC 9669, section 4) -----------------------------------------------


def _s64(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


def _s32(v: int) -> int:
    v &= U32
    return v - (1 << 32) if v >> 31 else v


def _sext(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _bswap(v: int, nbytes: int) -> int:
    return int.from_bytes((v & ((1 << 8 * nbytes) - 1)).to_bytes(nbytes, "little"), "big")


def _trunc_div(a: int, b: int) -> int:
    # Signed division truncates toward zero (C semantics), unlike Python's floor division.
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def _alu_result(code: int, off: int, dst: int, src: int, bits: int) -> int:
    """One ALU operation on ``bits``-wide unsigned operands; the result, still ``bits`` wide
    (the caller zero-extends a 32-bit result)."""
    mask = (1 << bits) - 1

    def signed(v: int) -> int:
        return _sext(v, bits)

    if code == op.BPF_ADD:
        return (dst + src) & mask
    if code == op.BPF_SUB:
        return (dst - src) & mask
    if code == op.BPF_MUL:
        return (dst * src) & mask
    if code == op.BPF_DIV:  # division by zero gives 0
        if src == 0:
            return 0
        return (_trunc_div(signed(dst), signed(src)) if off else dst // src) & mask
    if code == op.BPF_MOD:  # modulo by zero leaves dst as it was (its low 32 bits for ALU32)
        if src == 0:
            return dst
        if off:
            a, b = signed(dst), signed(src)
            return (a - _trunc_div(a, b) * b) & mask
        return dst % src
    if code == op.BPF_OR:
        return dst | src
    if code == op.BPF_AND:
        return dst & src
    if code == op.BPF_XOR:
        return dst ^ src
    if code == op.BPF_LSH:  # shift counts are masked to the operand width
        return (dst << (src & (bits - 1))) & mask
    if code == op.BPF_RSH:
        return dst >> (src & (bits - 1))
    if code == op.BPF_ARSH:
        return (signed(dst) >> (src & (bits - 1))) & mask
    if code == op.BPF_NEG:
        return -dst & mask
    if code == op.BPF_MOV:  # movsx: off is the width of the source to sign-extend
        return _sext(src, off) & mask if off else src
    raise AssertionError(f"no ALU operation 0x{code:02x}")


def _condition(code: int, a: int, b: int, bits: int) -> bool:
    sa, sb = _sext(a, bits), _sext(b, bits)
    return {
        op.BPF_JEQ: a == b, op.BPF_JNE: a != b, op.BPF_JSET: a & b != 0,
        op.BPF_JGT: a > b, op.BPF_JGE: a >= b, op.BPF_JLT: a < b, op.BPF_JLE: a <= b,
        op.BPF_JSGT: sa > sb, op.BPF_JSGE: sa >= sb, op.BPF_JSLT: sa < sb, op.BPF_JSLE: sa <= sb,
    }[code]


class UninitialisedRead(Exception):
    """The program read a register nothing had written (only shrinking can produce this)."""


def reference_run(code: bytes, max_steps: int = 100_000) -> tuple[int, int]:
    """Run an ALU/JMP-only program; returns (r0, instructions executed, lddw counting one)."""
    insns = decode(code)
    index = {pc: k for k, pc in enumerate(pcs(insns))}
    regs: list[int | None] = [None] * 11
    pc, steps = 0, 0

    def get(r: int) -> int:
        if regs[r] is None:
            raise UninitialisedRead(f"r{r} read before written")
        return regs[r]

    while steps < max_steps:
        insn = insns[index[pc]]
        steps += 1
        code_ = insn.opcode
        cls = code_ & 0x07
        if code_ == op.LDDW:
            regs[insn.dst] = insn.imm
        elif cls in (op.BPF_ALU, op.BPF_ALU64):
            bits = 64 if cls == op.BPF_ALU64 else 32
            mask = (1 << bits) - 1
            alu_op = code_ & 0xF0
            if alu_op == op.BPF_END:
                width = insn.imm
                value = get(insn.dst)
                if cls == op.BPF_ALU64 or code_ & op.BPF_TO_BE:  # bswap, or be on a little-endian machine
                    regs[insn.dst] = _bswap(value, width // 8)
                else:  # le on a little-endian machine: truncate to the width
                    regs[insn.dst] = value & ((1 << width) - 1)
            else:
                # An immediate is sign-extended to 64 bits (ALU64) or taken as 32 bits (ALU);
                # mov32/movsx32 and the other ALU32 operations see only the low 32 bits.
                src = get(insn.src) if code_ & op.BPF_X else insn.imm & U64
                dst = 0 if alu_op == op.BPF_MOV else get(insn.dst)  # mov does not read dst
                regs[insn.dst] = _alu_result(alu_op, insn.off, dst & mask, src & mask, bits)
        elif code_ == op.EXIT:
            return get(0), steps
        elif code_ == op.JA:
            pc += insn.off
        elif code_ == op.JA32:
            pc += insn.imm
        elif cls in (op.BPF_JMP, op.BPF_JMP32):
            bits = 64 if cls == op.BPF_JMP else 32
            mask = (1 << bits) - 1
            b = get(insn.src) if code_ & op.BPF_X else insn.imm & U64
            if _condition(code_ & 0xF0, get(insn.dst) & mask, b & mask, bits):
                pc += insn.off
        else:
            raise AssertionError(f"pc {pc}: opcode 0x{code_:02x} is not ALU/JMP")
        pc += insn.slots
    raise AssertionError(f"no exit after {max_steps} steps")


# --- reporting and shrinking -----------------------------------------------------------------


def listing(code: bytes) -> str:
    try:
        from bpfmc.ebpf.disasm import conformance_line
    except ImportError:  # no disassembler: hex is still enough to rebuild the program
        return code.hex(" ")
    insns = decode(code)
    return "".join(f"  {pc:3d}: {conformance_line(insn)}\n" for pc, insn in zip(pcs(insns), insns, strict=True))


def shrink(items: list[Item], still_fails: Callable[[bytes], bool]) -> bytes:
    """Greedy removal: drop any item (except the final exit) whose removal keeps the failure.
    Jumps into a removed item land on the item after it."""
    changed = True
    while changed:
        changed = False
        for k in range(len(items) - 2, -1, -1):
            if k >= len(items) - 1:
                continue
            cand = [replace(it, target=None if it.target is None else it.target - (it.target > k))
                    for j, it in enumerate(items) if j != k]
            cand = prune_unreachable(cand)
            if still_fails(encode_items(cand)):
                items, changed = cand, True
    return encode_items(items)


def engine_run(code: bytes, data: bytes = PACKET) -> dict:
    run = Engine(Program(code, name="random")).run(data)
    assert "error" not in run, f"engine faulted: {run['error']}\n{listing(code)}"
    return run


# --- the tests -------------------------------------------------------------------------------


def _seeds(batch: int, count: int) -> range:
    # Seeds are global program numbers: batch b holds programs b*1e6 ... b*1e6+count-1, so a
    # failure names one seed that regenerates the program alone (generate(seed)).
    return range(batch * 1_000_000, batch * 1_000_000 + count)


@pytest.mark.parametrize("batch", ENGINE_BATCHES)
def test_engine_matches_reference(batch):
    mismatches = []
    for seed in _seeds(batch, ENGINE_PROGRAMS_PER_BATCH):
        code = generate(seed)
        want, steps = reference_run(code)
        got = engine_run(code)
        if (got["r0"], got["insns"]) != (want, steps):
            mismatches.append((seed, code, got, want, steps))
    if mismatches:
        seed, code, got, want, steps = mismatches[0]

        def still_fails(c: bytes) -> bool:
            try:
                w = reference_run(c)
            except UninitialisedRead:
                return False
            run = Engine(Program(c)).run(PACKET)
            return "error" not in run and (run["r0"], run["insns"]) != w

        small = shrink(generate_items(seed), still_fails)
        sw, ss = reference_run(small)
        sg = Engine(Program(small)).run(PACKET)
        pytest.fail(
            f"{len(mismatches)} of {ENGINE_PROGRAMS_PER_BATCH} programs differ from the reference "
            f"(seeds {[m[0] for m in mismatches[:10]]}).\n"
            f"seed {seed}: engine r0={got['r0']:#x} insns={got['insns']}, reference r0={want:#x} insns={steps}\n"
            f"{listing(code)}\nshrunk: engine r0={sg['r0']:#x} insns={sg['insns']}, reference r0={sw:#x} "
            f"insns={ss}\n{listing(small)}")


@pytest.mark.kernel
@pytest.mark.parametrize("batch", KERNEL_BATCHES)
def test_engine_matches_kernel(kernel, batch):
    def kernel_r0(code: bytes) -> int | None:
        """The kernel's 32-bit return value, None when the kernel refuses the program."""
        try:
            prog = kernel.prog_load(code, "socket_filter", log_level=0, name="bpfmc_diff")
        except kernel.KernelVerifierError:
            return None
        with prog:
            return prog.test_run(PACKET).retval

    def verdict(code: bytes) -> tuple[int, int, int] | None:
        """(engine r0, kernel retval, reference r0); None when the kernel refuses the program
        or the reference meets an uninitialised register (both only while shrinking)."""
        theirs = kernel_r0(code)
        try:
            want, _ = reference_run(code)
        except UninitialisedRead:
            return None
        run = Engine(Program(code)).run(PACKET)
        if theirs is None or "error" in run:
            return None
        return run["r0"], theirs, want

    def disagreement(v: tuple[int, int, int]) -> tuple[bool, bool]:
        ours, theirs, want = v
        return ours & U32 != theirs, ours != want  # (engine vs kernel, engine vs reference)

    mismatches = []
    for seed in _seeds(batch, KERNEL_PROGRAMS_PER_BATCH):
        code = generate(seed)
        theirs = kernel_r0(code)
        if theirs is None:
            # Load again with a log only now: logging makes every load slower.
            try:
                kernel.prog_load(code, "socket_filter", log_level=1).close()
                log = "(accepted on the second attempt)"
            except kernel.KernelVerifierError as e:
                log = e.verifier_log
            pytest.fail(f"generator bug: the kernel refused seed {seed}\n{listing(code)}\n{log}")
        want, _ = reference_run(code)
        v = (engine_run(code)["r0"], theirs, want)  # engine_run fails with the listing on a fault
        if any(disagreement(v)):
            mismatches.append((seed, code, v))
    if mismatches:
        seed, code, v = mismatches[0]
        kind = disagreement(v)
        # Shrink while the same sides disagree, so a reference bug is not mistaken for an
        # engine/kernel one.
        small = shrink(generate_items(seed), lambda c: (w := verdict(c)) is not None and disagreement(w) == kind)
        sv = verdict(small)

        def show(v: tuple[int, int, int]) -> str:
            return f"engine r0={v[0]:#x} (low 32 {v[0] & U32:#x}), kernel {v[1]:#x}, reference {v[2]:#x}"

        pytest.fail(
            f"{len(mismatches)} of {KERNEL_PROGRAMS_PER_BATCH} programs differ "
            f"(seeds {[m[0] for m in mismatches[:10]]}).\n"
            f"seed {seed}: {show(v)}\n{listing(code)}\nshrunk: {show(sv)}\n{listing(small)}")


def test_generator_is_reproducible_and_valid():
    from bpfmc.ebpf.validate import validate

    assert generate(12345) == generate(12345)
    for seed in range(200):
        code = generate(seed)
        validate(code)
        assert decode(code)[-1].opcode == op.EXIT


@pytest.mark.parametrize(("text", "want"), [
    ("lddw %r0, 0x8000000000000000\nsdiv %r0, -1\nexit", 1 << 63),  # overflow wraps
    ("lddw %r0, 0x8000000000000000\nsmod %r0, -1\nexit", 0),
    ("mov %r0, -7\nsdiv32 %r0, 2\nexit", (-3) & U32),  # truncates toward zero
    ("mov %r0, -7\nsmod %r0, 2\nexit", U64),  # the remainder has the dividend's sign
    ("mov %r0, -1\nmov %r1, 0\nmod32 %r0, %r1\nexit", U32),  # mod32 by 0 clears the high half
    ("mov %r0, -1\nmov %r1, 0\nmod %r0, %r1\nexit", U64),
    ("mov %r0, 5\nmov %r1, 0\ndiv %r0, %r1\nexit", 0),
    ("mov %r0, 1\nmov %r1, 65\nlsh %r0, %r1\nexit", 2),  # shift count masked to 6 bits
    ("mov %r0, -1\narsh32 %r0, 4\nexit", U32),
    ("mov %r1, 0x80\nmovsx864 %r0, %r1\nexit", (-128) & U64),
    ("mov %r1, 0x8000\nmovsx1632 %r0, %r1\nexit", 0xFFFF8000),
    ("lddw %r0, 0x0123456789abcdef\nbe16 %r0\nexit", 0xEFCD),
    ("lddw %r0, 0x0123456789abcdef\nle32 %r0\nexit", 0x89ABCDEF),
    ("lddw %r0, 0x0123456789abcdef\nbswap64 %r0\nexit", 0xEFCDAB8967452301),
    ("mov %r0, -1\nmov32 %r1, -1\njeq %r0, %r1, +1\nmov %r0, 3\nexit", 3),
    ("mov %r0, -1\nmov32 %r1, -1\njeq32 %r0, %r1, +1\nmov %r0, 3\nexit", U64),
    ("mov %r0, 2\njslt %r0, -1, +1\nja32 +1\nmov %r0, 9\nexit", 2),
])
def test_reference_evaluator_known_values(text, want):
    # Pins the reference to RFC 9669 on the edge cases, so that "engine == reference" means
    # something even where no kernel is available; the engine must agree too.
    from bpfmc.ebpf.asm import assemble

    code = assemble(text)
    assert reference_run(code)[0] == want
    assert engine_run(code)["r0"] == want
