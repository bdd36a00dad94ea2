"""Assembler: every conformance file, the README's mnemonic->encoding table, and the errors."""

from __future__ import annotations

import pytest
from conftest import conformance_files

from bpfmc.ebpf.asm import MNEMONICS, AsmError, assemble, assemble_insn
from bpfmc.ebpf.conformance import parse_file

TEST_FILES = conformance_files("tests")
NEGATIVE_ASM = [p for p in conformance_files("negative", "invalid_*.data") if p.stem != "invalid_unknown_directive"]


def _asm_lines(text: str) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line and not line.endswith(":")]


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.stem)
def test_every_conformance_program_assembles(path):
    case = parse_file(path)
    code = assemble(case.asm_text)
    assert code and len(code) % 8 == 0
    # One slot per line, two for lddw: the assembler neither drops nor invents instructions.
    lines = _asm_lines(case.asm_text)
    assert len(code) // 8 == len(lines) + sum(line.startswith("lddw") for line in lines)


def test_lddw_asm_matches_its_raw_section(conformance_dir):
    case = parse_file(conformance_dir / "tests" / "lddw.data")
    assert assemble(case.asm_text) == case.code
    assert case.code.hex() == "18000000887766550000000044332211" + "9500000000000000"


def test_mnemonic_inventory(conformance_dir):
    used = {line.split()[0] for p in TEST_FILES for line in _asm_lines(parse_file(p).asm_text)}
    assert len(used) == 90  # the README's count
    assert used <= MNEMONICS


