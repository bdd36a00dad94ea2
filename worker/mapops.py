"""Map operations, compiled: the one implementation used by helpers inside the engine and by
user-space reads and writes from Python.

A map lives in one memory-mapped file (``worker/maps.py`` creates it); these functions see it
through a *descriptor* -- an ``int64`` row of sizes and host addresses (``D_*``) -- and touch it
only with the raw-memory intrinsics, so the same code works on a file that several worker
processes map at once.

Concurrency (DESIGN "Concurrency is real"):
- a hash element is written completely (key, hash, value) before it is linked into its bucket;
  readers walk chains without locks;
- writers of one bucket serialise on a lock word taken by compare-and-swap and stamped with the
  owner's id, so a supervisor can release the locks of a process that died holding them;
- free elements form a lock-free stack (Treiber) whose head carries a counter against ABA;
- element counts, LRU reference bits and the clock hand are updated atomically.
A deleted element may be reused at once, so a lookup racing with a delete can read the new
occupant's value -- as with the kernel's preallocated hash maps.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Map types, by the kernel's numbering (defined once, with the language).
from bpfmc.ebpf.maps import (  # noqa: E402
    BPF_MAP_TYPE_ARRAY,
    BPF_MAP_TYPE_CPUMAP,
    BPF_MAP_TYPE_DEVMAP,
    BPF_MAP_TYPE_HASH,
    BPF_MAP_TYPE_LPM_TRIE,
    BPF_MAP_TYPE_LRU_HASH,
    BPF_MAP_TYPE_LRU_PERCPU_HASH,
    BPF_MAP_TYPE_PERCPU_ARRAY,
    BPF_MAP_TYPE_PERCPU_HASH,
    BPF_MAP_TYPE_PERF_EVENT_ARRAY,
    BPF_MAP_TYPE_PROG_ARRAY,
    BPF_MAP_TYPE_QUEUE,
    BPF_MAP_TYPE_STACK,
    BPF_MAP_TYPE_XSKMAP,
)

from . import jitcache  # noqa: F401  (sets the cache folder before anything is compiled)
from .intrinsics import (
    atomic_add_u32,
    atomic_add_u64,
    cmpxchg_u32,
    cmpxchg_u64,
    load_u8,
    load_u32,
    load_u64,
    store_u8,
    store_u32,
    store_u64,
)

# Update flags.
BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2
BPF_F_LOCK = 4

# errno values, returned negated as the kernel's helpers do.
EPERM = 1
ENOENT = 2
E2BIG = 7
ENOMEM = 12
EBUSY = 16
EEXIST = 17
EINVAL = 22
ENOSPC = 28
EOPNOTSUPP = 95

# Descriptor fields (int64 row).
D_TYPE = 0
D_KEY_SIZE = 1
D_VALUE_SIZE = 2
D_MAX_ENTRIES = 3
D_FLAGS = 4
D_NCPU = 5
D_STRIDE = 6  # bytes per value slot: round_up(value_size, 8)
D_NBUCKETS = 7
D_ELEM_SIZE = 8  # bytes per element header + key
D_HEADER = 9  # host address of the file's header
D_BUCKETS = 10  # host address of the bucket heads (u32 each)
D_ELEMS = 11  # host address of the element array
D_VALUES = 12  # host address of the value area
D_LOCKS = 13  # host address of the lock words (u32 each)
D_NLOCKS = 14
D_ROW = 15  # bytes per CPU row of a per-CPU value area
D_VALUE_REGION = 16  # region id under which programs see the value area
D_REFBITS = 17  # host address of the LRU reference bytes
D_ID = 18
D_PLENS = 19  # LPM tries: host address of a u32 count of entries per prefix length
DESC_SIZE = 24

# Header words (u64 at these byte offsets from D_HEADER).
H_MAGIC = 0
H_COUNT = 8  # live elements
H_FREE = 16  # free-stack head: (aba counter << 32) | (element index + 1), 0 = empty
H_BUMP = 24  # elements never used yet start here
H_HAND = 32  # LRU clock hand
H_HEAD = 40  # queue/stack head (next pop)
H_TAIL = 48  # queue/stack tail (next push)
HEADER_SIZE = 4096  # the static description follows the hot words (see maps.py)

# Element layout in hash maps: u32 next (index + 1, 0 ends the chain), u32 hash, then the key.
E_NEXT = 0
E_HASH = 4
E_KEY = 8

NO_ELEM = np.int64(-1)
LOCK_SPIN_LIMIT = 1 << 22
M32 = np.uint64(0xFFFFFFFF)
U0 = np.uint64(0)
U1 = np.uint64(1)


# -- memory helpers ----------------------------------------------------------------------------

@njit(cache=True)
def mem_copy(dst, src, n):
    i = np.int64(0)
    while i + 8 <= n:
        store_u64(dst + np.uint64(i), load_u64(src + np.uint64(i)))
        i += 8
    while i < n:
        store_u8(dst + np.uint64(i), load_u8(src + np.uint64(i)))
        i += 1


@njit(cache=True)
def mem_zero(dst, n):
    i = np.int64(0)
    while i + 8 <= n:
        store_u64(dst + np.uint64(i), U0)
        i += 8
    while i < n:
        store_u8(dst + np.uint64(i), U0)
        i += 1


@njit(cache=True)
def mem_equal(a, b, n):
    i = np.int64(0)
    while i + 8 <= n:
        if load_u64(a + np.uint64(i)) != load_u64(b + np.uint64(i)):
            return False
        i += 8
    while i < n:
        if load_u8(a + np.uint64(i)) != load_u8(b + np.uint64(i)):
            return False
        i += 1
    return True


@njit(cache=True)
def key_hash(ptr, n):
    """FNV-1a over the key bytes, finished with a multiply-xorshift; 32 bits."""
    h = np.uint64(0xCBF29CE484222325)
    for i in range(n):
        h = (h ^ load_u8(ptr + np.uint64(i))) * np.uint64(0x100000001B3)
    h ^= h >> np.uint64(29)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(32)
    return h & M32


# -- locks -------------------------------------------------------------------------------------

@njit(cache=True)
def lock_acquire(desc, stripe, owner):
    """Take lock word ``stripe`` for ``owner`` (a non-zero id). False if it stayed busy."""
    addr = np.uint64(desc[D_LOCKS] + 4 * stripe)
    for _ in range(LOCK_SPIN_LIMIT):
        if cmpxchg_u32(addr, U0, np.uint64(owner)) == U0:
            return True
    return False


@njit(cache=True)
def lock_release(desc, stripe):
    store_u32(np.uint64(desc[D_LOCKS] + 4 * stripe), U0)


@njit(cache=True)
def _stripe(desc, bucket):
    return bucket % desc[D_NLOCKS]


# -- element allocation (hash maps) ------------------------------------------------------------

@njit(cache=True)
def _elem_addr(desc, e):
    return np.uint64(desc[D_ELEMS] + e * desc[D_ELEM_SIZE])


@njit(cache=True)
def _free_push(desc, e):
    head_addr = np.uint64(desc[D_HEADER] + H_FREE)
    while True:
        old = load_u64(head_addr)
        store_u32(_elem_addr(desc, e) + np.uint64(E_NEXT), old & M32)
        new = (((old >> np.uint64(32)) + U1) << np.uint64(32)) | np.uint64(e + 1)
        if cmpxchg_u64(head_addr, old, new) == old:
            return


@njit(cache=True)
def _alloc(desc):
    """An unused element index, or -1 when the map is full."""
    head_addr = np.uint64(desc[D_HEADER] + H_FREE)
    while True:
        old = load_u64(head_addr)
        top = np.int64(old & M32)
        if top == 0:
            break
        e = top - 1
        nxt = load_u32(_elem_addr(desc, e) + np.uint64(E_NEXT))
        new = (((old >> np.uint64(32)) + U1) << np.uint64(32)) | nxt
        if cmpxchg_u64(head_addr, old, new) == old:
            return e
    e = np.int64(atomic_add_u64(np.uint64(desc[D_HEADER] + H_BUMP), U1))
    if e < desc[D_MAX_ENTRIES]:
        return e
    return NO_ELEM


# -- hash maps ---------------------------------------------------------------------------------

@njit(cache=True)
def _bucket_of(desc, h):
    # Lemire's multiply-shift maps a 32-bit hash onto [0, nbuckets) without a division.
    return np.int64((h * np.uint64(desc[D_NBUCKETS])) >> np.uint64(32))


@njit(cache=True)
def hash_find(desc, key, h):
    """Element index holding ``key`` (host address), or -1. Lock-free; a walk is bounded so a
    chain corrupted by a crash cannot hang the caller."""
    b = _bucket_of(desc, h)
    i = np.int64(load_u32(np.uint64(desc[D_BUCKETS] + 4 * b)))
    ks = desc[D_KEY_SIZE]
    steps = desc[D_MAX_ENTRIES] + 1
    while i != 0 and steps > 0:
        e = i - 1
        if e >= desc[D_MAX_ENTRIES]:
            return NO_ELEM
        ea = _elem_addr(desc, e)
        if load_u32(ea + np.uint64(E_HASH)) == h and mem_equal(ea + np.uint64(E_KEY), key, ks):
            return e
        i = np.int64(load_u32(ea + np.uint64(E_NEXT)))
        steps -= 1
    return NO_ELEM


@njit(cache=True)
def value_addr(desc, slot, cpu):
    """Host address of the value of element/index ``slot`` as seen by ``cpu``."""
    t = desc[D_TYPE]
    base = desc[D_VALUES] + slot * desc[D_STRIDE]
    if t == BPF_MAP_TYPE_PERCPU_HASH or t == BPF_MAP_TYPE_PERCPU_ARRAY or t == BPF_MAP_TYPE_LRU_PERCPU_HASH:
        base += cpu * desc[D_ROW]
    return np.uint64(base)


@njit(cache=True)
def is_percpu(desc):
    t = desc[D_TYPE]
    return t == BPF_MAP_TYPE_PERCPU_HASH or t == BPF_MAP_TYPE_PERCPU_ARRAY or t == BPF_MAP_TYPE_LRU_PERCPU_HASH


@njit(cache=True)
def is_hash(desc):
    t = desc[D_TYPE]
    return (t == BPF_MAP_TYPE_HASH or t == BPF_MAP_TYPE_PERCPU_HASH or t == BPF_MAP_TYPE_LRU_HASH
            or t == BPF_MAP_TYPE_LRU_PERCPU_HASH)


@njit(cache=True)
def is_lru(desc):
    t = desc[D_TYPE]
    return t == BPF_MAP_TYPE_LRU_HASH or t == BPF_MAP_TYPE_LRU_PERCPU_HASH


@njit(cache=True)
def is_arraylike(desc):
    t = desc[D_TYPE]
    return (t == BPF_MAP_TYPE_ARRAY or t == BPF_MAP_TYPE_PERCPU_ARRAY or t == BPF_MAP_TYPE_PROG_ARRAY
            or t == BPF_MAP_TYPE_DEVMAP or t == BPF_MAP_TYPE_CPUMAP or t == BPF_MAP_TYPE_XSKMAP
            or t == BPF_MAP_TYPE_PERF_EVENT_ARRAY)


@njit(cache=True)
def _write_value(desc, slot, value, cpu, all_cpus, fresh):
    """Store a value. ``all_cpus``: ``value`` holds one stride-sized value per CPU (user space);
    otherwise it is one value for ``cpu``, and a fresh per-CPU element gets zeros elsewhere."""
    vs = desc[D_VALUE_SIZE]
    if not is_percpu(desc):
        mem_copy(value_addr(desc, slot, 0), value, vs)
        return
    for c in range(desc[D_NCPU]):
        dst = value_addr(desc, slot, c)
        if all_cpus:
            mem_copy(dst, value + np.uint64(c * desc[D_STRIDE]), vs)
        elif c == cpu:
            mem_copy(dst, value, vs)
        elif fresh:
            mem_zero(dst, vs)


@njit(cache=True)
def _lru_evict(desc, owner):
    """Free one element chosen by the CLOCK policy (second chance on the reference bit), the
    approximation of LRU that the kernel's own LRU lists also make. Returns its index or -1."""
    n = desc[D_MAX_ENTRIES]
    hand_addr = np.uint64(desc[D_HEADER] + H_HAND)
    for _ in range(3 * n):
        e = np.int64(atomic_add_u64(hand_addr, U1) % np.uint64(n))
        ref = np.uint64(desc[D_REFBITS] + e)
        if load_u8(ref) != U0:
            store_u8(ref, U0)
            continue
        ea = _elem_addr(desc, e)
        h = load_u32(ea + np.uint64(E_HASH))
        b = _bucket_of(desc, h)
        stripe = _stripe(desc, b)
        if not lock_acquire(desc, stripe, owner):
            continue
        if _unlink(desc, b, e):
            lock_release(desc, stripe)
            atomic_add_u64(np.uint64(desc[D_HEADER] + H_COUNT), np.uint64(0xFFFFFFFFFFFFFFFF))
            return e
        lock_release(desc, stripe)
    return NO_ELEM


