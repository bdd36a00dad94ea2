"""The worker pool: emulated cores on host worker processes sharing map files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bpfmc.worker.model import HardwareModel
from bpfmc.worker.pool import Machine, PoolError, WorkerDied
from bpfmc.worker.steering import Steering

MODEL = HardwareModel.preset("generic").with_(cores=4)

# Keyed by the frame's last byte so the test controls which slot each event hits; the frame is
# an Ethernet header and a few bytes so RSS has something to hash (the tuple of non-IP frames
# hashes to one value, which is fine: the reference is computed from the same decisions).
PROG = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 8);
         __type(key, __u32); __type(value, __u64); } pcpu SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16);
         __type(key, __u32); __type(value, __u64); } shared SEC(".maps");

SEC("xdp")
int count(struct xdp_md *ctx) {
    unsigned char *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    if (data + 15 > end) return XDP_ABORTED;
    __u32 k = data[14] & 7;
    __u64 *v = bpf_map_lookup_elem(&pcpu, &k);
    if (v) *v += 1;  /* per-CPU row: only this core writes it, no atomic needed */
    __u64 *s = bpf_map_lookup_elem(&shared, &k);
    if (!s) {
        __u64 zero = 0;
        bpf_map_update_elem(&shared, &k, &zero, BPF_NOEXIST);
        s = bpf_map_lookup_elem(&shared, &k);
    }
    if (s) __sync_fetch_and_add(s, 1);
    return XDP_PASS + (k << 8);  /* r0 tells the test which event this was */
}
char LICENSE[] SEC("license") = "GPL";
"""


