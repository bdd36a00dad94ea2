"""Real programs through bpfmc alone, against the kernel's recorded results.

The same table as ``test_progs_kernel.py`` (:data:`CASES`): each row runs through bpfmc and is
compared with what the host kernel gave when ``tests/progs/expected.json`` was recorded -- or,
for the rows the kernel cannot run (a kprobe, a legacy-map object libbpf refuses), with the
row's hand-computed result. These run wherever clang is installed, ``bpf()`` or not.

It also checks what no recording can: the ring buffer, perf and trace output of trace_ring
against values computed here from the program's source, and the checksums of every packet the
corpus rewrites (on the recorded kernel outputs, so the programs themselves are right).
"""

from __future__ import annotations

import struct

import pytest
from packets import PACKETS, checksum_problems
from test_progs_kernel import CASES, PROGS, Case, case_by_id, differences, engine_class, engine_result, load_expected

RECORDED = load_expected()


def reference(case: Case) -> tuple[dict, str]:
    if case.expect is not None:
        return case.expect, "hand-computed"
    if case.id not in RECORDED:
        pytest.skip(f"no recorded kernel result for {case.id} (BPFMC_RECORD_PROGS=1 pytest -m kernel "
                    "tests/test_progs_kernel.py)")
    return RECORDED[case.id], "recorded kernel"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_engine_matches_recorded(case: Case, bpf_cc) -> None:
    ref, name = reference(case)
    if engine_class()[0] is None:
        pytest.skip(engine_class()[1])
    ours = engine_result(case, bpf_cc(PROGS / case.source))
    for check in case.checks:
        check("bpfmc", ours)
    problems = differences(case, ours, ref, ref_name=name)
    assert not problems, f"{len(problems)} mismatches:\n" + "\n".join(problems)


def test_every_case_is_recorded_or_hand_computed() -> None:
    missing = [c.id for c in CASES if c.expect is None and c.id not in RECORDED]
    assert not missing, f"no recorded kernel result for {missing}"
    stale = sorted(set(RECORDED) - {c.id for c in CASES})
    assert not stale, f"expected.json has results for cases no longer in the table: {stale}"


def test_every_skip_has_a_reason() -> None:
    for case in CASES:
        for what, why in case.skip:
            assert what and len(why) > 20, f"{case.id}: skip {what!r} needs a written reason"


# --- trace_ring: records and trace lines, modelled from trace_ring.c ---------------------------

EV_OUTPUT, EV_SUBMIT, EV_DISCARD, EV_PERF = 1, 2, 3, 4


def _loop(base: int, n: int) -> tuple[int, int]:
    """bpf_loop(n, sum_squares, {base}): (iterations the helper reports, final sum). The callback
    returning 1 stops the loop after counting that iteration."""
    total = 0
    for i in range(n):
        total += i * i + base
        if total > 1000:
            return i + 1, total
    return n, total


def trace_ring_model(case: Case) -> list[dict]:
    """Per run: the records (ring buffer then perf) and trace lines trace_ring.c emits."""
    out = []
    for seq, ctx in enumerate(case.frames()):
        arg0, sid = struct.unpack("<QQ", ctx)
        _, total = _loop(sid, sid & 15)
        # struct event {u32 kind; u32 seq; u64 id; u64 arg0; u64 loop_sum}; the discarded record
        # (odd ids) never reaches a consumer.
        records = [struct.pack("<IIQQQ", kind, seq, sid, arg0, total).hex()
                   for kind in (EV_OUTPUT, EV_SUBMIT, EV_PERF)]
        out.append({"records": records, "trace": [f"sys_enter id={sid} seq={seq} sum={total}"]})
    return out


def test_trace_ring_model_matches_recorded_kernel() -> None:
    """The model below is right: it reproduces what the kernel emitted (discarded records absent)."""
    case = case_by_id("trace_ring")
    ref, _ = reference(case)
    for i, (want, got) in enumerate(zip(trace_ring_model(case), ref["runs"], strict=True)):
        assert got["records"] == want["records"], f"run {i}"
        if got.get("trace") is not None:
            assert got["trace"] == want["trace"], f"run {i}"


def test_trace_ring_records_and_trace(bpf_cc) -> None:
    case = case_by_id("trace_ring")
    if engine_class()[0] is None:
        pytest.skip(engine_class()[1])
    ours = engine_result(case, bpf_cc(PROGS / case.source))
    for i, (want, run) in enumerate(zip(trace_ring_model(case), ours["runs"], strict=True)):
        assert run["records"] == want["records"], f"run {i}: records"
        assert run["trace"] == want["trace"], f"run {i}: trace"


# --- checksums ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PACKETS))
def test_packet_checksums(name: str) -> None:
    assert checksum_problems(PACKETS[name]) == []


@pytest.mark.parametrize("case_id,meta", [("xdp_lb", 4), ("tc_nat", 0), ("xdp_ipip", 0)])
def test_rewritten_packets_keep_valid_checksums(case_id: str, meta: int) -> None:
    """The corpus's header rewrites (incremental checksum updates, encapsulation) are correct --
    checked on the kernel's outputs, which bpfmc's must then equal."""
    ref, _ = reference(case_by_id(case_id))
    changed = [r["data_out"] for r in ref["runs"] if r.get("data_out")]
    assert changed
    for hexed in changed:
        assert checksum_problems(bytes.fromhex(hexed)[meta:]) == [], hexed
