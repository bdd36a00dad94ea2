"""Decode-time speedups of the interpreter keep exact semantics: superinstructions (a ``mov``
fused with the ALU64 operation after it) and the static register cache."""

from __future__ import annotations

import numpy as np

from bpfmc.ebpf.asm import assemble
from bpfmc.ebpf.program import Program
from bpfmc.worker import decode
from bpfmc.worker.engine import Engine


def _run(text: str, data: bytes = b"") -> dict:
    return Engine(Program(assemble(text))).run(data)


def test_mov_alu_pair_is_fused_and_exact():
    eng = Engine(Program(assemble("mov %r2, 7\nmov %r1, %r2\nlsh %r1, 3\nmov %r0, %r1\nexit")))
    assert int(eng.decoded.code[1]) == decode.I_MOVLSH_K
    assert eng.run(b"") == {"r0": 56, "insns": 5, "cycles": 5}


def test_fused_register_operand_naming_dst_means_the_source():
    # r1 = r2; r1 += r1  ->  r1 = r2 + r2
    assert _run("mov %r2, 21\nmov %r1, %r2\nadd %r1, %r1\nmov %r0, %r1\nexit")["r0"] == 42


def test_jump_may_land_on_the_second_slot_of_a_fused_pair():
    text = """
        mov %r1, 100
        mov %r3, 1
        jeq %r3, 1, second
        mov %r1, %r3
    second:
        add %r1, 5
        mov %r0, %r1
        exit
    """
    eng = Engine(Program(assemble(text)))
    assert int(eng.decoded.code[3]) == decode.I_MOVADD_K
    assert eng.run(b"") == {"r0": 105, "insns": 6, "cycles": 6}


def test_cache_is_forgotten_where_control_joins():
    # At `join` the register written last differs by path (r1 or r2): reads must use memory.
    text = """
        mov %r1, 1
        mov %r2, 2
        jeq %r10, 0, join
        mov %r2, 40
        mov %r1, 2
    join:
        add %r1, %r2
        mov %r0, %r1
        exit
    """
    assert _run(text)["r0"] == 42


def test_cache_survives_stores_and_not_taken_jumps_but_not_calls():
    text = """
        mov %r0, 5
        stxdw [%r10-8], %r0
        jeq %r0, 0, out
        call 8
        add %r0, 1
    out:
        exit
    """
    # Before the call the cache holds r0 = 5; the helper (get_smp_processor_id, core 0) writes
    # r0 = 0 behind its back, so the add must read memory.
    eng = Engine(Program(assemble(text)))
    assert int(eng.decoded.rs[1]) == decode.CACHED  # the store still reads r0 from the cache
    assert int(eng.decoded.rd[2]) == decode.CACHED  # and so does the jump after it
    assert int(eng.decoded.rd[4]) == 0
    assert eng.run(b"")["r0"] == 1


def test_read_indices_use_cached_only_after_a_single_predecessor():
    eng = Engine(Program(assemble("mov %r1, 1\nadd %r1, 2\nmov %r0, %r1\nexit")))
    d = eng.decoded
    assert int(d.rd[0]) == 1  # pc 0 is an entry: nothing cached
    assert int(d.rd[1]) == decode.CACHED
    assert int(d.rs[2]) == decode.CACHED
    assert np.all(d.rd[: d.num_slots] <= decode.CACHED)


def test_mov_imm_then_compare_is_fused_and_exact():
    text = """
        mov %r0, 0
        mov %r1, 5
        jeq %r1, 5, hit
        mov %r0, 99
    hit:
        mov %r2, 7
        jne %r2, 7, miss
        add %r0, 1
    miss:
        mov %r3, 9
        jgt %r3, %r2, big
        add %r0, 100
    big:
        exit
    """
    eng = Engine(Program(assemble(text)))
    fused = {int(c) for c in eng.decoded.code}
    assert {decode.I_MOVK_JEQ_K, decode.I_MOVK_JNE_K, decode.I_MOVK_JGT_X} <= fused
    # jeq taken (r0 stays 0), jne not taken (+1), jgt taken (skips +100): r0 = 1; the fused
    # pairs still count two instructions each.
    assert eng.run(b"") == {"r0": 1, "insns": 9, "cycles": 9}


def _event_writes(text: str, prog_type: str = "raw") -> bool:
    return Engine(Program(assemble(text), prog_type=prog_type)).decoded.event_writes


def test_packet_compare_is_skipped_only_when_nothing_can_write_the_event():
    # Loads, stack stores (r10-based) and read-only helpers: the event cannot change.
    assert not _event_writes("ldxb %r0, [%r1+0]\nstxdw [%r10-8], %r0\ncall 7\nexit")
    # A store through r1 (the event), an atomic, or a helper that writes memory: it can.
    assert _event_writes("mov %r0, 1\nstxb [%r1+0], %r0\nexit")
    assert _event_writes("mov %r0, 1\nlock add [%r1+0], %r0\nexit")
    assert _event_writes("mov %r2, %r10\nadd %r2, -8\nmov %r3, 8\ncall 4\nexit")  # probe_read into any pointer
    # And the result is right either way: a raw program that writes its input reports data_out.
    assert _run("mov %r0, 0x41\nstxb [%r1+0], %r0\nexit", b"z")["data_out"] == "41"