@njit(cache=True)
def _unlink(desc, b, e):
    """Remove element e from bucket b's chain (bucket lock held). False if it is not there."""
    link = np.uint64(desc[D_BUCKETS] + 4 * b)
    i = np.int64(load_u32(link))
    steps = desc[D_MAX_ENTRIES] + 1
    while i != 0 and steps > 0:
        if i - 1 == e:
            store_u32(link, load_u32(_elem_addr(desc, e) + np.uint64(E_NEXT)))
            return True
        link = _elem_addr(desc, i - 1) + np.uint64(E_NEXT)
        i = np.int64(load_u32(link))
        steps -= 1
    return False


@njit(cache=True)
def _lock_bucket_of(desc, key, owner):
    """Hash ``key``, find its bucket and take the bucket's lock: (hash, bucket, lock stripe,
    whether the lock was taken). Every writer of a hash map starts here."""
    h = key_hash(key, desc[D_KEY_SIZE])
    b = _bucket_of(desc, h)
    stripe = _stripe(desc, b)
    return h, b, stripe, lock_acquire(desc, stripe, owner)


@njit(cache=True)
def _update_found(desc, e, stripe, flags, value, cpu, all_cpus):
    if flags == BPF_NOEXIST:
        lock_release(desc, stripe)
        return -EEXIST
    _write_value(desc, e, value, cpu, all_cpus, False)
    if is_lru(desc):
        store_u8(np.uint64(desc[D_REFBITS] + e), U1)
    lock_release(desc, stripe)
    return 0