# The README's mnemonic -> encoding table, one row per form, encoded by hand:
# opcode, regs (src << 4 | dst), offset (LE16), imm (LE32).
ENCODINGS = [
    ("add %r1, %r2", "0f21000000000000"),
    ("add32 %r1, 5", "0401000005000000"),
    ("sub %r0, -1", "17000000ffffffff"),
    ("mul32 %r3, %r4", "2c43000000000000"),
    ("div %r1, 0x10", "3701000010000000"),
    ("or %r2, 0xffffffff", "47020000ffffffff"),
    ("and32 %r2, %r3", "5c32000000000000"),
    ("lsh %r1, 60", "670100003c000000"),
    ("rsh32 %r1, %r9", "7c91000000000000"),
    ("mod %r1, 3", "9701000003000000"),
    ("xor %r1, %r2", "af21000000000000"),
    ("mov %r0, 1", "b700000001000000"),
    ("mov32 %r0, %r10", "bca0000000000000"),
    ("arsh32 %r1, 16", "c401000010000000"),
    ("mov %r1, 0x80000000", "b701000000000080"),
    ("mov %r1, -2147483648", "b701000000000080"),
    ("sdiv %r1, %r2", "3f21010000000000"),
    ("sdiv32 %r1, -3", "34010100fdffffff"),
    ("smod %r1, 3", "9701010003000000"),
    ("smod32 %r1, %r2", "9c21010000000000"),
    ("neg %r1", "8701000000000000"),
    ("neg32 %r2", "8402000000000000"),
    ("movsx832 %r1, %r2", "bc21080000000000"),
    ("movsx1632 %r1, %r2", "bc21100000000000"),
    ("movsx864 %r1, %r2", "bf21080000000000"),
    ("movsx1664 %r1, %r2", "bf21100000000000"),
    ("movsx3264 %r1, %r2", "bf21200000000000"),
    ("le16 %r3", "d403000010000000"),
    ("le32 %r3", "d403000020000000"),
    ("le64 %r3", "d403000040000000"),
    ("be16 %r3", "dc03000010000000"),
    ("be32 %r3", "dc03000020000000"),
    ("be64 %r3", "dc03000040000000"),
    ("bswap16 %r3", "d703000010000000"),
    ("bswap32 %r3", "d703000020000000"),
    ("bswap64 %r3", "d703000040000000"),
    ("swap16 %r3", "d703000010000000"),
    ("swap32 %r3", "d703000020000000"),
    ("swap64 %r3", "d703000040000000"),
    ("ja +3", "0500030000000000"),
    ("ja -1", "0500ffff00000000"),
    ("ja32 +5", "0600000005000000"),
    ("ja32 -70000", "0600000090eefeff"),
    ("jeq %r1, 0xb, +2", "150102000b000000"),
    ("jsgt32 %r1, %r2, -2", "6e21feff00000000"),
    ("jset %r1, %r2, +0", "4d21000000000000"),
    ("jlt %r1, 5, +1", "a501010005000000"),
    ("jsle32 %r1, -1, +1", "d6010100ffffffff"),
    ("jne32 %r9, %r10, +7", "5ea9070000000000"),
    ("exit", "9500000000000000"),
    ("call 5", "8500000005000000"),
    ("call helper 5", "8500000005000000"),
    ("call %r2", "8d02000000000000"),
    ("call helper %r3", "8d03000000000000"),
    ("call runtime 7", "8520000007000000"),
    ("call local +2", "8510000002000000"),
    ("ldxw %r1, [%r2+8]", "6121080000000000"),
    ("ldxh %r1, [%r2-2]", "6921feff00000000"),
    ("ldxb %r1, [%r2]", "7121000000000000"),
    ("ldxdw %r1, [%r10-8]", "79a1f8ff00000000"),
    ("ldxsw %r1, [%r2+4]", "8121040000000000"),
    ("ldxsh %r1, [%r2+4]", "8921040000000000"),
    ("ldxsb %r1, [%r2+4]", "9121040000000000"),
    ("ldxb %r0, [%r1+0x1]", "7110010000000000"),
    ("ldxb %r0, [%r1+0xffff]", "7110ffff00000000"),
    ("ldxb %r0, [%r1-0x8000]", "7110008000000000"),
    ("ldxb %r0, [%r1+32767]", "7110ff7f00000000"),
    ("stw [%r1+2], 0x44332211", "6201020011223344"),
    ("sth [%r1+2], 0x2211", "6a01020011220000"),
    ("stb [%r10-16], 0xab", "720af0ffab000000"),
    ("stdw [%r10-16], -1", "7a0af0ffffffffff"),
    ("stxw [%r1+4], %r2", "6321040000000000"),
    ("stxh [%r1+4], %r2", "6b21040000000000"),
    ("stxb [%r1+4], %r2", "7321040000000000"),
    ("stxdw [%r10-8], %r1", "7b1af8ff00000000"),
    ("lock add [%r10-8], %r1", "db1af8ff00000000"),
    ("lock add32 [%r10-8], %r1", "c31af8ff00000000"),
    ("lock or [%r1], %r2", "db21000040000000"),
    ("lock and32 [%r1], %r2", "c321000050000000"),
    ("lock xor [%r1], %r2", "db210000a0000000"),
    ("lock fetch add [%r1], %r2", "db21000001000000"),
    ("lock fetch or [%r1], %r2", "db21000041000000"),
    ("lock fetch and32 [%r1], %r2", "c321000051000000"),
    ("lock fetch xor32 [%r1+4], %r3", "c3310400a1000000"),
    ("lock xchg [%r1], %r2", "db210000e1000000"),
    ("lock xchg32 [%r1], %r2", "c3210000e1000000"),
    ("lock cmpxchg [%r10-8], %r1", "db1af8fff1000000"),
    ("lock cmpxchg32 [%r1], %r2", "c3210000f1000000"),
    ("lddw %r0, 0x1122334455667788", "1800000088776655" + "0000000044332211"),
    ("lddw %r1, 2147483648", "1801000000000080" + "0000000000000000"),
    ("lddw %r1, -1", "18010000ffffffff" + "00000000ffffffff"),
    ("lddw %r1, 0xFFFFFFFFFFFFFFFF", "18010000ffffffff" + "00000000ffffffff"),
    ("lddw %r9, 18446744073709551615", "18090000ffffffff" + "00000000ffffffff"),
    ("ldabsw 4", "2000000004000000"),
    ("ldabsh 4", "2800000004000000"),
    ("ldabsb 4", "3000000004000000"),
    ("ldabsdw 4", "3800000004000000"),
    ("ldindw %r1, 8", "4010000008000000"),
    ("ldindh %r1, 8", "4810000008000000"),
    ("ldindb %r1, -8", "50100000f8ffffff"),
    ("ldinddw %r1, 8", "5810000008000000"),
    # Spacing and commas: a trailing comma is optional, blanks are free.
    ("mov %r0 1", "b700000001000000"),
    ("\tmov\t%r0,1   # comment", "b700000001000000"),
    ("ldxw %r1, [%r2 + 8]", "6121080000000000"),
]


