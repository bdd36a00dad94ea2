"""Linking: the programs of one object and their maps, made into one runnable image.

All programs of an object are laid out one after another in a single code image, so a tail call
is a jump to another program's entry and a callback (``bpf_loop``) a call to a pc, inside one
compiled loop. Map references left by the ELF loader are resolved here, into the tagged
addresses the engine uses:

- ``lddw rX, map`` (src ``BPF_PSEUDO_MAP_IDX``, imm = map index; or ``BPF_PSEUDO_MAP_FD`` with
  the index as the "fd") becomes the map's handle, ``handle_region << 32``;
- ``lddw rX, map + off`` (src ``BPF_PSEUDO_MAP_IDX_VALUE`` / ``BPF_PSEUDO_MAP_VALUE``) becomes a
  pointer into the map's value area: global variables;
- ``lddw rX, func`` (src ``BPF_PSEUDO_FUNC``) becomes ``REGION_CODE << 32 | absolute pc``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bpfmc.ebpf import opcodes as op
from bpfmc.ebpf.insn import Insn, decode, encode
from bpfmc.ebpf.program import Program
from bpfmc.ebpf.validate import validate

from .helpers import SUPPORTED_HELPERS, map_handle_region, map_value_region
from .maps import Map, MapDef, MapStore
from .memory import REGION_CODE, make_address


class LinkError(ValueError):
    """A program refers to something the image cannot provide (a missing map, a bad offset)."""


@dataclass
class MapSetup:
    """A map to create for an image, with what it starts with."""

    mdef: MapDef
    initial: bytes | None = None  # global data: the whole value of element 0
    frozen: bool = False  # .rodata: programs may not write it
    prog_slots: list[tuple[int, str]] = field(default_factory=list)  # prog arrays: (index, program name)
    value_fields: list[tuple[int, int, bool]] | None = None  # BTF integer fields, for merging


@dataclass(frozen=True)
class Entry:
    """One program of the image."""

    id: int  # 1-based; what prog array slots hold
    name: str
    prog_type: str
    pc: int  # first slot in the image
    num_slots: int
    section: str


@dataclass
class Image:
    code: bytes
    entries: list[Entry]
    maps: list[Map]
    setups: list[MapSetup]
    callbacks: list[int]  # absolute pcs taken as function pointers

    def entry(self, name: str | None) -> Entry:
        if name is None:
            if len(self.entries) == 1:
                return self.entries[0]
            raise LinkError(f"the object has {len(self.entries)} programs; choose one of: "
                            f"{', '.join(e.name for e in self.entries)}")
        for e in self.entries:
            if e.name == name or e.section == name:
                return e
        raise LinkError(f"no program or section {name!r} (programs: "
                        f"{', '.join(f'{e.name} ({e.section})' for e in self.entries)})")

    def map_by_name(self, name: str) -> Map:
        matches = [m for m in self.maps if m.name == name]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise LinkError(f"no map {name!r} (maps: {', '.join(m.name for m in self.maps) or 'none'})")
        raise LinkError(f"map name {name!r} is ambiguous")


def link(programs: list[Program], setups: list[MapSetup], store: MapStore) -> Image:
    """Create the maps in ``store``, resolve every program's references and lay them out."""
    maps = [store.create(s.mdef) for s in setups]
    for m, s in zip(maps, setups, strict=True):
        if store.attach:
            break  # the creator already loaded global data and prog-array slots; keep what is there now
        if s.initial is not None:
            if len(s.initial) != m.mdef.value_size:
                raise LinkError(f"map {m.name!r}: initial data of {len(s.initial)} bytes for a "
                                f"{m.mdef.value_size}-byte value")
            m.update(0, s.initial)
    entries: list[Entry] = []
    pc = 0
    for i, p in enumerate(programs):
        entries.append(Entry(i + 1, p.name, p.prog_type, pc, p.num_slots, p.meta.get("section", p.prog_type)))
        pc += p.num_slots
    callbacks: list[int] = []
    pieces = [_resolve(p, e.pc, maps, callbacks) for p, e in zip(programs, entries, strict=True)]
    by_name = {e.name: e for e in entries}
    for m, s in zip(maps, setups, strict=True):
        if store.attach:
            break
        for index, prog_name in s.prog_slots:
            if prog_name not in by_name:
                raise LinkError(f"map {m.name!r}: slot {index} names program {prog_name!r}, which is not in "
                                "the object")
            m.update(index, by_name[prog_name].id.to_bytes(4, "little"))
    return Image(b"".join(pieces), entries, maps, setups, callbacks)


def _resolve(program: Program, base: int, maps: list[Map], callbacks: list[int]) -> bytes:
    # A ValidationError names the pc and the reason; it propagates as the structural refusal it is.
    validate(program.code, helpers=set(SUPPORTED_HELPERS), allow_pseudo=True)
    out: list[Insn] = []
    pc = 0
    for insn in decode(program.code):
        if insn.is_wide and insn.src != 0:
            insn = _resolve_lddw(program, pc, insn, base, maps, callbacks)
        out.append(insn)
        pc += insn.slots
    return encode(out)


def _resolve_lddw(program: Program, pc: int, insn: Insn, base: int, maps: list[Map], callbacks: list[int]) -> Insn:
    src = insn.src
    lo, hi = insn.imm & 0xFFFFFFFF, insn.imm >> 32
    where = f"program {program.name!r}, pc {pc}"
    if src in (op.BPF_PSEUDO_MAP_IDX, op.BPF_PSEUDO_MAP_FD, op.BPF_PSEUDO_MAP_IDX_VALUE, op.BPF_PSEUDO_MAP_VALUE):
        if lo >= len(maps):
            raise LinkError(f"{where}: reference to map {lo}, but the object has {len(maps)} maps")
        if src in (op.BPF_PSEUDO_MAP_IDX, op.BPF_PSEUDO_MAP_FD):
            value = make_address(map_handle_region(lo), 0)
        else:
            if hi >= maps[lo].layout.values_size:
                raise LinkError(f"{where}: offset {hi} is outside map {maps[lo].name!r}")
            value = make_address(map_value_region(lo), hi)
    elif src == op.BPF_PSEUDO_FUNC:
        target = pc + 1 + _s32(lo)
        if not 0 <= target < program.num_slots:
            raise LinkError(f"{where}: function pointer to pc {target} is outside the program")
        callbacks.append(base + target)
        value = make_address(REGION_CODE, base + target)
    else:
        raise LinkError(f"{where}: lddw with pseudo source {src} is not supported")
    return Insn(insn.opcode, insn.dst, 0, insn.off, value)


def _s32(v: int) -> int:
    return v - (1 << 32) if v & 0x80000000 else v