@njit(cache=True)
def hash_update(desc, key, value, flags, cpu, all_cpus, owner):
    ks = desc[D_KEY_SIZE]
    h, b, stripe, locked = _lock_bucket_of(desc, key, owner)
    if not locked:
        return -EBUSY
    e = hash_find(desc, key, h)
    if e >= 0:
        return _update_found(desc, e, stripe, flags, value, cpu, all_cpus)
    if flags == BPF_EXIST:
        lock_release(desc, stripe)
        return -ENOENT
    e = _alloc(desc)
    if e < 0 and is_lru(desc):
        # Evicting takes another bucket's lock; drop ours first so two evictors cannot deadlock.
        lock_release(desc, stripe)
        e = _lru_evict(desc, owner)
        if e < 0:
            return -ENOMEM
        if not lock_acquire(desc, stripe, owner):
            _free_push(desc, e)
            return -EBUSY
        found = hash_find(desc, key, h)
        if found >= 0:  # another core inserted the key while we were evicting
            _free_push(desc, e)
            return _update_found(desc, found, stripe, flags, value, cpu, all_cpus)
    if e < 0:
        lock_release(desc, stripe)
        return -E2BIG
    ea = _elem_addr(desc, e)
    mem_copy(ea + np.uint64(E_KEY), key, ks)
    store_u32(ea + np.uint64(E_HASH), h)
    _write_value(desc, e, value, cpu, all_cpus, True)
    if is_lru(desc):
        store_u8(np.uint64(desc[D_REFBITS] + e), U1)
    head = np.uint64(desc[D_BUCKETS] + 4 * b)
    store_u32(ea + np.uint64(E_NEXT), load_u32(head))
    # The element is complete; one store publishes it to lock-free readers.
    store_u32(head, np.uint64(e + 1))
    atomic_add_u64(np.uint64(desc[D_HEADER] + H_COUNT), U1)
    lock_release(desc, stripe)
    return 0