@pytest.mark.parametrize("src,expected", ENCODINGS, ids=[s for s, _ in ENCODINGS])
def test_encoding(src, expected):
    assert assemble(src).hex() == expected


# The README's operation codes, typed from its table rather than taken from bpfmc.ebpf.opcodes.
ALU_CODES = {"add": 0x00, "sub": 0x10, "mul": 0x20, "div": 0x30, "or": 0x40, "and": 0x50, "lsh": 0x60,
             "rsh": 0x70, "mod": 0x90, "xor": 0xA0, "mov": 0xB0, "arsh": 0xC0}
JMP_CODES = {"jeq": 0x10, "jgt": 0x20, "jge": 0x30, "jset": 0x40, "jne": 0x50, "jsgt": 0x60, "jsge": 0x70,
             "jlt": 0xA0, "jle": 0xB0, "jslt": 0xC0, "jsle": 0xD0}


@pytest.mark.parametrize("name", sorted(ALU_CODES))
def test_alu_family(name):
    code = ALU_CODES[name]
    assert assemble(f"{name} %r1, %r2")[:2] == bytes([0x07 | code | 0x08, 0x21])
    assert assemble(f"{name}32 %r1, %r2")[:2] == bytes([0x04 | code | 0x08, 0x21])
    assert assemble(f"{name} %r1, 7") == bytes([0x07 | code, 0x01, 0, 0, 7, 0, 0, 0])
    assert assemble(f"{name}32 %r1, 7") == bytes([0x04 | code, 0x01, 0, 0, 7, 0, 0, 0])


@pytest.mark.parametrize("name", sorted(JMP_CODES))
def test_jmp_family(name):
    code = JMP_CODES[name]
    assert assemble(f"{name} %r1, %r2, -1") == bytes([0x05 | code | 0x08, 0x21, 0xFF, 0xFF, 0, 0, 0, 0])
    assert assemble(f"{name}32 %r1, %r2, +1") == bytes([0x06 | code | 0x08, 0x21, 1, 0, 0, 0, 0, 0])
    assert assemble(f"{name} %r1, 7, +1") == bytes([0x05 | code, 0x01, 1, 0, 7, 0, 0, 0])
    assert assemble(f"{name}32 %r1, -1, +1") == bytes([0x06 | code, 0x01, 1, 0, 0xFF, 0xFF, 0xFF, 0xFF])


def test_every_mnemonic_is_exercised():
    families = {f"{n}{w}" for n in ALU_CODES | JMP_CODES for w in ("", "32")}
    encoded = {src.split()[0] for src, _ in ENCODINGS}
    assert MNEMONICS - families - encoded == set()


def _off(code: bytes, pc: int) -> int:
    return int.from_bytes(code[pc * 8 + 2 : pc * 8 + 4], "little", signed=True)


def _imm(code: bytes, pc: int) -> int:
    return int.from_bytes(code[pc * 8 + 4 : pc * 8 + 8], "little", signed=True)


def test_labels_are_relative_to_the_next_instruction():
    code = assemble("jne %r1, 0, skip\nmov %r0, 1\nskip:\nexit\nback:\nja back")
    assert _off(code, 0) == 1
    assert _off(code, 3) == -1


def test_lddw_counts_two_slots():
    code = assemble("ja end\nlddw %r0, 1\nend:\nexit")
    assert _off(code, 0) == 2


def test_implicit_exit_label_is_the_first_exit():
    code = assemble("jeq %r1, 0, exit\nmov %r0, 0\nexit\nexit")
    assert _off(code, 0) == 1


def test_explicit_exit_label_wins():
    code = assemble("ja exit\nexit\nexit:\nexit")
    assert _off(code, 0) == 1  # the label at slot 2, not the first exit at slot 1


def test_call_local_and_ja32_put_the_target_in_imm():
    code = assemble("call local f\nexit\nf:\nmov %r0, 1\nexit\nja32 f")
    assert _imm(code, 0) == 1 and _off(code, 0) == 0
    assert _imm(code, 4) == -3


def test_first_line_shifts_error_lines():
    with pytest.raises(AsmError) as exc:
        assemble("exit\nbogus %r0", first_line=10)
    assert exc.value.line == 11
    assert str(exc.value).startswith("line 11: ")


