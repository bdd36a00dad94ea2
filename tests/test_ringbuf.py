"""Ring buffers: records are consumed after every run, so what a run sees of the ring is its
own output, whether runs come in one batch, in separate calls or on a pool's cores."""

from __future__ import annotations

import numpy as np
import pytest

from bpfmc.worker.engine import Engine
from bpfmc.worker.model import HardwareModel
from bpfmc.worker.pool import Machine

PROG = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } rb SEC(".maps");

SEC("xdp")
int emit(struct xdp_md *ctx) {
    __u64 rec[2] = {1, 2};
    bpf_ringbuf_output(&rb, rec, sizeof(rec), 0);
    return bpf_ringbuf_query(&rb, BPF_RB_AVAIL_DATA);  /* this run's record: 8 + 16 bytes */
}
char LICENSE[] SEC("license") = "GPL";
"""
FRAME = bytes(64)


@pytest.fixture
def obj(bpf_cc):
    return bpf_cc(PROG).read_bytes()


def test_each_call_sees_only_its_own_record(obj):
    with Engine.from_object(obj, None, HardwareModel.preset("generic")) as e:
        assert [e.run(FRAME)["r0"] for _ in range(3)] == [24, 24, 24]  # separate calls: each event 0
        res = e.run_batch([FRAME] * 3)
        assert res.r0.tolist() == [24, 24, 24]
        assert sum(len(res.logs.get(i, [])) for i in range(3)) == 3


def test_pool_cores_see_only_their_own_record(obj):
    with Machine(HardwareModel.preset("generic").with_(cores=3), workers=1) as m:
        h = m.load(obj)
        blob = np.frombuffer(FRAME * 6, np.uint8)
        for _ in range(2):
            assert m.run(h, (blob, np.full(6, len(FRAME)))).r0.tolist() == [24] * 6