@njit(cache=True)
def hash_delete(desc, key, owner):
    h, b, stripe, locked = _lock_bucket_of(desc, key, owner)
    if not locked:
        return -EBUSY
    e = hash_find(desc, key, h)
    if e < 0:
        lock_release(desc, stripe)
        return -ENOENT
    _unlink(desc, b, e)
    lock_release(desc, stripe)
    atomic_add_u64(np.uint64(desc[D_HEADER] + H_COUNT), np.uint64(0xFFFFFFFFFFFFFFFF))
    _free_push(desc, e)
    return 0


# -- the entry points: lookup, update, delete, next key ----------------------------------------

@njit(cache=True)
def map_lookup(desc, key, cpu, tmp):
    """Slot (element or array index) for ``key``, or -1. Marks LRU elements as used. ``tmp`` is
    scratch memory of at least key_size bytes (LPM tries build masked keys there)."""
    if desc[D_TYPE] == BPF_MAP_TYPE_LPM_TRIE:
        return lpm_lookup(desc, key, tmp)
    if is_arraylike(desc):
        idx = np.int64(load_u32(key))
        return idx if idx < desc[D_MAX_ENTRIES] else NO_ELEM
    if is_hash(desc):
        e = hash_find(desc, key, key_hash(key, desc[D_KEY_SIZE]))
        if e >= 0 and is_lru(desc):
            ref = np.uint64(desc[D_REFBITS] + e)
            if load_u8(ref) == U0:  # avoid dirtying the cache line when already set
                store_u8(ref, U1)
        return e
    return NO_ELEM


