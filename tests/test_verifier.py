"""The static verifier (ebpf/verifier): one accepted and one rejected program per rule, as data.

Programs are written in the conformance assembly dialect; ``ldmap %rN, I`` is ours for "load map
I" (an lddw with ``src = BPF_PSEUDO_MAP_IDX``). Every kernel-type verdict below was checked
against the host kernel's verifier (6.18) while it was written; ``raw`` has no kernel twin.
"""

from __future__ import annotations

import itertools
import random
import re
from pathlib import Path

import pytest

from bpfmc.ebpf import conformance
from bpfmc.ebpf.asm import assemble
from bpfmc.ebpf.insn import Insn, decode, encode
from bpfmc.ebpf.maps import BPF_F_RDONLY_PROG, MapSpec
from bpfmc.ebpf.program import Program
from bpfmc.ebpf.verifier import Verdict, VerifierError, verify
from bpfmc.ebpf.verifier import helpers as vhelpers
from bpfmc.ebpf.verifier import scalar as sc
from bpfmc.ebpf.verifier import tnum as tn

MAPS = [MapSpec("arr", 2, 4, 16, 4), MapSpec("hash", 1, 8, 8, 16), MapSpec("rb", 27, 0, 0, 4096),
        MapSpec("progs", 3, 4, 4, 4), MapSpec("q", 22, 0, 8, 4), MapSpec("ro", 2, 4, 8, 1, BPF_F_RDONLY_PROG)]
CONFORMANCE = Path("/work/shared/conformance/tests")


def build(text: str) -> Program:
    lines, marks = [], set()
    for line in text.strip().splitlines():
        m = re.match(r"\s*ldmap\s+%r(\d+),\s*(\d+)", line)
        if m:
            marks.add(len(lines))
            line = f"lddw %r{m.group(1)}, {m.group(2)}"
        lines.append(line)
    insns = decode(assemble("\n".join(lines)))
    k, out = 0, []
    stmts = [i for i, line in enumerate(lines) if line.split("#")[0].strip() and not line.strip().endswith(":")]
    for idx, insn in zip(stmts, insns, strict=True):
        out.append(Insn(insn.opcode, insn.dst, 5, insn.off, insn.imm) if idx in marks else insn)
        k += 1
    return Program(encode(out))


def check(text: str, prog_type: str, **kw) -> Verdict:
    return verify(build(text), maps=MAPS, prog_type=prog_type, **kw)


LOOKUP = """
stdw [%r10-8], 0
mov %r2, %r10
add %r2, -8
ldmap %r1, 1
call 1
"""
LOOKUP_ARR = """
stw [%r10-4], 1
mov %r2, %r10
add %r2, -4
ldxw %r3, [%r10-4]
stxw [%r10-4], %r3
ldmap %r1, 0
call 1
"""
XDP_PKT = """
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]
mov %r4, %r2
add %r4, 14
"""
RINGBUF = """
ldmap %r1, 2
mov %r2, 8
mov %r3, 0
call 131
"""

