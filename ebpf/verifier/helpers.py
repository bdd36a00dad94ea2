"""Helper prototypes: argument kinds, return kind, and which program types may call each helper.

One :class:`Proto` per helper id the engine implements (``worker/helpers.py`` HELPER_NAMES; a test
keeps the two in step without ``ebpf`` importing ``worker``). Argument kinds follow the kernel's
``enum bpf_arg_type``; the allowed-types table was read off the host kernel (6.18) by loading a
call to every helper in every program type (``raw`` has no kernel twin: it allows every helper
that needs no packet or socket buffer, as tracing programs do).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import maps as mt

# Argument kinds.
ANYTHING = "anything"  # any initialised value
MAP = "map"  # CONST_PTR_TO_MAP
KEY = "map_key"  # pointer to key_size initialised bytes
VALUE = "map_value"  # pointer to value_size initialised bytes
UNINIT_VALUE = "uninit_map_value"  # pointer to value_size bytes the helper writes
MEM = "mem"  # pointer to initialised memory, size in the next argument
MEM_OR_NULL = "mem_or_null"
UNINIT_MEM = "uninit_mem"  # pointer to memory the helper writes, size in the next argument
SIZE = "const_size"  # the size of the previous memory argument, > 0
SIZE_OR_ZERO = "const_size_or_zero"
ALLOC_SIZE = "const_alloc_size_or_zero"  # a known constant
CTX = "ctx"
FUNC = "callback"
STACK_OR_NULL = "stack_or_null"
RINGBUF_MEM = "ringbuf_mem_release"  # a reserved record, released by the call

# Return kinds.
RET_INTEGER = "integer"
RET_VOID = "void"
RET_MAP_VALUE_OR_NULL = "map_value_or_null"
RET_RINGBUF_MEM_OR_NULL = "ringbuf_mem_or_null"


@dataclass(frozen=True)
class Proto:
    name: str
    args: tuple[str, ...]
    ret: str = RET_INTEGER
    map_types: frozenset[int] | None = None  # map types the MAP argument may be
    changes_pkt: bool = False  # invalidates every packet pointer


_Q = frozenset({mt.BPF_MAP_TYPE_QUEUE, mt.BPF_MAP_TYPE_STACK})
_RB = frozenset({mt.BPF_MAP_TYPE_RINGBUF})
_DATA_MAPS = frozenset({mt.BPF_MAP_TYPE_HASH, mt.BPF_MAP_TYPE_ARRAY, mt.BPF_MAP_TYPE_PERCPU_HASH,
                        mt.BPF_MAP_TYPE_PERCPU_ARRAY, mt.BPF_MAP_TYPE_LRU_HASH, mt.BPF_MAP_TYPE_LRU_PERCPU_HASH,
                        mt.BPF_MAP_TYPE_LPM_TRIE, mt.BPF_MAP_TYPE_ARRAY_OF_MAPS, mt.BPF_MAP_TYPE_HASH_OF_MAPS,
                        mt.BPF_MAP_TYPE_DEVMAP, mt.BPF_MAP_TYPE_DEVMAP_HASH, mt.BPF_MAP_TYPE_XSKMAP,
                        mt.BPF_MAP_TYPE_CPUMAP, mt.BPF_MAP_TYPE_SOCKMAP, mt.BPF_MAP_TYPE_SOCKHASH,
                        mt.BPF_MAP_TYPE_BLOOM_FILTER})
_PERCPU = frozenset({mt.BPF_MAP_TYPE_PERCPU_HASH, mt.BPF_MAP_TYPE_PERCPU_ARRAY,
                     mt.BPF_MAP_TYPE_LRU_PERCPU_HASH})
_REDIRECT = frozenset({mt.BPF_MAP_TYPE_DEVMAP, mt.BPF_MAP_TYPE_DEVMAP_HASH, mt.BPF_MAP_TYPE_CPUMAP,
                       mt.BPF_MAP_TYPE_XSKMAP})

PROTOS: dict[int, Proto] = {
    1: Proto("bpf_map_lookup_elem", (MAP, KEY), RET_MAP_VALUE_OR_NULL, _DATA_MAPS),
    2: Proto("bpf_map_update_elem", (MAP, KEY, VALUE, ANYTHING), map_types=_DATA_MAPS),
    3: Proto("bpf_map_delete_elem", (MAP, KEY), map_types=_DATA_MAPS),
    4: Proto("bpf_probe_read", (UNINIT_MEM, SIZE_OR_ZERO, ANYTHING)),
    5: Proto("bpf_ktime_get_ns", ()),
    6: Proto("bpf_trace_printk", (MEM, SIZE)),  # the kernel checks fmt only: r3-r5 are optional
    7: Proto("bpf_get_prandom_u32", ()),
    8: Proto("bpf_get_smp_processor_id", ()),
    9: Proto("bpf_skb_store_bytes", (CTX, ANYTHING, MEM, SIZE, ANYTHING), changes_pkt=True),
    10: Proto("bpf_l3_csum_replace", (CTX, ANYTHING, ANYTHING, ANYTHING, ANYTHING), changes_pkt=True),
    11: Proto("bpf_l4_csum_replace", (CTX, ANYTHING, ANYTHING, ANYTHING, ANYTHING), changes_pkt=True),
    12: Proto("bpf_tail_call", (CTX, MAP, ANYTHING), RET_VOID, frozenset({mt.BPF_MAP_TYPE_PROG_ARRAY})),
    14: Proto("bpf_get_current_pid_tgid", ()),
    15: Proto("bpf_get_current_uid_gid", ()),
    16: Proto("bpf_get_current_comm", (UNINIT_MEM, SIZE)),
    23: Proto("bpf_redirect", (ANYTHING, ANYTHING)),
    25: Proto("bpf_perf_event_output", (CTX, MAP, ANYTHING, MEM, SIZE_OR_ZERO),
              map_types=frozenset({mt.BPF_MAP_TYPE_PERF_EVENT_ARRAY})),
    26: Proto("bpf_skb_load_bytes", (CTX, ANYTHING, UNINIT_MEM, SIZE)),
    28: Proto("bpf_csum_diff", (MEM_OR_NULL, SIZE_OR_ZERO, MEM_OR_NULL, SIZE_OR_ZERO, ANYTHING)),
    34: Proto("bpf_get_hash_recalc", (CTX,)),
    39: Proto("bpf_skb_pull_data", (CTX, ANYTHING), changes_pkt=True),
    42: Proto("bpf_get_numa_node_id", ()),
    44: Proto("bpf_xdp_adjust_head", (CTX, ANYTHING), changes_pkt=True),
    51: Proto("bpf_redirect_map", (MAP, ANYTHING, ANYTHING), map_types=_REDIRECT),
    54: Proto("bpf_xdp_adjust_meta", (CTX, ANYTHING), changes_pkt=True),
    65: Proto("bpf_xdp_adjust_tail", (CTX, ANYTHING), changes_pkt=True),
    87: Proto("bpf_map_push_elem", (MAP, VALUE, ANYTHING), map_types=_Q | {mt.BPF_MAP_TYPE_BLOOM_FILTER}),
    88: Proto("bpf_map_pop_elem", (MAP, UNINIT_VALUE), map_types=_Q),
    89: Proto("bpf_map_peek_elem", (MAP, UNINIT_VALUE), map_types=_Q | {mt.BPF_MAP_TYPE_BLOOM_FILTER}),
    112: Proto("bpf_probe_read_user", (UNINIT_MEM, SIZE_OR_ZERO, ANYTHING)),
    113: Proto("bpf_probe_read_kernel", (UNINIT_MEM, SIZE_OR_ZERO, ANYTHING)),
    118: Proto("bpf_jiffies64", ()),
    125: Proto("bpf_ktime_get_boot_ns", ()),
    130: Proto("bpf_ringbuf_output", (MAP, MEM, SIZE_OR_ZERO, ANYTHING), map_types=_RB),
    131: Proto("bpf_ringbuf_reserve", (MAP, ALLOC_SIZE, ANYTHING), RET_RINGBUF_MEM_OR_NULL, _RB),
    132: Proto("bpf_ringbuf_submit", (RINGBUF_MEM, ANYTHING), RET_VOID),
    133: Proto("bpf_ringbuf_discard", (RINGBUF_MEM, ANYTHING), RET_VOID),
    134: Proto("bpf_ringbuf_query", (MAP, ANYTHING), map_types=_RB),
    160: Proto("bpf_ktime_get_coarse_ns", ()),
    181: Proto("bpf_loop", (ANYTHING, FUNC, STACK_OR_NULL, ANYTHING)),
    195: Proto("bpf_map_lookup_percpu_elem", (MAP, KEY, ANYTHING), RET_MAP_VALUE_OR_NULL, _PERCPU),
}

BPF_FUNC_TAIL_CALL = 12
BPF_FUNC_LOOP = 181

# Helpers each program type may not call (the kernel's "unknown func" for that type).
_SKB_ONLY = frozenset({9, 10, 11, 34, 39})
_XDP_ONLY = frozenset({44, 51, 54, 65})
DENIED: dict[str, frozenset[int]] = {
    "xdp": frozenset({4, 26}) | _SKB_ONLY,
    "sched_cls": frozenset({4}) | _XDP_ONLY,
    "socket_filter": frozenset({4, 23, 28}) | _SKB_ONLY | _XDP_ONLY,
    "raw": frozenset({23, 26}) | _SKB_ONLY | _XDP_ONLY,
    "seccomp": frozenset({4, 12, 23, 25, 26, 28, 112, 113}) | _SKB_ONLY | _XDP_ONLY,
}


def allowed(helper_id: int, prog_type: str) -> bool:
    return helper_id in PROTOS and helper_id not in DENIED.get(prog_type, frozenset())