@njit(cache=True)
def map_update(desc, key, value, flags, cpu, all_cpus, owner, tmp):
    """Kernel semantics of bpf_map_update_elem; returns 0 or -errno."""
    if flags & ~np.int64(BPF_F_LOCK) > BPF_EXIST:
        return -EINVAL
    flags = flags & ~np.int64(BPF_F_LOCK)
    if desc[D_TYPE] == BPF_MAP_TYPE_LPM_TRIE:
        return lpm_update(desc, key, value, flags, owner, tmp)
    if is_arraylike(desc):
        idx = np.int64(load_u32(key))
        if idx >= desc[D_MAX_ENTRIES]:
            return -E2BIG
        if flags == BPF_NOEXIST:
            return -EEXIST  # every index of an array exists
        _write_value(desc, idx, value, cpu, all_cpus, False)
        return 0
    if is_hash(desc):
        return hash_update(desc, key, value, flags, cpu, all_cpus, owner)
    return -EINVAL


@njit(cache=True)
def map_delete(desc, key, owner, tmp):
    if desc[D_TYPE] == BPF_MAP_TYPE_LPM_TRIE:
        return lpm_delete(desc, key, owner, tmp)
    if is_arraylike(desc):
        return -EINVAL  # array elements cannot be deleted
    if is_hash(desc):
        return hash_delete(desc, key, owner)
    return -EINVAL


