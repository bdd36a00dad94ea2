"""Map definitions as an ELF object declares them: :class:`MapSpec` and the kernel's map types.

A ``MapSpec`` is a value: what to create, not a created map. The worker turns specs into
storage; the verifier reads key and value sizes from them; programs refer to them by their
index in :attr:`bpfmc.ebpf.elf.ObjectFile.maps` (see ``BPF_PSEUDO_MAP_IDX`` in
:mod:`bpfmc.ebpf.elf`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .btf import IntField

__all__ = [
    "MapSpec", "IntField", "MAP_TYPES", "MAP_TYPE_NAMES", "PERCPU_MAP_TYPES", "map_type_name", "map_type_id",
    "BPF_F_NO_PREALLOC", "BPF_F_RDONLY_PROG", "BPF_F_MMAPABLE",
]

# enum bpf_map_type, numbered as in include/uapi/linux/bpf.h (tests check this against the
# installed header, so a renumbering or a typo cannot go unnoticed).
BPF_MAP_TYPE_UNSPEC = 0
BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PROG_ARRAY = 3
BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4
BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_STACK_TRACE = 7
BPF_MAP_TYPE_CGROUP_ARRAY = 8
BPF_MAP_TYPE_LRU_HASH = 9
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
BPF_MAP_TYPE_LPM_TRIE = 11
BPF_MAP_TYPE_ARRAY_OF_MAPS = 12
BPF_MAP_TYPE_HASH_OF_MAPS = 13
BPF_MAP_TYPE_DEVMAP = 14
BPF_MAP_TYPE_SOCKMAP = 15
BPF_MAP_TYPE_CPUMAP = 16
BPF_MAP_TYPE_XSKMAP = 17
BPF_MAP_TYPE_SOCKHASH = 18
BPF_MAP_TYPE_CGROUP_STORAGE = 19
BPF_MAP_TYPE_REUSEPORT_SOCKARRAY = 20
BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE = 21
BPF_MAP_TYPE_QUEUE = 22
BPF_MAP_TYPE_STACK = 23
BPF_MAP_TYPE_SK_STORAGE = 24
BPF_MAP_TYPE_DEVMAP_HASH = 25
BPF_MAP_TYPE_STRUCT_OPS = 26
BPF_MAP_TYPE_RINGBUF = 27
BPF_MAP_TYPE_INODE_STORAGE = 28
BPF_MAP_TYPE_TASK_STORAGE = 29
BPF_MAP_TYPE_BLOOM_FILTER = 30
BPF_MAP_TYPE_USER_RINGBUF = 31
BPF_MAP_TYPE_CGRP_STORAGE = 32
BPF_MAP_TYPE_ARENA = 33

MAP_TYPES: dict[str, int] = {
    "unspec": 0, "hash": 1, "array": 2, "prog_array": 3, "perf_event_array": 4, "percpu_hash": 5,
    "percpu_array": 6, "stack_trace": 7, "cgroup_array": 8, "lru_hash": 9, "lru_percpu_hash": 10,
    "lpm_trie": 11, "array_of_maps": 12, "hash_of_maps": 13, "devmap": 14, "sockmap": 15,
    "cpumap": 16, "xskmap": 17, "sockhash": 18, "cgroup_storage": 19, "reuseport_sockarray": 20,
    "percpu_cgroup_storage": 21, "queue": 22, "stack": 23, "sk_storage": 24, "devmap_hash": 25,
    "struct_ops": 26, "ringbuf": 27, "inode_storage": 28, "task_storage": 29, "bloom_filter": 30,
    "user_ringbuf": 31, "cgrp_storage": 32, "arena": 33,
}
MAP_TYPE_NAMES: dict[int, str] = {v: k for k, v in MAP_TYPES.items()}

PERCPU_MAP_TYPES = frozenset(
    {BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_LRU_PERCPU_HASH,
     BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE}
)
# Maps whose values are references to other objects (programs or maps), not data.
MAP_IN_MAP_TYPES = frozenset({BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_HASH_OF_MAPS})

# Map flags (the BPF_F_* of map_flags) the loader itself sets on global-data maps, as libbpf does.
BPF_F_NO_PREALLOC = 1 << 0
BPF_F_RDONLY_PROG = 1 << 7
BPF_F_MMAPABLE = 1 << 10

# LIBBPF_PIN_* values of the ``pinning`` attribute.
PIN_NONE = 0
PIN_BY_NAME = 1


def map_type_name(map_type: int) -> str:
    return MAP_TYPE_NAMES.get(map_type, f"unknown({map_type})")


def map_type_id(name: str | int) -> int:
    """A map type number from its name (``"percpu_array"``, ``"BPF_MAP_TYPE_HASH"``) or number."""
    if isinstance(name, int):
        return name
    key = name.lower().removeprefix("bpf_map_type_")
    if key not in MAP_TYPES:
        raise ValueError(f"unknown map type {name!r} (known: {', '.join(MAP_TYPES)})")
    return MAP_TYPES[key]


@dataclass(frozen=True)
class MapSpec:
    """One map of an object.

    ``initial`` is the whole initial value area of a global-data map (``.data``, ``.rodata``,
    ``.bss`` as zeros): the single value of its one-element array. ``slots`` are initial
    entries of a program array or map-in-map (``__array(values, ...)``): ``(index, name)``
    pairs naming a program (by function name) or a map. ``inner`` is the inner map's
    definition of a map-in-map. ``key_btf``/``value_btf`` describe the key and value as
    integer fields from BTF (see :meth:`bpfmc.ebpf.btf.Btf.int_fields`), ``None`` when BTF
    does not describe them as plain integers; ``key_type_id``/``value_type_id`` point into the
    object's BTF (0 when unknown).
    """

    name: str
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    initial: bytes | None = None
    frozen: bool = False
    slots: tuple[tuple[int, str], ...] = ()
    inner: MapSpec | None = None
    key_btf: tuple[IntField, ...] | None = None
    value_btf: tuple[IntField, ...] | None = None
    section: str = ""
    numa_node: int = 0
    pinning: int = 0
    map_extra: int = 0
    key_type_id: int = 0
    value_type_id: int = 0

    @property
    def type_name(self) -> str:
        return map_type_name(self.map_type)

    @property
    def is_percpu(self) -> bool:
        return self.map_type in PERCPU_MAP_TYPES

    @property
    def is_global_data(self) -> bool:
        """A map made from a ``.data``/``.rodata``/``.bss`` section rather than declared."""
        return self.initial is not None
