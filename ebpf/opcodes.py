"""Named constants of the eBPF instruction set (RFC 9669 plus the kernel's extensions).

An opcode byte is ``class | (source or size) | (operation or mode)``; the names below follow
the kernel's ``BPF_*`` macros so that code reads like the specification.
"""

from __future__ import annotations

# Instruction classes: the low three bits of the opcode.
BPF_LD = 0x00
BPF_LDX = 0x01
BPF_ST = 0x02
BPF_STX = 0x03
BPF_ALU = 0x04
BPF_JMP = 0x05
BPF_JMP32 = 0x06
BPF_ALU64 = 0x07

# Operand source for ALU and JMP classes (bit 3).
BPF_K = 0x00  # immediate
BPF_X = 0x08  # register

# ALU operations (high four bits).
BPF_ADD = 0x00
BPF_SUB = 0x10
BPF_MUL = 0x20
BPF_DIV = 0x30
BPF_OR = 0x40
BPF_AND = 0x50
BPF_LSH = 0x60
BPF_RSH = 0x70
BPF_NEG = 0x80
BPF_MOD = 0x90
BPF_XOR = 0xA0
BPF_MOV = 0xB0
BPF_ARSH = 0xC0
BPF_END = 0xD0

# BPF_END source bit: byte-swap to little- (TO_LE) or big-endian (TO_BE); in ALU64 the same
# bit pattern with BPF_TO_LE means an unconditional bswap.
BPF_TO_LE = 0x00
BPF_TO_BE = 0x08

# JMP operations (high four bits).
BPF_JA = 0x00
BPF_JEQ = 0x10
BPF_JGT = 0x20
BPF_JGE = 0x30
BPF_JSET = 0x40
BPF_JNE = 0x50
BPF_JSGT = 0x60
BPF_JSGE = 0x70
BPF_CALL = 0x80
BPF_EXIT = 0x90
BPF_JLT = 0xA0
BPF_JLE = 0xB0
BPF_JSLT = 0xC0
BPF_JSLE = 0xD0

# Load/store sizes (bits 3-4).
BPF_W = 0x00
BPF_H = 0x08
BPF_B = 0x10
BPF_DW = 0x18

# Load/store modes (bits 5-7).
BPF_IMM = 0x00
BPF_ABS = 0x20
BPF_IND = 0x40
BPF_MEM = 0x60
BPF_MEMSX = 0x80
BPF_ATOMIC = 0xC0

# Atomic operations, held in imm.
BPF_FETCH = 0x01
BPF_XCHG = 0xE0 | BPF_FETCH
BPF_CMPXCHG = 0xF0 | BPF_FETCH

# Pseudo sources of BPF_CALL (src field).
BPF_PSEUDO_CALL = 1  # bpf-to-bpf call, imm is relative
BPF_PSEUDO_KFUNC_CALL = 2

# Pseudo sources of lddw (src field).
BPF_PSEUDO_MAP_FD = 1
BPF_PSEUDO_MAP_VALUE = 2
BPF_PSEUDO_BTF_ID = 3
BPF_PSEUDO_FUNC = 4
BPF_PSEUDO_MAP_IDX = 5
BPF_PSEUDO_MAP_IDX_VALUE = 6

SIZE_BYTES = {BPF_B: 1, BPF_H: 2, BPF_W: 4, BPF_DW: 8}
SIZE_SUFFIX = {BPF_B: "b", BPF_H: "h", BPF_W: "w", BPF_DW: "dw"}

# Registers.
R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)
FRAME_POINTER = R10
NUM_REGS = 11

INSN_SIZE = 8

# Full opcodes used by name across the project.
LDDW = BPF_LD | BPF_IMM | BPF_DW  # 0x18, two slots
CALL = BPF_JMP | BPF_CALL  # 0x85
CALLX = BPF_JMP | BPF_CALL | BPF_X  # 0x8d
EXIT = BPF_JMP | BPF_EXIT  # 0x95
JA = BPF_JMP | BPF_JA  # 0x05
JA32 = BPF_JMP32 | BPF_JA  # 0x06, target in imm

ALU_OP_NAMES = {
    BPF_ADD: "add", BPF_SUB: "sub", BPF_MUL: "mul", BPF_DIV: "div", BPF_OR: "or",
    BPF_AND: "and", BPF_LSH: "lsh", BPF_RSH: "rsh", BPF_NEG: "neg", BPF_MOD: "mod",
    BPF_XOR: "xor", BPF_MOV: "mov", BPF_ARSH: "arsh",
}
JMP_OP_NAMES = {
    BPF_JEQ: "jeq", BPF_JGT: "jgt", BPF_JGE: "jge", BPF_JSET: "jset", BPF_JNE: "jne",
    BPF_JSGT: "jsgt", BPF_JSGE: "jsge", BPF_JLT: "jlt", BPF_JLE: "jle", BPF_JSLT: "jslt",
    BPF_JSLE: "jsle",
}
ATOMIC_OP_NAMES = {BPF_ADD: "add", BPF_OR: "or", BPF_AND: "and", BPF_XOR: "xor"}


def insn_class(opcode: int) -> int:
    return opcode & 0x07


def is_alu(opcode: int) -> bool:
    return insn_class(opcode) in (BPF_ALU, BPF_ALU64)


def is_jmp(opcode: int) -> bool:
    return insn_class(opcode) in (BPF_JMP, BPF_JMP32)


def is_load_store(opcode: int) -> bool:
    return insn_class(opcode) in (BPF_LD, BPF_LDX, BPF_ST, BPF_STX)
