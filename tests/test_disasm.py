"""Disassembler: conformance-style round trips, and llvm-style output checked against objdump."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess

import pytest
from conftest import conformance_files
from test_asm import ENCODINGS

from bpfmc.ebpf.asm import assemble
from bpfmc.ebpf.conformance import parse_file
from bpfmc.ebpf.disasm import DisasmError, disassemble
from bpfmc.ebpf.insn import Insn
from bpfmc.ebpf.validate import RULES

TEST_FILES = conformance_files("tests")
UNUSED_FILES = conformance_files("negative", "unused-*.data")


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.stem)
def test_round_trip_conformance_programs(path):
    code = parse_file(path).code
    assert assemble(disassemble(code)) == code


@pytest.mark.parametrize("src", [s for s, _ in ENCODINGS], ids=[s for s, _ in ENCODINGS])
def test_round_trip_every_form(src):
    code = assemble(src)
    assert assemble(disassemble(code)) == code


def test_conformance_text():
    code = assemble("mov %r0, 0\njne %r1, 0x5, done\nlddw %r0, -2\ndone:\nlock fetch add32 [%r10-8], %r1\nexit")
    assert disassemble(code) == (
        "mov %r0, 0\njne %r1, 5, +2\nlddw %r0, 0xfffffffffffffffe\nlock fetch add32 [%r10-8], %r1\nexit\n"
    )
    assert disassemble(assemble("and %r1, 0xffff0000\nmov %r1, -1\nstb [%r1], 0x80")) == (
        "and %r1, 0xffff0000\nmov %r1, -1\nstb [%r1], 128\n"
    )


@pytest.mark.parametrize("path", UNUSED_FILES, ids=lambda p: p.stem)
def test_reserved_fields_cannot_be_written(path):
    with pytest.raises(DisasmError) as exc:
        disassemble(parse_file(path).code)
    assert exc.value.pc == 0 and "cannot be written" in exc.value.reason


def _raw(opcode: int, regs: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return bytes([opcode, regs]) + off.to_bytes(2, "little", signed=True) + imm.to_bytes(4, "little", signed=True)


EXIT = _raw(0x95)


@pytest.mark.parametrize(
    "code,pc,words",
    [
        (_raw(0x18, 1, 0, 1) + _raw(0, 0, 0, 2) + EXIT, None, None),  # well formed: round-trips
        (_raw(0x18, 1, 0, 1) + _raw(0, 0x10, 0, 2) + EXIT, 0, "next_regs=16"),
        (_raw(0x18, 1, 0, 1) + _raw(0x95, 0, 0, 2) + EXIT, 0, "next_opcode=149"),
        (_raw(0x18, 1, 0, 1) + _raw(0, 0, 7, 2) + EXIT, 0, "next_off=7"),
        (_raw(0x18, 0x11, 0, 1) + _raw(0) + EXIT, 0, "src=1"),
        (EXIT + _raw(0xFF), 1, "unknown opcode 0xff"),
        (_raw(0xB7, 0x0B, 0, 1), 0, "cannot be written"),
        (_raw(0xD4, 0x01, 0, 8), 0, "cannot be written"),
        (_raw(0xDB, 0x21, 0, 0x10), 0, "unknown atomic operation 0x10"),
        (EXIT + _raw(0x18, 1, 0, 1), 1, "truncated"),
        (EXIT + b"\x95", 1, "multiple of 8"),
    ],
)
def test_inexpressible(code, pc, words):
    if pc is None:
        assert assemble(disassemble(code)) == code
        return
    with pytest.raises(DisasmError) as exc:
        disassemble(code)
    assert exc.value.pc == pc and words in str(exc.value)


def test_unknown_style():
    with pytest.raises(ValueError, match="unknown disassembly style"):
        disassemble(EXIT, "intel")


# --- llvm style --------------------------------------------------------------------------------

# Spelled as llvm-objdump-19 -d prints them (observed, not derived from our code).
LLVM_SPOT = [
    ("mov %r0, 1", "r0 = 0x1"),
    ("mov %r0, -1", "r0 = -0x1"),
    ("mov32 %r0, %r1", "w0 = w1"),
    ("mov32 %r1, -2147483648", "w1 = -0x80000000"),
    ("add %r1, -4", "r1 += -0x4"),
    ("arsh32 %r1, %r2", "w1 s>>= w2"),
    ("sdiv %r0, 3", "r0 s/= 0x3"),
    ("smod32 %r0, %r3", "w0 s%= w3"),
    ("neg %r0", "r0 = -r0"),
    ("movsx832 %r1, %r2", "w1 = (s8)w2"),
    ("movsx3264 %r1, %r2", "r1 = (s32)r2"),
    ("be16 %r0", "r0 = be16 r0"),
    ("le32 %r0", "r0 = le32 r0"),
    ("bswap64 %r0", "r0 = bswap64 r0"),
    ("ldxw %r1, [%r1+4]", "r1 = *(u32 *)(r1 + 0x4)"),
    ("ldxb %r1, [%r1-4]", "r1 = *(u8 *)(r1 - 0x4)"),
    ("ldxsh %r1, [%r2+6]", "r1 = *(s16 *)(r2 + 0x6)"),
    ("stxdw [%r10-8], %r1", "*(u64 *)(r10 - 0x8) = r1"),
    ("stw [%r10-8], -7", "*(u32 *)(r10 - 0x8) = -0x7"),
    ("jgt %r1, 5, +3", "if r1 > 0x5 goto +0x3 <.text+0x20>"),
    ("jsgt %r1, -5, -1", "if r1 s> -0x5 goto -0x1 <.text>"),
    ("jeq32 %r1, %r2, +0", "if w1 == w2 goto +0x0 <.text+0x8>"),
    ("jset32 %r1, 0x10, +1", "if w1 & 0x10 goto +0x1 <.text+0x10>"),
    ("ja +2", "goto +0x2 <.text+0x18>"),
    ("ja32 +5", "gotol +0x5 <.text+0x30>"),
    ("lddw %r0, 0x1122334455667788", "r0 = 0x1122334455667788 ll"),
    ("lddw %r0, -1", "r0 = -0x1 ll"),
    ("lock add [%r1], %r2", "lock *(u64 *)(r1 + 0x0) += r2"),
    ("lock add32 [%r1], %r2", "lock *(u32 *)(r1 + 0x0) += r2"),
    ("lock fetch add [%r1], %r2", "r2 = atomic_fetch_add((u64 *)(r1 + 0x0), r2)"),
    ("lock xchg [%r1], %r2", "r2 = xchg_64(r1 + 0x0, r2)"),
    ("lock cmpxchg [%r1], %r2", "r0 = cmpxchg_64(r1 + 0x0, r0, r2)"),
    ("lock or [%r1+8], %r2", "lock *(u64 *)(r1 + 0x8) |= r2"),
    ("call 5", "call 0x5"),
    ("call local -1", "call -0x1"),
    ("call %r2", "callx r2"),
    ("ldabsb 4", "r0 = *(u8 *)skb[0x4]"),
    ("ldindh %r1, 0", "r0 = *(u16 *)skb[r1]"),
    ("exit", "exit"),
]


@pytest.mark.parametrize("src,expected", LLVM_SPOT, ids=[s for s, _ in LLVM_SPOT])
def test_llvm_spot(src, expected):
    code = assemble(src)
    line = disassemble(code, "llvm", raw_bytes=False).splitlines()[0]
    assert line == f"       0:\t{expected}"


def test_llvm_columns():
    code = assemble("lddw %r1, 0x1122334455667788\nexit")
    assert disassemble(code, "llvm").splitlines() == [
        "       0:\t18 01 00 00 88 77 66 55 00 00 00 00 44 33 22 11\tr1 = 0x1122334455667788 ll",
        "       2:\t95 00 00 00 00 00 00 00\texit",
    ]
    assert disassemble(assemble("ja -1"), "llvm", raw_bytes=False, symbol="f") == "       0:\tgoto -0x1 <f>\n"


def test_llvm_alu32_spelling():
    code = assemble("ldxb %r1, [%r2]\nstxw [%r1], %r2\nlock and32 [%r1], %r2\nldxdw %r1, [%r2]")
    assert [line.split("\t")[1] for line in disassemble(code, "llvm", raw_bytes=False, alu32=True).splitlines()] == [
        "w1 = *(u8 *)(r2 + 0x0)",
        "*(u32 *)(r1 + 0x0) = w2",
        "lock *(u32 *)(r1 + 0x0) &= w2",
        "r1 = *(u64 *)(r2 + 0x0)",
    ]


def test_llvm_unknown_and_truncated():
    text = disassemble(_raw(0xFF) + _raw(0x07, 0x01, 5, 1) + _raw(0x18, 1, 0, 1), "llvm", raw_bytes=False)
    assert text.splitlines() == ["       0:\t<unknown>", "       1:\t<unknown>", "       2:\t<unknown>"]


# --- llvm style against llvm-objdump-19 ---------------------------------------------------------

TOOLS = ("llvm-mc-19", "llvm-objdump-19", "clang-19", "llvm-objcopy-19")
needs_llvm = pytest.mark.skipif(
    not all(shutil.which(t) for t in TOOLS), reason=f"needs {', '.join(TOOLS)} on PATH"
)
_INSN_LINE = re.compile(r"^ +\d+:\t")


def _objdump(obj, mcpu: str | None, raw: bool = True) -> list[str]:
    cmd = ["llvm-objdump-19", "-d", str(obj)]
    cmd += ([f"--mcpu={mcpu}"] if mcpu else []) + ([] if raw else ["--no-show-raw-insn"])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if _INSN_LINE.match(line)]


def _object_from_bytes(code: bytes, tmp_path):
    """Wrap raw instruction bytes in an ELF object (a .text section with no symbols)."""
    rows = (",".join(str(b) for b in code[i : i + 8]) for i in range(0, len(code), 8))
    src = tmp_path / "t.s"
    src.write_text("\t.text\n" + "".join(f"\t.byte {row}\n" for row in rows))
    obj = tmp_path / "t.o"
    subprocess.run(["llvm-mc-19", "-triple", "bpfel", "-filetype=obj", str(src), "-o", str(obj)], check=True)
    return obj


def _corpus() -> bytes:
    """Every instruction of the 313 programs, plus each validator row with edge-case fields."""
    code = b"".join(parse_file(p).code for p in TEST_FILES)

    def values(policy, field):
        if isinstance(policy, frozenset):
            return sorted(policy)
        return {
            "reg": [1, 10],
            "wreg": [2, 9],
            "jump": [3, -2],
            "any": {"off": [0x7FFF, -0x8000, 0], "imm": [0x7FFFFFFF, -5, 0]}.get(field, [0]),
        }[policy]

    for opcode, rule in RULES.items():
        for dst, src, off, imm in itertools.product(
            values(rule.dst, "dst"), values(rule.src, "src"), values(rule.off, "off"), values(rule.imm, "imm")
        ):
            insn = Insn(opcode, dst, src, off, 0x8000000000000001 if opcode == 0x18 else imm)
            code += insn.encode()
    return code


def _deviates(line: str, alu32: bool) -> bool:
    """The documented places where we print more than objdump (see bpfmc.ebpf.llvm_style)."""
    raw = bytes.fromhex(line.split("\t")[1]) if line.count("\t") >= 2 else None
    if raw is None:
        return False
    ldind_imm = raw[0] in (0x40, 0x48, 0x50) and raw[4:8] != b"\0\0\0\0"
    atomic32 = not alu32 and raw[0] == 0xC3 and raw[4:8] != b"\0\0\0\0"
    return ldind_imm or atomic32


@needs_llvm
@pytest.mark.parametrize("alu32", [False, True], ids=["default", "mcpu-v4"])
def test_llvm_style_matches_objdump_per_instruction(tmp_path, alu32):
    code = _corpus()
    want = _objdump(_object_from_bytes(code, tmp_path), "v4" if alu32 else None)
    got = disassemble(code, "llvm", alu32=alu32).splitlines()
    assert len(got) == len(want)
    mismatches = [(w, g) for w, g in zip(want, got, strict=True) if w != g and not _deviates(g, alu32)]
    assert mismatches == []
    assert sum(_deviates(g, alu32) for g in got) < len(got) // 20  # exemptions stay exceptions


C_GENERIC = """
static long (*helper5)(long) = (void *)5;
__attribute__((noinline)) static int mix(int a, int b) { return a * b + (a >> 3) - (b << 2); }
int prog(unsigned char *p, unsigned long n)
{
    unsigned long s = 0, t[2];
    if (n < 32) return -1;
    for (int i = 0; i < 16; i++) s += p[i] ^ (i << 2);
    t[0] = *(unsigned long *)p;
    t[1] = __builtin_bswap32(*(unsigned int *)(p + 12));
    __sync_fetch_and_add(&t[0], 3);
    s += helper5(s) + mix((int)s, (int)t[1]);
    s = s / (t[1] | 1) + s % 7 + (n > 100 ? 0x1122334455667788UL : 9);
    return (int)(s + t[0] + (s >> 33));
}
"""
C_V4 = """
static long (*helper5)(long) = (void *)5;
int prog(unsigned char *p, unsigned long n)
{
    long s = (signed char)p[1] + (short)(p[2] << 8 | p[3]) + *(int *)(p + 4);
    long t[2] = {*(long *)p, 0};
    int u = 0;
    s = s / (long)(n | 1) + s % 3;
    __sync_fetch_and_add(&t[0], s);
    int old = __sync_fetch_and_or(&u, 5) + __sync_fetch_and_xor(&u, 3);
    __sync_val_compare_and_swap(&t[1], 1, s);
    __atomic_exchange_n(&u, 7, __ATOMIC_SEQ_CST);
    s += helper5(s) + old + __builtin_bswap64(t[0]) + t[1] + u;
    return (int)s;
}
"""


@needs_llvm
@pytest.mark.parametrize(
    "source,cpu,alu32", [(C_GENERIC, "v2", False), (C_GENERIC, "v3", True), (C_V4, "v4", True)], ids=["v2", "v3", "v4"]
)
def test_llvm_style_matches_objdump_on_compiled_c(tmp_path, source, cpu, alu32):
    c, obj, text = tmp_path / "p.c", tmp_path / "p.o", tmp_path / "p.bin"
    c.write_text(source)
    subprocess.run(["clang-19", "-O2", "-target", "bpf", f"-mcpu={cpu}", "-c", str(c), "-o", str(obj)], check=True)
    subprocess.run(["llvm-objcopy-19", "-O", "binary", "--only-section=.text", str(obj), str(text)], check=True)
    code = text.read_bytes()
    # objdump names jump targets after the nearest symbol (there are two functions): drop them.
    strip = re.compile(r" <[^>]*>$")
    for raw in (True, False):
        want = [strip.sub("", line) for line in _objdump(obj, "v4" if alu32 else None, raw)]
        got = [strip.sub("", line) for line in disassemble(code, "llvm", raw_bytes=raw, alu32=alu32).splitlines()]
        assert got == want