# (name, program type, assembly, expected cause substring or None for accepted)
CASES = [
    # R0 at exit / uninitialised registers / r10
    ("return constant", "socket_filter", "mov %r0, 0\nexit", None),
    ("r0 unset at exit", "socket_filter", "exit", "R0 is not set at exit"),
    ("read of uninitialised register", "socket_filter", "mov %r0, %r3\nexit", "R3 is read before it is written"),
    ("write to r10", "xdp", "mov %r10, 0\nmov %r0, 0\nexit", "r10"),
    ("helper clobbers r1-r5", "xdp", "call 5\nldxw %r0, [%r1+0]\nexit", "R1 is read before it is written"),
    ("division by a zero immediate", "xdp", "mov %r0, 1\ndiv %r0, 0\nexit", "division by the constant 0"),
    ("division by zero is legal", "xdp", "mov %r0, 1\nmov %r2, 0\ndiv %r0, %r2\nmod %r0, %r2\nexit", None),
    # map lookups and null checks
    ("null-checked lookup", "socket_filter", LOOKUP + "jeq %r0, 0, +2\nldxdw %r0, [%r0+0]\nexit\nmov %r0, 0\nexit",
     None),
    ("lookup used without null check", "socket_filter", LOOKUP + "ldxdw %r0, [%r0+0]\nexit", "R0 may be NULL"),
    ("null check through a copy", "socket_filter",
     LOOKUP + "mov %r6, %r0\njne %r0, 0, +2\nmov %r0, 0\nexit\nldxdw %r0, [%r6+0]\nexit", None),
    ("arithmetic before null check", "socket_filter", LOOKUP + "add %r0, 1\nmov %r0, 0\nexit", "null"),
    ("map value out of bounds", "socket_filter",
     LOOKUP + "jeq %r0, 0, +2\nldxdw %r0, [%r0+4]\nexit\nmov %r0, 0\nexit", "outside the 8-byte value"),
    ("variable index bounded", "socket_filter", LOOKUP_ARR + """
jeq %r0, 0, +5
ldxw %r1, [%r0+0]
jgt %r1, 8, +3
add %r0, %r1
ldxdw %r0, [%r0+0]
exit
mov %r0, 0
exit""", None),
    ("variable index off by one", "socket_filter", LOOKUP_ARR + """
jeq %r0, 0, +5
ldxw %r1, [%r0+0]
jgt %r1, 9, +3
add %r0, %r1
ldxdw %r0, [%r0+0]
exit
mov %r0, 0
exit""", "outside the 16-byte value"),
    ("signed bound needs both sides", "socket_filter", LOOKUP_ARR + """
jeq %r0, 0, +5
ldxdw %r1, [%r0+0]
jsgt %r1, 8, +3
add %r0, %r1
ldxdw %r0, [%r0+0]
exit
mov %r0, 0
exit""", "unbounded"),
    ("signed bound both sides", "socket_filter", LOOKUP_ARR + """
jeq %r0, 0, +6
ldxdw %r1, [%r0+0]
jsgt %r1, 8, +4
jslt %r1, 0, +3
add %r0, %r1
ldxdw %r0, [%r0+0]
exit
mov %r0, 0
exit""", None),
    ("jmp32 bound on 64-bit value", "socket_filter", LOOKUP_ARR + """
jeq %r0, 0, +5
ldxdw %r1, [%r0+0]
jgt32 %r1, 8, +3
add %r0, %r1
ldxdw %r0, [%r0+0]
exit
mov %r0, 0
exit""", "unbounded"),
    ("jmp32 bound on 32-bit load", "socket_filter", LOOKUP_ARR + """
jeq %r0, 0, +5
ldxw %r1, [%r0+0]
jgt32 %r1, 8, +3
add %r0, %r1
ldxdw %r0, [%r0+0]
exit
mov %r0, 0
exit""", None),
    ("constant key array lookup is not null", "socket_filter",
     "stw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\nldmap %r1, 0\ncall 1\nldxdw %r0, [%r0+0]\nexit", None),
    ("store into read-only map", "socket_filter",
     "stw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\nldmap %r1, 5\ncall 1\nstdw [%r0+0], 1\nmov %r0, 0\nexit",
     "read-only"),
    # helper arguments
    ("key pointer outside the stack", "socket_filter",
     "mov %r2, %r10\nadd %r2, -2\nldmap %r1, 0\ncall 1\nmov %r0, 0\nexit", "outside the 512-byte stack"),
    ("key not a pointer", "socket_filter", "mov %r2, 0\nldmap %r1, 0\ncall 1\nmov %r0, 0\nexit", "R2"),
    ("map argument not a map", "socket_filter", "mov %r1, 0\nmov %r2, %r10\ncall 1\nmov %r0, 0\nexit", "must be a map"),
    ("unknown helper", "xdp", "call 999\nmov %r0, 0\nexit", "unknown helper function 999"),
    ("helper not for this type", "xdp", "call 26\nmov %r0, 0\nexit", "cannot call helper bpf_skb_load_bytes"),
    ("probe_read not for tc", "sched_cls", "call 4\nmov %r0, 0\nexit", "bpf_probe_read"),
    ("pointer+size pair", "xdp",
     "stdw [%r10-8], 0\nmov %r1, %r10\nadd %r1, -8\nmov %r2, 8\nmov %r3, 0\nmov %r4, 0\nmov %r5, 0\ncall 28\n"
     "mov %r0, 0\nexit", None),
    ("size larger than the buffer", "xdp",
     "stdw [%r10-8], 0\nmov %r1, %r10\nadd %r1, -8\nmov %r2, 16\nmov %r3, 0\nmov %r4, 0\nmov %r5, 0\ncall 28\n"
     "mov %r0, 0\nexit", "outside the 512-byte stack"),
    ("unbounded size", "xdp",
     "stdw [%r10-8], 0\nmov %r1, %r10\nadd %r1, -8\nldxw %r2, [%r10-8]\nmov %r3, 0\nmov %r4, 0\nmov %r5, 0\n"
     "call 28\nmov %r0, 0\nexit", "unbounded memory access size"),
    ("tail call", "xdp", "ldmap %r2, 3\nmov %r3, 0\ncall 12\nmov %r0, 0\nexit", None),
    ("tail call needs a prog array", "xdp", "ldmap %r2, 0\nmov %r3, 0\ncall 12\nmov %r0, 0\nexit",
     "cannot be used with map 'arr'"),
    ("queue pop into stack", "xdp",
     "ldmap %r1, 4\nmov %r2, %r10\nadd %r2, -8\ncall 88\nldxdw %r0, [%r10-8]\nexit", None),
    # ringbuf references
    ("ringbuf reserve and submit", "xdp", RINGBUF + """
jeq %r0, 0, +4
stdw [%r0+0], 1
mov %r1, %r0
mov %r2, 0
call 132
mov %r0, 0
exit""", None),
    ("ringbuf record leaked", "xdp", RINGBUF + "jeq %r0, 0, +1\nmov %r0, 0\nmov %r0, 0\nexit",
     "neither submitted nor discarded"),
    ("ringbuf record out of bounds", "xdp", RINGBUF + """
jeq %r0, 0, +4
stdw [%r0+8], 1
mov %r1, %r0
mov %r2, 0
call 133
mov %r0, 0
exit""", "outside the 8-byte ringbuf record"),
    ("ringbuf record used after submit", "xdp", RINGBUF + """
jeq %r0, 0, +5
mov %r6, %r0
mov %r1, %r0
mov %r2, 0
call 132
stdw [%r6+0], 1
mov %r0, 0
exit""", "R6 is a scalar"),
    ("ringbuf submit of a null record", "xdp", RINGBUF + "mov %r1, %r0\nmov %r2, 0\ncall 132\nmov %r0, 0\nexit",
     "may be NULL"),
    ("ringbuf size must be constant", "xdp",
     "stdw [%r10-8], 8\nldxw %r2, [%r10-8]\nldmap %r1, 2\nmov %r3, 0\ncall 131\nmov %r0, 0\nexit",
     "must be a known constant"),
    # packet access
    ("packet access after bounds check", "xdp",
     XDP_PKT + "jgt %r4, %r3, +2\nldxb %r0, [%r2+13]\nexit\nmov %r0, 1\nexit", None),
    ("packet access past the checked range", "xdp",
     XDP_PKT + "jgt %r4, %r3, +2\nldxb %r0, [%r2+14]\nexit\nmov %r0, 1\nexit", "beyond the 14 packet bytes"),
    ("packet check with swapped operands", "xdp",
     XDP_PKT + "jlt %r3, %r4, +2\nldxb %r0, [%r2+13]\nexit\nmov %r0, 1\nexit", None),
    ("packet check on the taken branch", "xdp",
     XDP_PKT + "jle %r4, %r3, +2\nmov %r0, 1\nexit\nldxb %r0, [%r2+13]\nexit", None),
    ("packet access on the wrong branch", "xdp",
     XDP_PKT + "jle %r4, %r3, +2\nldxb %r0, [%r2+13]\nexit\nmov %r0, 1\nexit", "beyond the 0 packet bytes"),
    ("packet write in xdp", "xdp", XDP_PKT + "jgt %r4, %r3, +1\nstb [%r2+0], 1\nmov %r0, 2\nexit", None),
    ("packet pointers die after adjust_head", "xdp",
     XDP_PKT + "jgt %r4, %r3, +5\nmov %r6, %r2\nmov %r2, 0\ncall 44\nldxb %r0, [%r6+0]\nexit\nmov %r0, 1\nexit",
     "scalar"),
    ("socket filters have no direct packet access", "socket_filter", "ldxw %r2, [%r1+76]\nmov %r0, 0\nexit",
     "cannot be read"),
    ("tc packet access", "sched_cls", """
ldxw %r2, [%r1+76]
ldxw %r3, [%r1+80]
mov %r4, %r2
add %r4, 14
jgt %r4, %r3, +2
ldxb %r0, [%r2+13]
exit
mov %r0, 0
exit""", None),
    # context access
    ("xdp context is read-only", "xdp", "stw [%r1+0], 0\nmov %r0, 0\nexit", "read-only"),
    ("xdp context field sizes", "xdp", "ldxh %r0, [%r1+12]\nexit", "full 4-byte size"),
    ("xdp egress_ifindex needs devmap", "xdp", "ldxw %r0, [%r1+20]\nexit", "cannot be read"),
    ("tc writes mark", "sched_cls", "stw [%r1+8], 0\nmov %r0, 0\nexit", None),
    ("tc cannot write len", "sched_cls", "stw [%r1+0], 0\nmov %r0, 0\nexit", "read-only"),
    ("socket filter cannot write mark", "socket_filter", "stw [%r1+8], 0\nmov %r0, 0\nexit", "read-only"),
    ("socket filter writes cb", "socket_filter", "stdw [%r1+48], 0\nmov %r0, 0\nexit", None),
    ("narrow context load", "sched_cls", "ldxb %r0, [%r1+1]\nexit", None),
    ("context load across fields", "sched_cls", "ldxdw %r0, [%r1+0]\nexit", "no __sk_buff field"),
    ("modified context pointer", "sched_cls", "add %r1, 8\nldxw %r0, [%r1+0]\nexit", "modified context pointer"),
    ("seccomp reads nr", "seccomp", "ldxw %r0, [%r1+0]\nexit", None),
    ("seccomp context is read-only", "seccomp", "stw [%r1+0], 0\nmov %r0, 0\nexit", "read-only"),
    # stack
    ("stack below the frame", "xdp", "stdw [%r10-520], 0\nmov %r0, 0\nexit", "outside the 512-byte stack"),
    ("stack above the frame", "xdp", "stdw [%r10+0], 0\nmov %r0, 0\nexit", "outside the 512-byte stack"),
    ("misaligned stack access", "xdp", "stw [%r10-6], 0\nmov %r0, 0\nexit", "misaligned stack access"),
    ("pointer spill and fill", "xdp",
     "stxdw [%r10-8], %r1\nldxdw %r2, [%r10-8]\nldxw %r0, [%r2+0]\nmov %r0, 0\nexit", None),
    ("partial fill of a spilled pointer", "xdp", "stxdw [%r10-8], %r1\nldxw %r2, [%r10-8]\nmov %r0, 0\nexit",
     "invalid size of register fill"),
    ("narrow spill of a pointer", "xdp", "stxw [%r10-8], %r1\nmov %r0, 0\nexit", "invalid size of register spill"),
    ("uninitialised stack read (privileged)", "xdp", "ldxdw %r0, [%r10-8]\nexit", None),
    ("variable stack offset", "xdp", """
stdw [%r10-16], 1
stdw [%r10-8], 2
ldxw %r1, [%r1+12]
and %r1, 8
mov %r2, %r10
add %r2, %r1
ldxdw %r0, [%r2-16]
exit""", None),
    # pointer arithmetic
    ("arithmetic on packet end", "xdp", "ldxw %r3, [%r1+4]\nadd %r3, 1\nmov %r0, 0\nexit", "pkt_end prohibited"),
    ("multiply a pointer", "xdp", "mov %r2, %r10\nmul %r2, 2\nmov %r0, 0\nexit", "prohibited"),
    ("32-bit pointer arithmetic", "xdp", "mov %r2, %r10\nadd32 %r2, 2\nmov %r0, 0\nexit", "32-bit pointer arithmetic"),
    ("or on a pointer", "xdp", "mov %r2, %r10\nor %r2, 2\nmov %r0, 0\nexit", "bitwise operator"),
    ("pointer minus pointer (privileged)", "xdp", "mov %r2, %r10\nsub %r2, %r10\nmov %r0, 0\nexit", None),
    ("scalar minus pointer", "xdp", "mov %r2, 0\nsub %r2, %r10\nmov %r0, 0\nexit", "subtract a pointer"),
    ("arithmetic on a map pointer", "xdp", "ldmap %r1, 0\nadd %r1, 8\nmov %r0, 0\nexit", "map_ptr prohibited"),
    ("unbounded add to a stack pointer", "xdp",
     "ldxdw %r1, [%r10-8]\nmov %r2, %r10\nadd %r2, %r1\nmov %r0, 0\nexit", "unbounded"),
    ("return a pointer (privileged)", "xdp", "mov %r0, %r10\nexit", None),
    # control flow
    ("bounded loop", "xdp", "mov %r0, 0\nmov %r1, 0\nl:\nadd %r1, 1\nadd %r0, 2\njlt %r1, 100, l\nexit", None),
    ("infinite loop", "xdp", "mov %r0, 0\nl:\nja l", "infinite loop"),
    ("unreachable instruction", "xdp", "mov %r0, 0\nexit\nmov %r0, 1\nexit", "unreachable"),
    ("dead branch is pruned", "xdp", "mov %r0, 0\njeq %r0, 0, +1\nldxdw %r0, [%r0+0]\nexit", None),
    ("jset refines", "xdp", "ldxw %r2, [%r1+12]\nmov %r0, 0\njset %r2, 1, +1\nexit\nexit", None),
    ("callx is refused", "raw", "mov %r2, 5\ncall %r2\nmov %r0, 0\nexit", "callx"),
    # bpf-to-bpf calls and callbacks
    ("local call", "xdp", "mov %r1, 1\ncall local f\nexit\nf:\nmov %r0, %r1\nexit", None),
    ("callee cannot read caller r6", "xdp", "mov %r6, 1\ncall local f\nexit\nf:\nmov %r0, %r6\nexit",
     "R6 is read before"),
    ("callee writes caller stack", "xdp",
     "mov %r1, %r10\nadd %r1, -8\ncall local f\nldxdw %r0, [%r10-8]\nexit\nf:\nstdw [%r1+0], 7\nmov %r0, 0\nexit",
     None),
    ("return a pointer to the callee stack", "xdp", "call local f\nmov %r0, 0\nexit\nf:\nmov %r0, %r10\nexit",
     "own stack frame"),
    ("call depth", "xdp", "call local f1\nexit\nf1:\ncall local f2\nexit\nf2:\ncall local f3\nexit\nf3:\n"
     "call local f4\nexit\nf4:\ncall local f5\nexit\nf5:\ncall local f6\nexit\nf6:\ncall local f7\nexit\nf7:\n"
     "call local f8\nexit\nf8:\nmov %r0, 0\nexit", "too deep"),
    ("combined stack over 512 bytes", "xdp",
     "stdw [%r10-512], 0\ncall local f\nmov %r0, 0\nexit\nf:\nstdw [%r10-8], 0\nmov %r0, 0\nexit", "combined stack"),
]