@njit(cache=True)
def map_next_key(desc, key, next_key):
    """Write the key after ``key`` (0: the first key) to ``next_key``; 0 or -ENOENT at the end.
    A key that is not in the map restarts from the first, as in the kernel."""
    ks = desc[D_KEY_SIZE]
    if is_arraylike(desc):
        idx = np.int64(load_u32(key)) + 1 if key != U0 else np.int64(0)
        if key != U0 and np.int64(load_u32(key)) >= desc[D_MAX_ENTRIES]:
            idx = 0
        if idx >= desc[D_MAX_ENTRIES]:
            return -ENOENT
        store_u32(next_key, np.uint64(idx))
        return 0
    if not is_hash(desc) and desc[D_TYPE] != BPF_MAP_TYPE_LPM_TRIE:
        return -EINVAL
    b = np.int64(0)
    i = np.int64(0)
    if key != U0:
        h = key_hash(key, ks)
        e = hash_find(desc, key, h)
        if e >= 0:
            nxt = np.int64(load_u32(_elem_addr(desc, e) + np.uint64(E_NEXT)))
            if nxt != 0:
                mem_copy(next_key, _elem_addr(desc, nxt - 1) + np.uint64(E_KEY), ks)
                return 0
            b = _bucket_of(desc, h) + 1
    while b < desc[D_NBUCKETS]:
        i = np.int64(load_u32(np.uint64(desc[D_BUCKETS] + 4 * b)))
        if i != 0:
            mem_copy(next_key, _elem_addr(desc, i - 1) + np.uint64(E_KEY), ks)
            return 0
        b += 1
    return -ENOENT


@njit(cache=True)
def map_count(desc):
    if desc[D_TYPE] == BPF_MAP_TYPE_QUEUE or desc[D_TYPE] == BPF_MAP_TYPE_STACK:
        return queue_count(desc)
    if is_hash(desc) or desc[D_TYPE] == BPF_MAP_TYPE_LPM_TRIE:
        return np.int64(load_u64(np.uint64(desc[D_HEADER] + H_COUNT)))
    return desc[D_MAX_ENTRIES]


# -- queue and stack ---------------------------------------------------------------------------
# A ring of max_entries + 1 value slots; head is the oldest element, tail the next free slot.

@njit(cache=True)
def _ring_slots(desc):
    return desc[D_MAX_ENTRIES] + 1


@njit(cache=True)
def queue_push(desc, value, flags, owner):
    if flags != BPF_ANY and flags != BPF_EXIST:
        return -EINVAL
    if not lock_acquire(desc, 0, owner):
        return -EBUSY
    hdr = np.uint64(desc[D_HEADER])
    head = np.int64(load_u64(hdr + np.uint64(H_HEAD)))
    tail = np.int64(load_u64(hdr + np.uint64(H_TAIL)))
    n = _ring_slots(desc)
    if (tail + 1) % n == head:  # full
        if flags != BPF_EXIST:
            lock_release(desc, 0)
            return -E2BIG
        head = (head + 1) % n  # drop the oldest to make room
        store_u64(hdr + np.uint64(H_HEAD), np.uint64(head))
    mem_copy(np.uint64(desc[D_VALUES] + tail * desc[D_STRIDE]), value, desc[D_VALUE_SIZE])
    store_u64(hdr + np.uint64(H_TAIL), np.uint64((tail + 1) % n))
    lock_release(desc, 0)
    return 0