BAD = [
    ("mov %r0, 2147483648", "out of int32 range"),
    ("mov %r0, -2147483649", "out of int32 range"),
    ("mov %r0, 0x100000000", "does not fit in 32 bits"),
    ("ldxb %r0, [%r1+32768]", "int16"),
    ("ldxb %r0, [%r1-32769]", "int16"),
    ("ldxb %r0, [%r1+0x10000]", "16 bits"),
    ("ldxb %r0, %r1", "expected a memory operand"),
    ("ldxb %r0, [%r1+]", "invalid memory operand"),
    ("or %r0, %r11", "invalid register '%r11'"),
    ("or %r0, %r50", "invalid register '%r50'"),
    ("mov r0, 1", "expected a register"),
    ("ja nowhere", "undefined label 'nowhere'"),
    ("ja +32768", "out of range"),
    ("ja +1 +2", "invalid number of operands for ja"),
    ("ldxq %r0, [%r1]", "invalid mnemonic 'ldxq'"),
    ("movsx3232 %r1, %r2", "invalid mnemonic"),
    ("ldxsdw %r1, [%r2]", "invalid mnemonic"),
    ("lddw %r0", "invalid number of operands for lddw"),
    ("lddw %r0, 0x10000000000000000", "64 bits"),
    ("lock", "invalid number of operands for lock"),
    ("lock or [%r10-8]", "invalid number of operands for lock"),
    ("lock fetch xchg [%r1], %r2", "always fetches"),
    ("lock nand [%r1], %r2", "invalid lock operation 'nand'"),
    ("exit %r0", "invalid number of operands for exit"),
    ("neg %r0, 1", "invalid number of operands for neg"),
    ("jeq %r1, 1", "invalid number of operands for jeq"),
    ("stw [%r1+2], %r2", "invalid immediate '%r2'"),
    ("call", "invalid number of operands for call"),
    ("call local", "invalid number of operands for call"),
    ("call local %r1", "invalid jump target"),
    ("call runtime %r1", "takes a number"),
    ("mov %r0, 1x", "invalid immediate"),
]


@pytest.mark.parametrize("src,message", BAD, ids=[s for s, _ in BAD])
def test_errors(src, message):
    with pytest.raises(AsmError) as exc:
        assemble(f"mov %r0, 0\n{src}\nexit")
    assert exc.value.line == 2
    assert message in str(exc.value)
    assert str(exc.value).startswith("line 2: ")
    assert isinstance(exc.value, ValueError)


def test_duplicate_label():
    with pytest.raises(AsmError, match=r"^line 3: label 'x' defined twice"):
        assemble("x:\nexit\nx:\nexit")


def test_exit_label_needs_an_exit():
    with pytest.raises(AsmError, match="undefined label 'exit'"):
        assemble("ja exit\nja -1")


# Line of the offending instruction in each upstream negative assembler file.
NEGATIVE_LINES = {
    "invalid_imm32_dec_range": 5,
    "invalid_imm32_hex_range": 5,
    "invalid_label": 4,
    "invalid_lock": 4,
    "invalid_lock2": 4,
    "invalid_mnemonic": 5,
    "invalid_offset": 4,
    "invalid_offset_range": 5,
    "invalid_operand_count": 4,
    "invalid_register": 4,
}


def test_negative_assembler_files_are_all_covered():
    assert {p.stem for p in NEGATIVE_ASM} == set(NEGATIVE_LINES)


@pytest.mark.parametrize("path", NEGATIVE_ASM, ids=lambda p: p.stem)
def test_negative_assembler_files_are_refused(path):
    with pytest.raises(AsmError) as exc:
        parse_file(path)
    assert exc.value.line == NEGATIVE_LINES[path.stem]
    # Where upstream names the expected message, ours carries it too.
    text = path.read_text()
    if "-- error" in text:
        expected = text.split("-- error", 1)[1].strip().splitlines()[-1]
        assert expected.lower() in str(exc.value).lower()


def test_assemble_insn_single_line():
    insn = assemble_insn("lddw %r2, 0x100000001")
    assert (insn.opcode, insn.dst, insn.imm) == (0x18, 2, 0x100000001)
    with pytest.raises(AsmError, match="exactly one instruction"):
        assemble_insn("exit\nexit")