_LOOP = """
mov %r1, 10
lddw %r2, 0
mov %r3, %r10
add %r3, -8
stdw [%r10-8], 0
mov %r4, 0
call 181
ldxdw %r0, [%r10-8]
exit
cb:
ldxdw %r3, [%r2+0]
add %r3, 1
and %r3, 1023
stxdw [%r2+0], %r3
mov %r0, {ret}
exit
"""


def _with_callback(text: str) -> Program:
    prog = build(text)
    insns = prog.insns()
    out = []
    pc = 0
    for i in insns:
        if i.is_wide:
            cb = 9 + 1  # slot of "cb:" (lddw is two slots)
            i = Insn(i.opcode, i.dst, 4, 0, cb - (pc + 1))
        out.append(i)
        pc += i.slots
    return Program(encode(out))


@pytest.mark.parametrize(("name", "ptype", "text", "cause"), CASES, ids=[c[0] for c in CASES])
def test_rule(name, ptype, text, cause):
    v = check(text, ptype)
    if cause is None:
        assert v.accepted, v.log
    else:
        assert not v.accepted, f"{name}: expected a rejection ({cause})"
        first = v.log.splitlines()[0]
        assert cause in first, first


def test_bpf_loop_callback():
    v = verify(_with_callback(_LOOP.format(ret=0)), prog_type="xdp")
    assert v.accepted, v.log
    v = verify(_with_callback(_LOOP.format(ret=7)), prog_type="xdp")
    assert not v.accepted and "must return 0 or 1" in v.log.splitlines()[0]