@njit(cache=True)
def queue_take(desc, out, remove, owner):
    """Pop (remove) or peek the next element into ``out``: the oldest for a queue, the newest
    for a stack. -ENOENT when empty."""
    if not lock_acquire(desc, 0, owner):
        return -EBUSY
    hdr = np.uint64(desc[D_HEADER])
    head = np.int64(load_u64(hdr + np.uint64(H_HEAD)))
    tail = np.int64(load_u64(hdr + np.uint64(H_TAIL)))
    n = _ring_slots(desc)
    if head == tail:
        lock_release(desc, 0)
        mem_zero(out, desc[D_VALUE_SIZE])  # the kernel clears the caller's buffer when empty
        return -ENOENT
    if desc[D_TYPE] == BPF_MAP_TYPE_QUEUE:
        slot = head
        if remove:
            store_u64(hdr + np.uint64(H_HEAD), np.uint64((head + 1) % n))
    else:
        slot = (tail - 1 + n) % n
        if remove:
            store_u64(hdr + np.uint64(H_TAIL), np.uint64(slot))
    mem_copy(out, np.uint64(desc[D_VALUES] + slot * desc[D_STRIDE]), desc[D_VALUE_SIZE])
    lock_release(desc, 0)
    return 0


@njit(cache=True)
def queue_count(desc):
    hdr = np.uint64(desc[D_HEADER])
    n = _ring_slots(desc)
    return (np.int64(load_u64(hdr + np.uint64(H_TAIL))) - np.int64(load_u64(hdr + np.uint64(H_HEAD))) + n) % n


# -- LPM tries ---------------------------------------------------------------------------------
# Entries live in the hash layout under a normalised key: the prefix length, then the data with
# every bit past the prefix cleared. A lookup tries the prefix lengths present, longest first,
# each one exact-match probe -- at most 8 x data bytes + 1 probes, usually a handful.

@njit(cache=True)
def _lpm_max(desc):
    return 8 * (desc[D_KEY_SIZE] - 4)


@njit(cache=True)
def _lpm_normalise(desc, key, plen, out):
    """Write (plen, data masked to plen bits) to ``out``."""
    store_u32(out, np.uint64(plen))
    n = desc[D_KEY_SIZE] - 4
    for i in range(n):
        bits = plen - 8 * i
        b = load_u8(key + np.uint64(4 + i))
        if bits <= 0:
            b = U0
        elif bits < 8:
            b &= np.uint64((0xFF << (8 - bits)) & 0xFF)
        store_u8(out + np.uint64(4 + i), b)


@njit(cache=True)
def _lpm_count(desc, plen):
    return np.uint64(desc[D_PLENS] + 4 * plen)


@njit(cache=True)
def lpm_lookup(desc, key, tmp):
    plen = np.int64(load_u32(key))
    if plen > _lpm_max(desc):
        plen = _lpm_max(desc)
    ks = desc[D_KEY_SIZE]
    for p in range(plen, -1, -1):
        if load_u32(_lpm_count(desc, p)) == U0:
            continue
        _lpm_normalise(desc, key, p, tmp)
        e = hash_find(desc, tmp, key_hash(tmp, ks))
        if e >= 0:
            return e
    return NO_ELEM


@njit(cache=True)
def lpm_update(desc, key, value, flags, owner, tmp):
    plen = np.int64(load_u32(key))
    if plen > _lpm_max(desc):
        return -EINVAL
    ks = desc[D_KEY_SIZE]
    _lpm_normalise(desc, key, plen, tmp)
    existed = hash_find(desc, tmp, key_hash(tmp, ks)) >= 0
    rc = hash_update(desc, tmp, value, flags, 0, False, owner)
    if rc == 0 and not existed:
        atomic_add_u32(_lpm_count(desc, plen), U1)
    return rc


@njit(cache=True)
def lpm_delete(desc, key, owner, tmp):
    plen = np.int64(load_u32(key))
    if plen > _lpm_max(desc):
        return -EINVAL
    _lpm_normalise(desc, key, plen, tmp)
    rc = hash_delete(desc, tmp, owner)
    if rc == 0:
        atomic_add_u32(_lpm_count(desc, plen), np.uint64(0xFFFFFFFF))
    return rc
