"""The engine beyond the conformance suite: faults, metering, the model, batches."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from bpfmc.ebpf.asm import assemble
from bpfmc.ebpf.program import Program
from bpfmc.ebpf.validate import ValidationError
from bpfmc.worker.engine import Engine
from bpfmc.worker.model import HardwareModel, ModelError, preset_names


def engine(src: str, model="generic", **kw) -> Engine:
    return Engine(Program(assemble(src), name="t"), model, **kw)


LOOP = """
mov %r0, 0
loop:
add %r0, 1
jlt %r0, 10, loop
exit
"""


# -- memory safety: every fault ends the run cleanly, names the pc, and never writes outside --

@pytest.mark.parametrize("src, kind, pc", [
    ("ldxw %r0, [%r1+100]\nexit", "out_of_bounds_load", 0),
    ("ldxdw %r0, [%r1-8]\nexit", "out_of_bounds_load", 0),
    ("mov %r2, 0\nldxb %r0, [%r2]\nexit", "out_of_bounds_load", 1),
    ("stw [%r10+0], 1\nexit", "out_of_bounds_store", 0),
    ("stdw [%r10-4100], 1\nexit", "out_of_bounds_store", 0),  # below all 8 frames of the stack
    ("mov %r1, 0x10\nlsh %r1, 32\nstxb [%r1], %r1\nexit", "out_of_bounds_store", 2),
    ("mov %r2, 1\nlock add [%r10-15], %r2\nexit", "misaligned_atomic", 1),
])
def test_faults(src, kind, pc):
    run = engine(src).run(bytes(8))
    assert run["error"]["kind"] == kind
    assert run["error"]["pc"] == pc
    assert f"{run['error']['pc']}" and run["error"]["message"]


def test_unknown_helper_refused_at_load():
    with pytest.raises(ValidationError, match="9999"):
        engine("call 9999\nexit")


def test_deeper_frames_stay_inside_the_stack_region():
    # 520 bytes below frame 0's top is frame 1's memory: inside the region, so no fault.
    assert "error" not in engine("stdw [%r10-520], 1\nexit").run()


def test_out_of_bounds_store_leaves_input_untouched():
    eng = engine("stdw [%r1+6], -1\nexit")
    batch = eng.run_batch([bytes(8)])
    assert batch.error(0)["kind"] == "out_of_bounds_store"
    assert batch.output(0) == bytes(8)


def test_fault_message_names_region_and_size():
    run = engine("ldxw %r0, [%r1+100]\nexit").run(bytes(5))
    assert run["error"]["message"] == "load of 4 bytes at input+100 is outside region 'input' (5 bytes)"


def test_writes_to_input_come_back_and_do_not_leak_between_runs():
    eng = engine("ldxb %r0, [%r1]\nadd %r0, 1\nstxb [%r1], %r0\nexit")
    batch = eng.run_batch([b"\x01", b"\x05"], repeat=2)
    assert [int(x) for x in batch.r0] == [2, 2, 6, 6]  # each run starts from a fresh copy
    assert [batch.output(i) for i in range(4)] == [b"\x02", b"\x02", b"\x06", b"\x06"]


def test_stack_frame_starts_zeroed_each_run():
    eng = engine("ldxdw %r0, [%r10-8]\nstdw [%r10-8], 7\nexit")
    assert [int(x) for x in eng.run_batch([b""] * 3).r0] == [0, 0, 0]


# -- metering ---------------------------------------------------------------------------------

def test_counts_are_exact():
    run = engine(LOOP).run()
    assert run == {"r0": 10, "insns": 1 + 10 * 2 + 1, "cycles": 22}


def test_fault_counts_stop_at_the_faulting_instruction():
    run = engine("mov %r0, 1\nmov %r0, 2\nldxw %r0, [%r0]\nmov %r0, 3\nexit").run()
    assert run["insns"] == 3 and run["error"]["pc"] == 2


def test_hbpf_cycle_table():
    model = HardwareModel.preset("hbpf")
    # mov 1, then 10 x (add 1 + taken/not-taken jump 2), exit 2
    assert engine(LOOP, model).run()["cycles"] == 1 + 10 * 3 + 2
    run = engine("stxdw [%r10-8], %r1\nldxdw %r0, [%r10-8]\ndiv %r0, 3\nexit", model).run()
    assert run["cycles"] == 23 + 14 + 68 + 2


def test_budget_stops_infinite_loop():
    run = engine("l:\nja l\nexit", "solana-cu").run()
    assert run["error"]["kind"] == "budget_exceeded"
    assert 200_000 < run["insns"] <= 200_001


def test_budget_applies_to_recursion():
    run = engine("f:\ncall local f\nexit").run()
    assert run["error"]["kind"] == "call_depth_exceeded"


def test_custom_model_file(tmp_path):
    f = tmp_path / "m.toml"
    f.write_text('name = "tiny"\ninsn_budget = 5\n[cycles]\ndefault = 3\njump_taken = 10\n')
    m = HardwareModel.from_file(f)
    run = engine(LOOP, m).run()
    assert run["error"]["kind"] == "budget_exceeded"
    assert engine("mov %r0, 7\nexit", m).run() == {"r0": 7, "insns": 2, "cycles": 6}


@pytest.mark.parametrize("text, message", [
    ("cores = 0\n", "cores must be a positive integer"),
    ("[cycles]\nbogus = 1\n", "unknown cycle classes"),
    ("stack_size = 500\n", "multiple of 8"),
    ("colour = 1\n", "unknown model keys"),
    ("cores = [\n", "model file"),
])
def test_bad_models(tmp_path, text, message):
    f = tmp_path / "m.toml"
    f.write_text(text)
    with pytest.raises(ModelError, match=message):
        HardwareModel.from_file(f)


def test_presets():
    assert {"generic", "hbpf", "solana-cu"} <= set(preset_names())
    assert HardwareModel.preset("solana-cu").insn_budget == 200_000
    with pytest.raises(ModelError, match="unknown model preset"):
        HardwareModel.preset("nope")


# -- calls, helpers, batches ------------------------------------------------------------------

def test_local_call_has_its_own_frame():
    src = """
    stdw [%r10-8], 11
    call local f
    ldxdw %r0, [%r10-8]
    exit
    f:
    stdw [%r10-8], 22
    exit
    """
    assert engine(src).run()["r0"] == 11


def test_helpers_by_kernel_id():
    eng = engine("call 8\nexit", HardwareModel.preset("generic").with_(cores=4), core_id=3)
    assert eng.run()["r0"] == 3  # bpf_get_smp_processor_id
    a = [engine("call 7\nexit", seed=5).run()["r0"] for _ in range(2)]
    b = engine("call 7\nexit", seed=6).run()["r0"]
    assert a[0] == a[1] != b and a[0] < 2**32  # prandom: reproducible per seed, 32-bit


def test_core_must_exist_in_the_model():
    with pytest.raises(ValueError, match="core 3 does not exist"):
        engine("exit", core_id=3)


def test_batch_of_packed_inputs_matches_single_runs():
    eng = engine("mov %r0, %r2\nexit")
    blob = b"abcdefghij"
    batch = eng.run_batch((blob, [3, 0, 7]))
    assert [int(x) for x in batch.r0] == [3, 0, 7]
    assert batch.totals() == {"runs": 3, "faults": 0, "insns": 6, "cycles": 6}


def test_large_input_grows_buffer():
    eng = engine("ldxw %r0, [%r1+4096]\nexit")
    assert eng.run(bytes(4096) + struct.pack("<I", 0xCAFE))["r0"] == 0xCAFE


def test_results_are_numpy_columns():
    batch = engine(LOOP).run_batch([b""] * 1000)
    assert batch.r0.dtype == np.uint64 and len(batch) == 1000 and not batch.faulted.any()


def test_result_columns_are_recycled_only_when_no_result_holds_them():
    from bpfmc.ebpf.asm import assemble
    from bpfmc.ebpf.program import Program
    from bpfmc.worker.engine import Engine

    e = Engine(Program(assemble("mov %r0, %r2\nexit")))
    first = e.run_batch([b"a", b"bb"])
    second = e.run_batch([b"ccc", b"dddd"])
    kept = second.r0[:1]  # a view outlives its result
    del second
    for n in range(5, 40):  # many batches later, what is still held has not been overwritten
        assert e.run_batch([bytes(n)]).r0.tolist() == [n]
    assert first.r0.tolist() == [1, 2] and kept.tolist() == [3]
    assert len(e._results._buffers) <= 3