# -- unprivileged rules ---------------------------------------------------------------------------
UNPRIV = [
    ("uninitialised stack read", "xdp", "ldxdw %r0, [%r10-8]\nexit", "uninitialised"),
    ("pointer returned", "xdp", "mov %r0, %r10\nexit", "leaks"),
    ("pointer stored in a map", "socket_filter",
     LOOKUP + "jeq %r0, 0, +1\nstxdw [%r0+0], %r10\nmov %r0, 0\nexit", "leak"),
    ("pointer comparison", "xdp", "mov %r2, %r10\njeq %r2, %r1, +0\nmov %r0, 0\nexit", "pointer comparison"),
    ("pointer minus pointer", "xdp", "mov %r2, %r10\nsub %r2, %r10\nmov %r0, 0\nexit", "prohibited"),
    ("bpf-to-bpf call", "xdp", "mov %r1, 1\ncall local f\nexit\nf:\nmov %r0, %r1\nexit", "privileged"),
    ("back-edge", "xdp", "mov %r0, 0\nmov %r1, 0\nl:\nadd %r1, 1\njlt %r1, 3, l\nexit", "back-edge"),
]


@pytest.mark.parametrize(("name", "ptype", "text", "cause"), UNPRIV, ids=[c[0] for c in UNPRIV])
def test_unprivileged_rule(name, ptype, text, cause):
    assert check(text, ptype).accepted, "privileged mode allows it"
    v = check(text, ptype, privileged=False)
    assert not v.accepted
    assert cause in v.log.splitlines()[0]


