"""Map storage and kernel semantics of user-space map operations.

Where bpf() is permitted, the same sequence of operations runs against a kernel map of the same
definition and every answer (value or errno) must agree.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bpfmc.worker import mapops as ops
from bpfmc.worker.maps import MapDef, MapError, MapStore, merge_values, natural_words


@pytest.fixture
def store():
    s = MapStore(ncpu=2)
    yield s
    s.close()


def u32(n: int) -> bytes:
    return n.to_bytes(4, "little")


def u64(n: int) -> bytes:
    return n.to_bytes(8, "little")


def test_hash_basic_semantics(store):
    m = store.create(MapDef("h", ops.BPF_MAP_TYPE_HASH, 4, 8, 3))
    for i in range(3):
        m.update(u32(i), u64(i * 10), ops.BPF_NOEXIST)
    with pytest.raises(MapError) as e:
        m.update(u32(7), u64(0))
    assert e.value.errno == 7  # E2BIG when full
    with pytest.raises(MapError) as e:
        m.update(u32(1), u64(0), ops.BPF_NOEXIST)
    assert e.value.errno == 17  # EEXIST
    with pytest.raises(MapError) as e:
        m.update(u32(9), u64(0), ops.BPF_EXIST)
    assert e.value.errno == 2  # ENOENT
    m.update(u32(1), u64(11), ops.BPF_EXIST)
    assert m.lookup(u32(1)) == u64(11)
    m.delete(u32(1))
    with pytest.raises(MapError) as e:
        m.delete(u32(1))
    assert e.value.errno == 2
    assert m.lookup(u32(1)) is None and len(m) == 2
    m.update(u32(5), u64(5))  # the freed element is reused
    assert sorted(m.keys()) == sorted([u32(0), u32(2), u32(5)])
    with pytest.raises(MapError) as e:
        m.update(u32(1), u64(0), 8)
    assert e.value.errno == 22  # unknown flags


def test_array_semantics(store):
    m = store.create(MapDef("a", ops.BPF_MAP_TYPE_ARRAY, 4, 6, 4))
    assert [m.lookup(i) for i in range(4)] == [bytes(6)] * 4  # zero-filled
    m.update(2, b"abcdef")
    assert m.lookup(2) == b"abcdef" and m.lookup(4) is None
    with pytest.raises(MapError) as e:
        m.update(4, bytes(6))
    assert e.value.errno == 7
    with pytest.raises(MapError) as e:
        m.update(1, bytes(6), ops.BPF_NOEXIST)
    assert e.value.errno == 17
    with pytest.raises(MapError) as e:
        m.delete(1)
    assert e.value.errno == 22  # arrays cannot delete
    assert list(m.keys()) == [u32(i) for i in range(4)]


def test_percpu_layout_and_merge(store):
    m = store.create(MapDef("p", ops.BPF_MAP_TYPE_PERCPU_HASH, 4, 12, 8))
    m.update(u32(1), u64(3) + u32(1) + bytes(4) + u64(4) + u32(2) + bytes(4))
    raw = m.lookup(u32(1))
    assert len(raw) == 2 * 16  # ncpu x round_up(12, 8), as the kernel returns
    rows = m.per_cpu(raw)
    assert rows == [u64(3) + u32(1), u64(4) + u32(2)]
    assert merge_values(rows) == u64(7) + u32(3)
    assert merge_values(rows, "max") == u64(4) + u32(2)
    assert merge_values(rows, "min", fields=[(0, 8, True), (8, 4, True)]) == u64(3) + u32(1)
    m.update(u32(2), u32(9) + bytes(8))  # one value: every CPU gets it
    assert m.per_cpu(m.lookup(u32(2))) == [u32(9) + bytes(8)] * 2


def test_natural_words():
    assert natural_words(4) == [(0, 4, False)]
    assert natural_words(16) == [(0, 8, False), (8, 8, False)]
    assert natural_words(12) == [(0, 8, False), (8, 4, False)]


def test_lru_evicts_instead_of_failing(store):
    m = store.create(MapDef("l", ops.BPF_MAP_TYPE_LRU_HASH, 4, 8, 64))
    for i in range(1000):
        m.update(u32(i), u64(i))
        assert m.lookup(u32(i)) == u64(i)  # the newest key is always present
    assert len(m) == 64 and len(list(m.keys())) == 64


def test_randomised_against_a_dict(store):
    m = store.create(MapDef("r", ops.BPF_MAP_TYPE_HASH, 3, 5, 50))
    ref: dict[bytes, bytes] = {}
    rng = random.Random(7)
    for _ in range(3000):
        k = bytes(rng.randrange(4) for _ in range(3))
        op = rng.random()
        if op < 0.5:
            v = bytes(rng.randrange(256) for _ in range(5))
            flag = rng.choice([ops.BPF_ANY, ops.BPF_NOEXIST, ops.BPF_EXIST])
            expect = None
            if flag == ops.BPF_NOEXIST and k in ref:
                expect = 17
            elif flag == ops.BPF_EXIST and k not in ref:
                expect = 2
            elif k not in ref and len(ref) == 50:
                expect = 7
            try:
                m.update(k, v, flag)
                assert expect is None
                ref[k] = v
            except MapError as e:
                assert e.errno == expect
        elif op < 0.8:
            try:
                m.delete(k)
                assert k in ref
                del ref[k]
            except MapError as e:
                assert e.errno == 2 and k not in ref
        assert m.lookup(k) == ref.get(k)
    assert dict(m.items()) == ref


def test_bad_definitions(store):
    for mdef, errno in [
        (MapDef("x", ops.BPF_MAP_TYPE_ARRAY, 8, 8, 4), 22),
        (MapDef("x", ops.BPF_MAP_TYPE_HASH, 4, 8, 0), 22),
        (MapDef("x", 999, 4, 8, 1), 22),
    ]:
        with pytest.raises(MapError) as e:
            store.create(mdef)
        assert e.value.errno == errno and "'x'" in str(e.value)
    m = store.create(MapDef("ok", ops.BPF_MAP_TYPE_HASH, 4, 8, 1))
    with pytest.raises(MapError, match="key must be 4 bytes"):
        m.lookup(b"abc")


def test_store_removes_its_files():
    s = MapStore()
    s.create(MapDef("h", ops.BPF_MAP_TYPE_HASH, 4, 8, 10))
    path = s.dir
    assert any(path.iterdir())
    s.close()
    assert not os.path.exists(path)


def test_memory_per_entry_of_a_full_hash():
    """HASH with 4-byte keys and 8-byte values: raw + 16 bytes per entry (issue target)."""
    s = MapStore()
    try:
        n = 100_000
        m = s.create(MapDef("big", ops.BPF_MAP_TYPE_HASH, 4, 8, n))
        per_entry = m.layout.size / n
        assert per_entry <= 12 + 16 + 0.5  # header page and alignment amortised
    finally:
        s.close()


@pytest.mark.kernel
@pytest.mark.parametrize("map_type", ["hash", "percpu_hash", "array", "percpu_array"])
def test_same_answers_as_the_kernel(map_type, kernel, store):
    from bpfmc.ebpf import kernel as k

    tid = {"hash": ops.BPF_MAP_TYPE_HASH, "percpu_hash": ops.BPF_MAP_TYPE_PERCPU_HASH,
           "array": ops.BPF_MAP_TYPE_ARRAY, "percpu_array": ops.BPF_MAP_TYPE_PERCPU_ARRAY}[map_type]
    ncpu = k.possible_cpus()
    ours_store = MapStore(ncpu=ncpu)
    try:
        ours = ours_store.create(MapDef("m", tid, 4, 12, 6))
        theirs = k.map_create(map_type, 4, 12, 6)
        rng = random.Random(3)
        per_cpu = "percpu" in map_type
        for _ in range(300):
            key = u32(rng.randrange(9))
            value = bytes(rng.randrange(256) for _ in range(16 * ncpu if per_cpu else 12))
            if per_cpu:  # padding bytes must be zero to compare lookups byte for byte
                value = b"".join(value[c * 16:c * 16 + 12] + bytes(4) for c in range(ncpu))
            flag = rng.choice([0, 1, 2])
            op = rng.choice(["update", "update", "delete", "lookup"])
            results = []
            for side in ("ours", "kernel"):
                try:
                    if op == "update":
                        (ours.update if side == "ours" else lambda a, b, c: k.map_update(theirs, a, b, c))(
                            key, value, flag)
                        results.append("ok")
                    elif op == "delete":
                        if side == "ours":
                            ours.delete(key)
                            results.append("ok")
                        else:
                            results.append("ok" if k.map_delete(theirs, key) else 2)
                    else:
                        results.append(ours.lookup(key) if side == "ours" else k.map_lookup(theirs, key))
                except OSError as e:
                    results.append(e.errno)
            assert results[0] == results[1], (op, key.hex(), flag, results)
        theirs.close()
    finally:
        ours_store.close()


def test_killed_owner_map_folder_is_swept_by_the_next_store():
    """An engine's own map folder outlives a `kill -9` of its process only until the next map
    store is made on the host; a live process's folder stays."""
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm on this host")
    code = ("import sys, time\n"
            "from bpfmc.ebpf import maps as mt\n"
            "from bpfmc.worker.maps import MapDef, MapStore\n"
            "s = MapStore(ncpu=1)\n"
            "s.create(MapDef('counts', mt.BPF_MAP_TYPE_HASH, 4, 8, 64, 0)).update(b'\\0' * 4, b'\\1' * 8)\n"
            "print(s.dir, flush=True)\n"
            "time.sleep(60)\n")
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        folder = Path(owner.stdout.readline().strip())
        assert folder.name.startswith(f"bpfmc-maps-{owner.pid}-") and any(folder.iterdir())
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    assert folder.exists()  # nobody closed it
    mine = MapStore(ncpu=1)
    try:
        assert not folder.exists()
        assert mine.dir.exists() and mine.dir.name.startswith(f"bpfmc-maps-{os.getpid()}-")
        other = MapStore(ncpu=1)  # a second store of a live owner leaves the first alone
        assert mine.dir.exists()
        other.close()
    finally:
        mine.close()