def frames(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n IPv4/UDP frames of varying flows; byte 14 carries the key. Returns blob, lengths, keys."""
    rng = np.random.default_rng(seed)
    out, keys = [], rng.integers(0, 8, n)
    for i in range(n):
        ip = bytes([0x45 | 0, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]) + bytes(rng.integers(0, 256, 8, dtype=np.uint8))
        udp = bytes(rng.integers(0, 256, 4, dtype=np.uint8)) + b"\x00\x08\x00\x00"
        frame = b"\x00" * 12 + b"\x08\x00" + ip + udp
        frame = frame[:14] + bytes([int(keys[i]) | 0x40]) + frame[15:]  # keep IHL=5: 0x40 | key
        out.append(frame + bytes(i % 5))
    lengths = np.array([len(f) for f in out], np.int64)
    return np.frombuffer(b"".join(out), np.uint8).copy(), lengths, keys


@pytest.fixture
def obj(bpf_cc) -> Path:
    return bpf_cc(PROG)


@pytest.fixture
def machine():
    with Machine(MODEL, workers=2) as m:
        yield m


def _shm() -> set[str]:
    """This process's pools' state folders (named after the pid that made them: pools of other
    processes, e.g. a second test run on the same machine, are not this test's business)."""
    mine = f"bpfmc-pool-{os.getpid()}-"
    return {e for e in os.listdir("/dev/shm") if e.startswith(mine)} if os.path.isdir("/dev/shm") else set()


def _u64(b: bytes) -> int:
    return int.from_bytes(b[:8], "little")


@pytest.mark.parametrize("mode", ["rr", "rss"])
def test_percpu_counter_matches_steering(machine, obj, mode):
    h = machine.load(obj)
    blob, lengths, keys = frames(400)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    expect_cores = Steering(4, mode).steer(blob, offsets)
    res = machine.run(h, (blob, lengths), steering=mode)
    assert (res.core == expect_cores).all()
    assert (res.status == 0).all()
    # Event order: r0 carries each event's own key.
    assert (res.r0 == 2 + (keys.astype(np.uint64) << 8)).all()
    ref = np.zeros((4, 8), np.int64)
    np.add.at(ref, (expect_cores, keys), 1)
    raw = machine.map_read(h, "pcpu", "raw")
    summed = machine.map_read(h, "pcpu", "sum")
    for k in range(8):
        key = k.to_bytes(4, "little")
        rows = [_u64(raw[key][c * 8:c * 8 + 8]) for c in range(4)]  # kernel layout: one 8-byte row per core
        assert rows == ref[:, k].tolist()
        assert _u64(summed[key]) == ref[:, k].sum()
    assert machine.map_read(h, "pcpu", "max")[(0).to_bytes(4, "little")] == int(ref[:, 0].max()).to_bytes(8, "little")
    st = machine.stats()["per_core"]
    assert [s["events"] for s in st] == np.bincount(expect_cores, minlength=4).tolist()
    assert sum(s["insns"] for s in st) == int(res.insns.sum()) > 0


def test_shared_hash_counter_is_exact_across_workers(machine, obj):
    h = machine.load(obj)
    blob, lengths, keys = frames(3000, seed=7)
    total = np.zeros(8, np.int64)
    for _ in range(3):  # several batches: every worker runs its two cores concurrently with the other
        res = machine.run(h, (blob, lengths), steering="rr")
        assert (res.status == 0).all()
        total += np.bincount(keys, minlength=8)
    shared = machine.map_read(h, "shared")
    assert {int.from_bytes(k, "little"): _u64(v) for k, v in shared.items()} == {
        k: int(total[k]) for k in range(8) if total[k]}
    # The pcpu counters agree with the shared ones when summed over cores.
    summed = machine.map_read(h, "pcpu", "sum")
    assert [_u64(summed[k.to_bytes(4, "little")]) for k in range(8)] == total.tolist()


def test_explicit_core_steering_and_order(machine, obj):
    h = machine.load(obj)
    blob, lengths, keys = frames(50, seed=3)
    cores = np.array([3, 0, 2, 1, 1] * 10)
    res = machine.run(h, (blob, lengths), steering=cores)
    assert (res.core == cores).all()
    assert (res.r0 == 2 + (keys.astype(np.uint64) << 8)).all()
    raw = machine.map_read(h, "pcpu")
    for k in range(8):
        rows = [_u64(raw[k.to_bytes(4, "little")][c * 8:c * 8 + 8]) for c in range(4)]
        assert rows == [int(((cores == c) & (keys == k)).sum()) for c in range(4)]


def test_close_leaves_nothing(obj):
    before = _shm()
    m = Machine(MODEL, workers=2)
    pids = m.worker_pids()
    h = m.load(obj)
    blob, lengths, _ = frames(20)
    m.run(h, (blob, lengths))
    state = m.state_dir
    assert state.is_dir() and any(state.rglob("map-*"))
    m.close()
    assert not state.exists()
    assert _shm() <= before
    for pid in pids:
        # Gone entirely: not running and reaped (a zombie would still have /proc/<pid>).
        assert not os.path.exists(f"/proc/{pid}")
    with pytest.raises(PoolError):
        m.run(h, (blob, lengths))


_CRASHING_OWNER = r"""
import os, signal, sys
import numpy as np
from bpfmc.worker.model import HardwareModel
from bpfmc.worker.pool import Machine
m = Machine(HardwareModel.preset("generic").with_(cores=4), workers=2)
h = m.load(sys.argv[1])
frame = bytes(14) + bytes([0x41]) + bytes(49)
m.run(h, (np.frombuffer(frame * 8, np.uint8), np.full(8, 64)))
print(m.state_dir, *m.worker_pids(), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no close, no atexit: as a crash would leave it
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # dead; its parent reaps it
    except FileNotFoundError:
        return True


def test_owner_killed_leaves_no_workers_and_no_state(obj, tmp_path):
    """kill -9 of the machine's process: its workers see the end of their pipes and exit, and
    the state folder (maps, slots) does not stay behind in /dev/shm."""
    script = tmp_path / "owner.py"
    script.write_text(_CRASHING_OWNER)
    out = subprocess.run([sys.executable, str(script), str(obj)], capture_output=True, text=True, timeout=300)
    assert out.returncode == -signal.SIGKILL, out.stderr
    state, *pids = out.stdout.split()
    deadline = time.monotonic() + 30
    while not (all(_gone(int(p)) for p in pids) and not Path(state).exists()):
        assert time.monotonic() < deadline, (f"after the owner's crash: workers alive "
                                             f"{[p for p in pids if not _gone(int(p))]}, state {Path(state).exists()}")
        time.sleep(0.05)


def test_orphaned_state_is_swept_by_the_next_machine(tmp_path):
    """A folder left by a process that died with its workers (both killed at once) goes when
    the next machine starts; folders of live processes stay."""
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm on this host")
    dead = _pid_that_exited()
    orphan = Path("/dev/shm") / f"bpfmc-pool-{dead}-test"
    orphan.mkdir()
    (orphan / "slot-0-1").write_bytes(b"x")
    alive = Path("/dev/shm") / f"bpfmc-pool-{os.getpid()}-sweeptest"
    alive.mkdir()
    try:
        with Machine(MODEL.with_(cores=1), workers=1):
            pass
        assert not orphan.exists()
        assert alive.exists()
    finally:
        for d in (orphan, alive):
            if d.exists():
                for f in d.iterdir():
                    f.unlink()
                d.rmdir()


def _pid_that_exited() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_more_cores_than_workers_and_one_core():
    with Machine(MODEL.with_(cores=5), workers=2) as m:
        assert [m.cores_of(w) for w in range(2)] == [[0, 2, 4], [1, 3]]
    with Machine(MODEL.with_(cores=1), workers=3) as m:
        assert m.nworkers == 1  # no idle workers: there is one core to host


def _wait_replaced(machine, count: int) -> None:
    deadline = time.monotonic() + 120
    while machine.stats()["replaced_workers"] < count:
        assert time.monotonic() < deadline, "the dead worker was not replaced"
        time.sleep(0.05)


def _pcpu_total(machine, h) -> int:
    return sum(_u64(v) for v in machine.map_read(h, "pcpu", "sum").values())


def test_idle_worker_killed_is_replaced_and_maps_stay(machine, obj):
    h = machine.load(obj)
    blob, lengths, keys = frames(40)
    machine.run(h, (blob, lengths))
    victim = machine.worker_pids()[1]
    os.kill(victim, signal.SIGKILL)
    _wait_replaced(machine, 1)
    assert victim not in machine.worker_pids()
    # The replacement attached to the same map files: the machine runs on all four cores again
    # and the counts keep accumulating from what the maps hold.
    assert _pcpu_total(machine, h) == 40
    res = machine.run(h, (blob, lengths), steering=np.arange(40) % 4)
    assert (res.status == 0).all()
    assert _pcpu_total(machine, h) == 80


SLOW_PROG = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 1);
         __type(key, __u32); __type(value, __u64); } pcpu SEC(".maps");
SEC("xdp")
int spin(struct xdp_md *ctx) {
    __u32 k = 0;
    __u64 acc = ctx->data_end;
    for (int i = 0; i < 20000; i++) acc = acc * 31 + i;   /* ~60k instructions per event */
    __u64 *v = bpf_map_lookup_elem(&pcpu, &k);
    if (v) *v += 1;
    return acc == 12345 ? XDP_DROP : XDP_PASS;  /* uses acc, so clang keeps the loop */
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_worker_killed_mid_batch_fails_that_batch_only(machine, bpf_cc):
    h = machine.load(bpf_cc(SLOW_PROG))
    blob, lengths, _ = frames(4000)
    fut = machine.submit(h, (blob, lengths), steering=np.arange(4000) % 4)
    # Wait until worker 1 is inside a batch of one of its cores (the per-core counters are odd
    # then), so the kill lands mid-batch by construction, not by timing.
    deadline = time.monotonic() + 60
    while not (int(machine._seq.words[1]) & 1 or int(machine._seq.words[3]) & 1):
        assert time.monotonic() < deadline
        time.sleep(0.001)
    victim = machine.worker_pids()[1]
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(WorkerDied, match=r"worker 1 .*cores \[1, 3\].*signal 9.*not retried"):
        fut.result()
    _wait_replaced(machine, 1)
    assert victim not in machine.worker_pids()
    # Worker 0's half ran in full; worker 1's half partly: the map holds between 2000 and 4000.
    done = _pcpu_total(machine, h)
    assert 2000 <= done < 4000
    res = machine.run(h, (blob[:lengths[:8].sum()], lengths[:8]), steering=np.arange(8) % 4)
    assert (res.status == 0).all() and _pcpu_total(machine, h) == done + 8
    assert (res.insns > 50_000).all()  # the loop is there: the batch above took long enough to interrupt
    # A read while batches run sees no core inside a batch (counters even afterwards).
    assert not (machine._seq.words & np.uint64(1)).any()


def test_locks_of_a_dead_worker_are_released(machine, obj):
    h = machine.load(obj)
    shared = machine.map(h, "shared")
    lay = shared.layout
    words = shared.buf[lay.locks:lay.locks + 4 * lay.nlocks].view(np.uint32)
    # As if worker 1 died inside an update on core 1 (lock owner id = core + 1) of every bucket.
    words[:] = 2
    victim = machine.worker_pids()[1]
    os.kill(victim, signal.SIGKILL)
    _wait_replaced(machine, 1)
    assert not words.any()
    blob, lengths, keys = frames(200, seed=5)
    res = machine.run(h, (blob, lengths))
    assert (res.status == 0).all()
    counts = {int.from_bytes(k, "little"): _u64(v) for k, v in machine.map_read(h, "shared").items()}
    assert counts == {k: int(c) for k, c in enumerate(np.bincount(keys, minlength=8)) if c}


DET_PROG = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
/* A per-CPU array, not a per-CPU hash: inserting a key into a per-CPU hash changes the shared
   key index, so two cores inserting the same key at once would race (as in the kernel). */
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 32);
         __type(key, __u32); __type(value, __u64); } seen SEC(".maps");
SEC("xdp")
int det(struct xdp_md *ctx) {
    unsigned char *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    if (data + 15 > end) return XDP_ABORTED;
    __u32 k = data[14] & 31;
    __u64 mix = bpf_get_prandom_u32() ^ (bpf_ktime_get_ns() << 20) ^ ((__u64)bpf_get_smp_processor_id() << 40);
    __u64 *v = bpf_map_lookup_elem(&seen, &k);
    if (v) *v = *v * 1000003 + mix;
    if (k == 3) bpf_printk("k3 %llu", mix & 0xffff);
    return (mix & 0xff) << 8 | XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
"""


def _det_run(obj, workers: int, batches, *, seed=11, recorder_path=None, replay=None, model=MODEL, steering="rss",
             stats=False):
    from bpfmc.worker.replay import Recorder, Recording

    with Machine(model, workers=workers, seed=seed, deterministic=True) as m:
        h = m.load(obj)
        outs = []
        if replay is not None:
            for blob, lengths, cores in Recording(replay).batches():
                outs.append(m.run(h, (blob, lengths), steering=cores))
        else:
            rec = Recorder(recorder_path, {"seed": seed}) if recorder_path else None
            for blob, lengths in batches:
                how = steering(len(lengths)) if callable(steering) else steering
                outs.append(m.run(h, (blob, lengths), steering=how, recorder=rec))
            if rec:
                rec.close()
        runs = [r.runs() for r in outs]
        if stats:
            st = m.stats()
            per_core = [{k: c[k] for k in ("core", "events", "insns", "cycles")} for c in st["per_core"]]
            prog = {k: v for k, v in st["programs"][h].items() if k not in ("host_events_per_s",)}
            return runs, m.map_read(h, "seen", "raw"), per_core, prog
        return runs, m.map_read(h, "seen", "raw")


def test_deterministic_runs_are_identical_across_worker_counts_and_replay(bpf_cc, tmp_path):
    obj = bpf_cc(DET_PROG)
    batches = [frames(300, seed=s)[:2] for s in (1, 2, 3)]
    one, map1 = _det_run(obj, 1, batches)
    two, map2 = _det_run(obj, 2, batches, recorder_path=tmp_path / "run.rec")
    assert one == two and map1 == map2
    assert any("trace" in r for b in one for r in b) and len({r["core"] for b in one for r in b}) > 1
    replayed, map3 = _det_run(obj, 1, None, replay=tmp_path / "run.rec")
    for b, (x, y) in enumerate(zip(replayed, one, strict=True)):
        bad = [(i, p, q) for i, (p, q) in enumerate(zip(x, y, strict=True)) if p != q]
        assert not bad, (b, bad[:3])
    assert map3 == map1
    # Another seed changes what the program saw: the comparison above is not vacuous.
    other, map4 = _det_run(obj, 2, batches, seed=12)
    assert map4 != map1


@pytest.mark.parametrize("steering", ["rr", "rss", "sorted"])
def test_sixty_four_cores_give_the_same_on_one_and_two_workers(bpf_cc, steering):
    """One engine call per worker runs all its cores: per-event results, per-CPU rows and the
    per-core and program figures do not depend on how the cores are spread over workers (nor on
    whether a worker runs them in the batch's order, grouped, or in place)."""
    obj = bpf_cc(DET_PROG)
    batches = [frames(700, seed=s)[:2] for s in (1, 2)]
    how = (lambda n: np.sort(np.arange(n) % 64)) if steering == "sorted" else steering
    one = _det_run(obj, 1, batches, model=MODEL.with_(cores=64), steering=how, stats=True)
    two = _det_run(obj, 2, batches, model=MODEL.with_(cores=64), steering=how, stats=True)
    assert one == two
    runs, _, per_core, prog = one
    assert len({r["core"] for b in runs for r in b}) == 64 if steering != "rss" else len(per_core) == 64
    assert sum(c["events"] for c in per_core) == prog["events"] == 1400
    assert sum(c["insns"] for c in per_core) == sum(r["insns"] for b in runs for r in b) == prog["insns"]["total"]
    for what in ("events", "insns", "cycles"):  # each core's own, from its counters
        want = np.zeros(64, np.int64)
        for b in runs:
            np.add.at(want, [r["core"] for r in b], [1 if what == "events" else r[what] for r in b])
        assert [c[what] for c in per_core] == want.tolist()


def test_per_event_outputs_and_stats(machine, bpf_cc):
    h = machine.load(bpf_cc(DET_PROG))
    blob, lengths, keys = frames(100, seed=4)
    res = machine.run(h, (blob, lengths), steering=np.arange(100) % 4)
    runs = res.runs()
    assert [r["core"] for r in runs] == (np.arange(100) % 4).tolist()
    assert [r["r0"] & 0xFF for r in runs] == [2] * 100
    traced = [i for i, r in enumerate(runs) if "trace" in r]
    assert traced == [i for i in range(100) if keys[i] == 3]
    assert all(runs[i]["trace"][0].startswith("k3 ") for i in traced)
    st = machine.stats()
    prog = st["programs"][h]
    assert prog["events"] == 100 and prog["faults"] == 0
    cyc = prog["cycles"]
    assert cyc["total"] == int(res.cycles.sum()) and cyc["p50"] <= cyc["p99"] <= int(res.cycles.max())
    assert prog["model_events_per_s"] == pytest.approx(MODEL.clock_hz * 4 / cyc["mean"])
    assert prog["host_events_per_s"] > 0
    assert sum(c["busy_ms"] for c in st["per_core"]) > 0


def test_frames_too_short_are_refused_before_any_worker_runs(machine, obj):
    from bpfmc.worker.engine import EventError

    h = machine.load(obj)
    with pytest.raises(EventError, match="event 1: .*at least 14 bytes, got 3"):
        machine.run(h, (b"\x00" * 17, [14, 3]))
    assert machine.stats()["per_core"][0]["events"] == 0


def test_backpressure_keeps_every_batch(machine, obj):
    h = machine.load(obj)
    blob, lengths, keys = frames(64, seed=9)
    futs = [machine.submit(h, (blob, lengths)) for _ in range(20)]  # far more than the queues hold
    for f in futs:
        assert (f.result().status == 0).all()
    assert _pcpu_total(machine, h) == 20 * 64


def test_sixty_four_cores_on_two_workers(obj):
    with Machine(MODEL.with_(cores=64), workers=2, deterministic=True) as m:
        h = m.load(obj)
        blob, lengths, keys = frames(640, seed=8)
        res = m.run(h, (blob, lengths))  # round-robin: every core gets 10 events
        assert (res.status == 0).all() and np.bincount(res.core, minlength=64).tolist() == [10] * 64
        raw = m.map_read(h, "pcpu")
        per_core = np.zeros(64, np.int64)
        for v in raw.values():
            assert len(v) == 64 * 8  # the kernel layout: one 8-byte row per emulated core
            per_core += [_u64(v[c * 8:c * 8 + 8]) for c in range(64)]
        assert per_core.tolist() == [10] * 64
        assert [c["events"] for c in m.stats()["per_core"]] == [10] * 64


def test_faults_and_bad_requests_leave_the_pool_serving(machine, obj, tmp_path):
    from bpfmc.ebpf.asm import assemble
    from bpfmc.ebpf.program import Program
    from bpfmc.worker.engine import MAX_INPUT_BYTES

    # A program that reads past its input faults per event, with the engine's message, on
    # whichever core ran it; the others' results are unaffected.
    h_raw = machine.load(Program(assemble("ldxb %r0, [%r1+3]\nexit"), name="peek"))
    res = machine.run(h_raw, (b"abcdefgh" + b"xy", [8, 2]), steering=[1, 2])
    assert res.runs()[0] == {"r0": ord("d"), "insns": 2, "cycles": 2, "core": 1}
    err = res.runs()[1]["error"]
    assert err["kind"] == "out_of_bounds_load" and "input" in err["message"] and res.runs()[1]["core"] == 2
    # An event over the engine's limit is refused by the worker; the batch fails, nothing dies.
    pids = machine.worker_pids()
    with pytest.raises(PoolError, match="exceeds"):
        machine.run(h_raw, (bytes(MAX_INPUT_BYTES + 1), [MAX_INPUT_BYTES + 1]), steering=[0])
    assert machine.worker_pids() == pids
    # Unknown handles and maps are clear errors; the maps of the other program are intact.
    h = machine.load(obj)
    blob, lengths, keys = frames(40)
    machine.run(h, (blob, lengths))
    with pytest.raises(KeyError, match="no program loaded as handle 99"):
        machine.run(99, (blob, lengths))
    from bpfmc.worker.image import LinkError

    with pytest.raises(LinkError, match="no map 'nope' \\(maps: pcpu, shared\\)"):
        machine.map_read(h, "nope")
    with pytest.raises(ValueError, match="unknown map view"):
        machine.map_read(h, "pcpu", "avg")
    assert _pcpu_total(machine, h) == 40
    assert (machine.run(h_raw, (b"0123", [4])).r0 == [ord("3")]).all()


def test_per_cpu_reads_during_batches_see_rows_between_batches(machine, obj):
    import threading

    h = machine.load(obj)
    per_core = 3000
    blob, lengths, _ = frames(1, seed=11)
    # Each core gets `per_core` events per batch, all with key 0, so between two of its batches
    # a core's row holds a multiple of `per_core`; inside one it does not.
    frame = bytes(blob[:int(lengths[0])])
    frame = frame[:14] + bytes([0x40]) + frame[15:]  # key 0
    stream = (frame * (4 * per_core), [len(frame)] * (4 * per_core))
    cores = np.repeat(np.arange(4), per_core)
    stop, seen, bad = threading.Event(), [], []

    def reader():
        while not stop.is_set():
            raw = machine.map_read(h, "pcpu", "raw").get((0).to_bytes(4, "little"))
            if raw is not None:
                rows = [_u64(raw[c * 8:c * 8 + 8]) for c in range(4)]
                seen.append(rows)
                bad.extend(r for r in rows if r % per_core)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for _ in range(6):
            assert (machine.run(h, stream, steering=cores).status == 0).all()
    finally:
        stop.set()
        t.join()
    assert not bad, f"a read saw a core's row inside a batch: {bad[:5]}"
    assert len(seen) > 3
    final = machine.map_read(h, "pcpu", "raw")[(0).to_bytes(4, "little")]
    assert [_u64(final[c * 8:c * 8 + 8]) for c in range(4)] == [6 * per_core] * 4


def test_changed_packets_come_back_from_every_worker(machine):
    from bpfmc.ebpf.asm import assemble
    from bpfmc.ebpf.program import Program

    # Each event's first byte is replaced by the core that ran it: data_out shows both workers'
    # changed packets, each in its own event's place.
    h = machine.load(Program(assemble("mov %r6, %r1\ncall 8\nstxb [%r6+0], %r0\nmov %r0, 0\nexit"), name="stamp"))
    res = machine.run(h, (b"aaaabbbbccccdddd", [4, 4, 4, 4]), steering=[3, 2, 1, 0])
    assert [r["data_out"] for r in res.runs()] == ["03616161", "02626262", "01636363", "00646464"]


def test_changed_packets_of_interleaved_cores_come_back_in_event_order(machine):
    from bpfmc.ebpf.asm import assemble
    from bpfmc.ebpf.program import Program

    # Round-robin interleaves the cores, so each worker runs its events from its own grouped
    # copy and changed packets come from two arenas per worker: each must land on its event.
    h = machine.load(Program(assemble("mov %r6, %r1\ncall 8\nstxb [%r6+0], %r0\nmov %r0, 0\nexit"), name="stamp"))
    events = [bytes([0xAA, i, i, i + 1]) for i in range(40)]
    res = machine.run(h, (b"".join(events), [4] * 40), steering="rr")
    assert [r["data_out"] for r in res.runs()] == [(bytes([i % 4]) + e[1:]).hex() for i, e in enumerate(events)]
    assert res.core.tolist() == [i % 4 for i in range(40)]


def test_held_results_keep_their_rows_while_the_pool_goes_on(machine, obj):
    from bpfmc.worker.pool import LENT_SLOTS, SLOTS

    h = machine.load(obj)
    batches = [frames(50 + s, seed=s) for s in range(3 * (SLOTS + LENT_SLOTS))]
    # Held results: the first keep their slots' memory, the later ones are copies; none is
    # overwritten by the batches after it, and the pool maps no more slots than it promises.
    futs = [machine.submit(h, b[:2]) for b in batches]
    held = [f.result() for f in futs]
    for res, (_, _, keys) in zip(held, batches, strict=True):
        assert (res.r0 == 2 + (keys.astype(np.uint64) << 8)).all() and (res.status == 0).all()
    assert len(machine._slots._maps) <= SLOTS + LENT_SLOTS
    del futs, held, res
    # Dropped results give their slots back: a long stream reuses them.
    for b in batches:
        r = machine.run(h, b[:2])
        assert (r.r0 == 2 + (b[2].astype(np.uint64) << 8)).all()
    assert len(machine._slots._maps) <= SLOTS + LENT_SLOTS


def test_empty_batch(machine, obj):
    h = machine.load(obj)
    res = machine.run(h, (b"", []))
    assert len(res) == 0 and res.runs() == []