# -- the conformance suite in the raw type ----------------------------------------------------------
# Each with the reason the kernel, too, would refuse it.
CONFORMANCE_EXCEPTIONS = {
    "callx": "call through a register (opcode 0x8d) is an extension the kernel's verifier does not know",
}


def _conformance_cases():
    if not CONFORMANCE.is_dir():
        return []
    return [c for c in conformance.iter_cases(CONFORMANCE) if c.code is not None]


@pytest.mark.skipif(not CONFORMANCE.is_dir(), reason="conformance suite not present")
def test_conformance_suite_accepted_in_raw():
    refused = {}
    for case in _conformance_cases():
        v = verify(Program(case.code, prog_type="raw"))
        if not v.accepted:
            refused[case.name] = v.log.splitlines()[0]
    assert set(refused) == set(CONFORMANCE_EXCEPTIONS), refused


# -- API, log and statistics ----------------------------------------------------------------------------
def test_api_and_log_shape():
    v = check(LOOKUP + "ldxdw %r1, [%r0+0]\nmov %r0, 0\nexit", "socket_filter")
    assert not v and v.error is not None
    assert isinstance(v.error, VerifierError) and v.error.pc == 6
    first = v.log.splitlines()[0]
    assert first.startswith("6: r1 = *(u64 *)(r0 + 0x0): R0 may be NULL")
    assert "bpf_map_lookup_elem at 5" in first and "check it against 0 first" in first
    assert "path:" in v.log
    with pytest.raises(VerifierError):
        v.raise_for_error()
    assert set(v.stats) >= {"insns_processed", "peak_states", "total_states", "time_ms"}


