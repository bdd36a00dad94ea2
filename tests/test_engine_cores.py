"""An engine hosting several emulated cores (one row of core state each, one compiled call for
all of them) against one single-core engine per core fed the same events."""

from __future__ import annotations

import numpy as np
import pytest

from bpfmc.ebpf.asm import assemble
from bpfmc.ebpf.program import Program
from bpfmc.worker import interp
from bpfmc.worker.batch import OM_COLS
from bpfmc.worker.engine import Engine
from bpfmc.worker.helpers import CORE_CYCLES, CORE_EVENTS, CORE_FAULTS, CORE_ID, CORE_INSNS
from bpfmc.worker.model import HardwareModel

MODEL = HardwareModel.preset("generic").with_(cores=4)

# Per-CPU state that depends on everything a core owns: its id, random stream, virtual clock and
# per-CPU rows; r0 and a trace line per event show the same per event.
PROG = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 8);
         __type(key, __u32); __type(value, __u64); } seen SEC(".maps");
SEC("xdp")
int det(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    if (data + 15 > (void *)(long)ctx->data_end)
        return XDP_ABORTED;
    __u32 k = ((unsigned char *)data)[14] & 7, all = 7;
    if (k == 6)
        return *(volatile __u32 *)(long)8;  /* a fault */
    __u64 mix = bpf_ktime_get_ns() << 20;
    mix ^= bpf_get_prandom_u32();
    mix ^= (__u64)bpf_get_smp_processor_id() << 40;
    __u64 *v = bpf_map_lookup_elem(&seen, &k);
    if (v)
        *v = *v * 1000003 + mix;
    v = bpf_map_lookup_elem(&seen, &all);
    if (v)
        __sync_fetch_and_add(v, 1);  /* an atomic: its handler has locals of its own */
    if (k == 3)
        bpf_printk("k3 %llu", mix & 0xffff);
    if (k == 5)
        bpf_xdp_adjust_head(ctx, 1);  /* a changed packet */
    return (mix & 0xff) << 8 | XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
"""


def _frames(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    frames = [bytes(14) + bytes([int(k)]) + bytes(int(x)) for k, x in zip(rng.integers(0, 8, n),
                                                                          rng.integers(0, 30, n), strict=True)]
    return np.frombuffer(b"".join(frames), np.uint8).copy(), np.array([len(f) for f in frames], np.int64)


def _per_cpu(engine: Engine) -> dict[bytes, list[bytes]]:
    mp = engine.map("seen")
    return {k: mp.per_cpu(v) for k, v in mp.items()}


@pytest.fixture
def obj(bpf_cc):
    return bpf_cc(PROG)


@pytest.mark.parametrize("clock", ["virtual", "host"])
def test_three_hosted_cores_equal_three_single_core_engines(obj, clock):
    hosted = [3, 0, 2]  # rows in this order: row r is core hosted[r]
    multi = Engine.from_object(obj, model=MODEL, cores=hosted, seed=7)
    singles = {c: Engine.from_object(obj, model=MODEL, cpu=c, seed=7) for c in hosted}
    for e in (multi, *singles.values()):
        e.clock = clock
    assert multi.core_ids == tuple(hosted) and multi.cores[:, CORE_ID].tolist() == hosted
    rng = np.random.default_rng(5)
    faults = 0
    for batch in range(3):  # state carries over from batch to batch, per core
        blob, lengths = _frames(90, seed=batch)
        cores = rng.choice(hosted, 90)
        res = multi.run_batch((blob, lengths), cores=cores)
        offsets = np.concatenate(([0], np.cumsum(lengths)))
        faults += int(np.count_nonzero(res.status))
        for c, single in singles.items():
            mine = np.flatnonzero(cores == c)
            got = single.run_batch([blob[offsets[i]:offsets[i + 1]].tobytes() for i in mine])
            if clock == "virtual":
                assert [res.run(int(i)) for i in mine] == got.runs()
            else:  # ktime follows the host: only what does not depend on it can match
                assert (res.insns[mine] == got.insns).all() and (res.status[mine] == got.status).all()
    row = {c: r for r, c in enumerate(hosted)}
    assert faults and faults == sum(int(s.cores[0, CORE_FAULTS]) for s in singles.values())
    for c, single in singles.items():
        assert multi.cores[row[c], CORE_EVENTS] == single.cores[0, CORE_EVENTS] > 0
        for col in (CORE_INSNS, CORE_CYCLES, CORE_FAULTS):
            assert multi.cores[row[c], col] == single.cores[0, col]
    if clock == "virtual":
        mine, theirs = _per_cpu(multi), {c: _per_cpu(s) for c, s in singles.items()}
        assert mine.keys() == theirs[0].keys()
        for key, rows in mine.items():
            for c in range(MODEL.cores):
                want = theirs[c][key][c] if c in singles else bytes(len(rows[c]))
                assert rows[c] == want, (key, c)


def test_segments_resume_across_calls_and_skip_other_events(obj):
    """run_events stops whenever its packet arena might be too small and is called again with the
    events done so far: resuming must find the right segment, event and core."""
    multi = Engine.from_object(obj, model=MODEL, cores=[1, 2], seed=3)
    ref = Engine.from_object(obj, model=MODEL, cores=[1, 2], seed=3)
    blob, lengths = _frames(40, seed=9)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    # Out of order and with holes: events 30.. on core 2 (row 1), then 0..9 on core 1, 20..24 on 2.
    seg = np.array([[1, 0, 1], [30, 0, 20], [40, 10, 25]], np.int64)
    order = np.r_[30:40, 0:10, 20:25]
    cols = [np.zeros(40, np.uint64), *(np.zeros(40, np.int64) for _ in range(4)), np.zeros(40, np.uint64)]
    meta = np.full((40, OM_COLS), -7, np.int64)
    multi._ensure_capacity(int(lengths.max()))
    logs: dict = {}
    done = calls = 0
    while done < len(order):
        # 100 bytes "used" of 1,100: the next event never fits, so each call runs exactly one.
        ran, _ = interp.run_events(*multi._call_args, blob, offsets[:-1], offsets[1:], *seg, done, 100, *cols, meta,
                                   np.zeros(1100, np.uint8), np.zeros((40, 0), np.uint8))
        multi._collect_logs(logs)
        assert ran == 1
        done, calls = done + ran, calls + 1
    assert calls == len(order)
    untouched = np.r_[10:20, 25:30]
    assert (meta[untouched] == -7).all() and not cols[1][untouched].any()
    res = ref.run_batch([blob[offsets[i]:offsets[i + 1]].tobytes() for i in order], cores=[2] * 10 + [1] * 10 + [2] * 5)
    for k, want in enumerate((res.r0, res.insns, res.cycles, res.status, res.pc, res.aux)):
        assert (cols[k][order] == want).all()
    assert {order.tolist().index(i): v for i, v in logs.items()} == res.logs and logs


def test_one_core_engine_defaults_and_bad_cores():
    eng = Engine(Program(assemble("call 8\nexit"), name="t"), MODEL, cores=[2, 1])
    assert eng.core_id == 2 and eng.run_batch([b""] * 3, cores=[1, 2, 1]).r0.tolist() == [1, 2, 1]
    assert eng.run_batch([b""]).r0.tolist() == [2]  # the first core by default
    with pytest.raises(ValueError, match="does not host"):
        eng.run_batch([b""], cores=[0])
    with pytest.raises(ValueError, match="distinct"):
        Engine(Program(assemble("exit"), name="t"), MODEL, cores=[1, 1])
    with pytest.raises(ValueError, match="core 4 does not exist"):
        Engine(Program(assemble("exit"), name="t"), MODEL, cores=[0, 4])