def test_log_levels():
    text = "mov %r0, 0\nmov %r1, 0\nl:\nadd %r1, 1\njlt %r1, 3, l\nexit"
    quiet = check(text, "xdp", log_level=0)
    one = check(text, "xdp", log_level=1)
    two = check(text, "xdp", log_level=2)
    assert quiet.accepted and quiet.log == ""
    assert one.log.startswith("accepted: processed")
    # Level 2 traces every processed instruction, or names the loop iterations it summarised.
    traced = [line for line in two.log.splitlines() if " ; " in line]
    summarised = two.stats["iterations_summarised"] * 2
    assert "R1=" in two.log and len(traced) + summarised == one.stats["insns_processed"]
    Verdict(True, None, "").raise_for_error()


def test_insn_limit():
    v = check("mov %r0, 0\nl:\nadd %r0, 1\nja l", "xdp", insn_limit=20_000)
    assert not v.accepted and "too complex" in v.log.splitlines()[0]
    v = check("mov %r0, 0\nmov %r1, 0\nl:\nadd %r1, 1\njlt %r1, 1000, l\nexit", "xdp", insn_limit=500)
    assert not v.accepted and "too complex" in v.log.splitlines()[0]
    v = check("mov %r0, 0\nmov %r1, 0\nl:\nadd %r1, 1\njlt %r1, 1000, l\nexit", "xdp")
    assert v.accepted and v.stats["insns_processed"] > 2000


def test_helper_prototypes_cover_the_engine():
    from bpfmc.worker.helpers import HELPER_NAMES

    assert set(vhelpers.PROTOS) == set(HELPER_NAMES)
    for hid, name in HELPER_NAMES.items():
        assert vhelpers.PROTOS[hid].name == name


def test_context_table_agrees_with_the_engine():
    from bpfmc.ebpf.verifier.context import LAYOUTS
    from bpfmc.worker.contexts import CONTEXTS

    for ptype in ("xdp", "sched_cls", "socket_filter"):
        layout, spec = LAYOUTS[ptype], CONTEXTS[ptype]
        writable = set()
        for f in spec.fields:
            if f.name in spec.writable:
                writable.update(range(f.offset, f.offset + f.size))
        for off, size in itertools.product(range(layout.size), (1, 2, 4, 8)):
            f, _ = layout.check(off, size, True)
            if f is not None:  # whatever we let a program write, the engine lets it write
                assert set(range(off, off + size)) <= writable, (ptype, off, size)
            f, _ = layout.check(off, size, False)
            if f is not None:
                assert off + size <= spec.size


# -- the scalar domain, checked against concrete arithmetic ------------------------------------------
def _members(s: sc.Scalar, values):
    return [v for v in values if s.umin <= v <= s.umax and s.smin <= sc.s64(v) <= s.smax and s.var.member(v)
            and s.u32min <= v & tn.U32 <= s.u32max and s.s32min <= sc.s32(v) <= s.s32max]


_SAMPLES = [0, 1, 2, 3, 7, 8, 255, 256, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 32, (1 << 63) - 1, 1 << 63,
            (1 << 64) - 1, (1 << 64) - 8, (1 << 64) - 256]


@pytest.mark.parametrize("opname", ["add", "sub", "mul", "div", "mod", "or", "and", "xor", "lsh", "rsh", "arsh"])
@pytest.mark.parametrize("bits", [64, 32])
def test_abstract_alu_is_sound(opname, bits):
    rnd = random.Random(f"{opname}{bits}")
    for _ in range(300):
        xs = [rnd.choice(_SAMPLES) + rnd.randrange(4) for _ in range(3)]
        ys = [rnd.choice(_SAMPLES[:8]) + rnd.randrange(3) for _ in range(2)]
        a = _hull(xs)
        b = _hull(ys)
        r = sc.alu(opname, a, b, bits)
        for x, y in itertools.product(xs, ys):
            want = sc.concrete(opname, x, y, bits)
            assert _members(r, [want]) == [want], (opname, bits, x, y, want, r)


@pytest.mark.parametrize("rel", ["eq", "ne", "gt", "ge", "lt", "le", "sgt", "sge", "slt", "sle", "set", "nset"])
@pytest.mark.parametrize("bits", [64, 32])
def test_branch_refinement_is_sound(rel, bits):
    rnd = random.Random(f"{rel}{bits}")
    for _ in range(300):
        xs = [(rnd.choice(_SAMPLES) + rnd.randrange(4)) & tn.U64 for _ in range(3)]
        ys = [(rnd.choice(_SAMPLES[:9]) + rnd.randrange(3)) & tn.U64 for _ in range(2)]
        a, b = _hull(xs), _hull(ys)
        out = sc.refine(a, b, rel, bits)
        for x, y in itertools.product(xs, ys):
            if _holds(rel, x, y, bits):
                assert out is not None, (rel, x, y)
                assert _members(out[0], [x]) == [x] and _members(out[1], [y]) == [y], (rel, bits, x, y, out)


def _hull(values) -> sc.Scalar:
    values = [v & tn.U64 for v in values]
    s = sc.unsigned_range(min(values), max(values))
    var = tn.const(values[0])
    for v in values[1:]:
        var = tn.Tnum(var.value & v, (var.mask | (var.value ^ v)) & tn.U64)
        var = tn.Tnum(var.value & ~var.mask & tn.U64, var.mask)
    lo32 = min(v & tn.U32 for v in values)
    hi32 = max(v & tn.U32 for v in values)
    r = sc.sync(s._replace(var=var, u32min=lo32, u32max=hi32, smin=min(sc.s64(v) for v in values),
                           smax=max(sc.s64(v) for v in values), s32min=min(sc.s32(v) for v in values),
                           s32max=max(sc.s32(v) for v in values)))
    assert r is not None and _members(r, values) == values
    return r


def _holds(rel: str, x: int, y: int, bits: int) -> bool:
    m = (1 << bits) - 1
    x, y = x & m, y & m
    sx = x - (1 << bits) if x >> (bits - 1) else x
    sy = y - (1 << bits) if y >> (bits - 1) else y
    return {"eq": x == y, "ne": x != y, "gt": x > y, "ge": x >= y, "lt": x < y, "le": x <= y, "sgt": sx > sy,
            "sge": sx >= sy, "slt": sx < sy, "sle": sx <= sy, "set": bool(x & y), "nset": not x & y}[rel]
