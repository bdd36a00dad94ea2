"""A small reader for BTF, the BPF Type Format (the kernel's ``Documentation/bpf/btf.rst``).

Objects compiled with ``clang -g -target bpf`` carry a ``.BTF`` section describing their types;
the kernel publishes its own at ``/sys/kernel/btf/vmlinux``. The ELF loader needs BTF for three
things: BTF-defined maps (whose attributes are encoded in the *types* of a struct's members),
the layout of map keys and values (so per-CPU values can be merged field by field), and CO-RE
relocations (matching the object's view of a kernel struct against the running kernel's).

Parsing is lazy because vmlinux BTF holds well over 100,000 types of which a loader touches a
handful: :meth:`Btf.parse` walks the type section once, recording where each type starts (one
``unpack`` per type), and decodes a type's members, parameters or enumerators only when asked.

Every malformed input ends in :class:`BtfError` (a ``ValueError``): truncated sections, unknown
kinds, references to type ids that do not exist, reference cycles.
"""

from __future__ import annotations

import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "BtfError", "Btf", "BtfType", "Member", "Param", "EnumValue", "VarSecinfo", "IntField",
    "KIND_NAMES", "essential_name",
    "KIND_INT", "KIND_PTR", "KIND_ARRAY", "KIND_STRUCT", "KIND_UNION", "KIND_ENUM", "KIND_FWD",
    "KIND_TYPEDEF", "KIND_VOLATILE", "KIND_CONST", "KIND_RESTRICT", "KIND_FUNC", "KIND_FUNC_PROTO",
    "KIND_VAR", "KIND_DATASEC", "KIND_FLOAT", "KIND_DECL_TAG", "KIND_TYPE_TAG", "KIND_ENUM64",
    "VAR_STATIC", "VAR_GLOBAL", "VAR_EXTERN",
]

BTF_MAGIC = 0xEB9F

# enum btf_kind, numbered as in include/uapi/linux/btf.h.
KIND_INT = 1
KIND_PTR = 2
KIND_ARRAY = 3
KIND_STRUCT = 4
KIND_UNION = 5
KIND_ENUM = 6
KIND_FWD = 7
KIND_TYPEDEF = 8
KIND_VOLATILE = 9
KIND_CONST = 10
KIND_RESTRICT = 11
KIND_FUNC = 12
KIND_FUNC_PROTO = 13
KIND_VAR = 14
KIND_DATASEC = 15
KIND_FLOAT = 16
KIND_DECL_TAG = 17
KIND_TYPE_TAG = 18
KIND_ENUM64 = 19

KIND_NAMES = {
    0: "VOID", KIND_INT: "INT", KIND_PTR: "PTR", KIND_ARRAY: "ARRAY", KIND_STRUCT: "STRUCT",
    KIND_UNION: "UNION", KIND_ENUM: "ENUM", KIND_FWD: "FWD", KIND_TYPEDEF: "TYPEDEF",
    KIND_VOLATILE: "VOLATILE", KIND_CONST: "CONST", KIND_RESTRICT: "RESTRICT", KIND_FUNC: "FUNC",
    KIND_FUNC_PROTO: "FUNC_PROTO", KIND_VAR: "VAR", KIND_DATASEC: "DATASEC", KIND_FLOAT: "FLOAT",
    KIND_DECL_TAG: "DECL_TAG", KIND_TYPE_TAG: "TYPE_TAG", KIND_ENUM64: "ENUM64",
}

# BTF_INT_ENCODING bits.
INT_SIGNED = 1
INT_CHAR = 2
INT_BOOL = 4

# enum btf_var_linkage / btf_func_linkage share these numbers for static and global.
VAR_STATIC = 0
VAR_GLOBAL = 1
VAR_EXTERN = 2

# Kinds whose third header word is a size; for the others it is a type id.
_SIZED = frozenset({KIND_INT, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_DATASEC, KIND_FLOAT, KIND_ENUM64})
# Kinds skipped by resolve(): they change nothing about layout.
_MODIFIERS = frozenset({KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG})
_TRANSPARENT = _MODIFIERS | {KIND_TYPEDEF}

# Pointers are 64-bit on every BPF target and on the kernels we read BTF from.
POINTER_SIZE = 8
# How long a chain of references may be before it is taken for a cycle (libbpf uses 32).
MAX_DEPTH = 32
# int_fields() gives up (returns None) past this many fields: such values merge per word.
MAX_FIELDS = 4096

_HEADER = struct.Struct("<HBBIIIII")
_TYPE = struct.Struct("<III")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_PAIR = struct.Struct("<II")
_TRIPLE = struct.Struct("<III")

# Bytes that follow the 12-byte header of a type: per kind, (fixed, per vlen entry).
_TAIL = {
    KIND_INT: (4, 0), KIND_PTR: (0, 0), KIND_ARRAY: (12, 0), KIND_STRUCT: (0, 12), KIND_UNION: (0, 12),
    KIND_ENUM: (0, 8), KIND_FWD: (0, 0), KIND_TYPEDEF: (0, 0), KIND_VOLATILE: (0, 0), KIND_CONST: (0, 0),
    KIND_RESTRICT: (0, 0), KIND_FUNC: (0, 0), KIND_FUNC_PROTO: (0, 8), KIND_VAR: (4, 0),
    KIND_DATASEC: (0, 12), KIND_FLOAT: (0, 0), KIND_DECL_TAG: (4, 0), KIND_TYPE_TAG: (0, 0),
    KIND_ENUM64: (0, 12),
}


class BtfError(ValueError):
    """Malformed or unsupported BTF, or a question the BTF cannot answer (no such type)."""


class Member(NamedTuple):
    name: str
    type: int
    bit_offset: int
    bitfield_size: int  # 0 unless the member is a bitfield (struct/union with kind_flag set)


class Param(NamedTuple):
    name: str
    type: int


class EnumValue(NamedTuple):
    name: str
    value: int  # signed or unsigned per the enum's kind_flag


class VarSecinfo(NamedTuple):
    type: int
    offset: int
    size: int


class IntField(NamedTuple):
    """One integer leaf of a flattened type: byte offset, byte size, signedness."""

    offset: int
    size: int
    signed: bool


@dataclass(frozen=True)
class BtfType:
    """One decoded type. Fields that do not apply to ``kind`` keep their defaults."""

    id: int
    kind: int
    name: str
    kind_flag: bool = False
    vlen: int = 0
    size: int | None = None  # INT, STRUCT, UNION, ENUM, ENUM64, FLOAT, DATASEC
    type: int | None = None  # PTR, TYPEDEF, modifiers, FUNC, FUNC_PROTO (return), VAR, DECL_TAG
    # INT
    encoding: int = 0
    int_offset: int = 0
    bits: int = 0
    # ARRAY
    elem_type: int = 0
    index_type: int = 0
    nelems: int = 0
    members: tuple[Member, ...] = ()  # STRUCT, UNION
    params: tuple[Param, ...] = ()  # FUNC_PROTO
    values: tuple[EnumValue, ...] = ()  # ENUM, ENUM64
    vars: tuple[VarSecinfo, ...] = ()  # DATASEC
    linkage: int = 0  # VAR, FUNC (vlen)
    component_idx: int = -1  # DECL_TAG

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, str(self.kind))

    @property
    def signed(self) -> bool:
        """Signedness of an INT or an ENUM/ENUM64 (whose kind_flag means signed)."""
        if self.kind == KIND_INT:
            return bool(self.encoding & INT_SIGNED)
        if self.kind in (KIND_ENUM, KIND_ENUM64):
            return self.kind_flag
        return False

    def describe(self) -> str:
        return f"[{self.id}] {self.kind_name} '{self.name or '(anon)'}'"


def essential_name(name: str) -> str:
    """A name without its CO-RE "flavor": ``task_struct___v2`` -> ``task_struct``. The flavor
    starts at the last ``___`` that has a non-underscore on both sides (libbpf's rule)."""
    for i in range(len(name) - 5, -1, -1):
        if name[i] != "_" and name[i + 1:i + 4] == "___" and name[i + 4] != "_":
            return name[:i + 1]
    return name


class Btf:
    """Parsed BTF: type ids 1..len(self)-1 (id 0 is ``void``)."""

    def __init__(self, data: bytes, types_start: int, offsets: list[int], strings: bytes, source: str):
        self._data = data
        self._types_start = types_start
        self._offsets = offsets  # offsets[i] = where type i's header is in _data (offsets[0] unused)
        self._strings = strings
        self.source = source
        self._cache: dict[int, BtfType] = {}
        self._by_name: dict[str, list[int]] | None = None
        self._by_essential: dict[str, list[int]] | None = None
        self._lock = threading.Lock()

    # --- construction ------------------------------------------------------------------

    @classmethod
    def parse(cls, data: bytes, source: str = "<bytes>") -> Btf:
        """Parse a ``.BTF`` section (or a raw BTF file such as ``/sys/kernel/btf/vmlinux``)."""
        data = bytes(data)
        if len(data) < _HEADER.size:
            raise BtfError(f"{source}: {len(data)} bytes is too short for a BTF header")
        magic, version, _flags, hdr_len, type_off, type_len, str_off, str_len = _HEADER.unpack_from(data)
        if magic == 0x9FEB:
            raise BtfError(f"{source}: big-endian BTF is not supported")
        if magic != BTF_MAGIC:
            raise BtfError(f"{source}: bad BTF magic 0x{magic:04x} (expected 0x{BTF_MAGIC:04x})")
        if version != 1:
            raise BtfError(f"{source}: unsupported BTF version {version}")
        if hdr_len < _HEADER.size or hdr_len > len(data):
            raise BtfError(f"{source}: bad BTF header length {hdr_len}")
        types_start = hdr_len + type_off
        types_end = types_start + type_len
        strings_start = hdr_len + str_off
        strings_end = strings_start + str_len
        if types_end > len(data) or strings_end > len(data):
            raise BtfError(f"{source}: type or string section runs past the end of the data "
                           f"({len(data)} bytes)")
        if type_off % 4:
            raise BtfError(f"{source}: type section is not 4-byte aligned")
        if str_len and data[strings_start] != 0:
            raise BtfError(f"{source}: string section does not start with an empty string")
        offsets = [0]
        pos = types_start
        unpack = _TYPE.unpack_from
        tail = _TAIL
        while pos < types_end:
            if pos + 12 > types_end:
                raise BtfError(f"{source}: type [{len(offsets)}] is truncated")
            _name_off, info, _size = unpack(data, pos)
            kind = (info >> 24) & 0x1F
            shape = tail.get(kind)
            if shape is None:
                raise BtfError(f"{source}: type [{len(offsets)}] has unknown kind {kind}")
            offsets.append(pos)
            pos += 12 + shape[0] + shape[1] * (info & 0xFFFF)
        if pos != types_end:
            raise BtfError(f"{source}: type [{len(offsets) - 1}] runs past the end of the type section")
        return cls(data, types_start, offsets, data[strings_start:strings_end], source)

    _file_cache: dict[tuple[str, int, int], Btf] = {}
    _file_lock = threading.Lock()

    @classmethod
    def load(cls, path: str | os.PathLike) -> Btf:
        """Parse a BTF file, cached per path (and size and mtime, so a changed file is re-read):
        vmlinux BTF is megabytes and every CO-RE object wants it."""
        p = Path(path)
        try:
            st = p.stat()
            key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
            with cls._file_lock:
                hit = cls._file_cache.get(key)
            if hit is not None:
                return hit
            data = p.read_bytes()
        except OSError as e:
            raise BtfError(f"cannot read BTF from {p}: {e.strerror or e}") from e
        btf = cls.parse(data, str(p))
        with cls._file_lock:
            cls._file_cache[key] = btf
        return btf

    # --- strings and types ------------------------------------------------------------

    def __len__(self) -> int:
        """Number of type ids, counting ``void`` (id 0)."""
        return len(self._offsets)

    def string(self, offset: int) -> str:
        if not 0 <= offset < len(self._strings):
            if offset == 0:
                return ""
            raise BtfError(f"{self.source}: string offset {offset} is outside the string section")
        end = self._strings.find(b"\0", offset)
        if end < 0:
            raise BtfError(f"{self.source}: string at offset {offset} is not NUL-terminated")
        return self._strings[offset:end].decode("utf-8", errors="replace")

    def type(self, type_id: int) -> BtfType:
        t = self._cache.get(type_id)
        if t is None:
            t = self._decode(type_id)
            self._cache[type_id] = t
        return t

    def __getitem__(self, type_id: int) -> BtfType:
        return self.type(type_id)

    def types(self):
        """All types, id 1 upwards."""
        for i in range(1, len(self._offsets)):
            yield self.type(i)

    def kind(self, type_id: int) -> int:
        return self.type(type_id).kind

    def name(self, type_id: int) -> str:
        return self.type(type_id).name

    def _check_id(self, type_id: int, what: str = "type") -> None:
        if not 0 <= type_id < len(self._offsets):
            raise BtfError(f"{self.source}: {what} id {type_id} does not exist ({len(self._offsets) - 1} types)")

    def _decode(self, type_id: int) -> BtfType:
        self._check_id(type_id)
        if type_id == 0:
            return BtfType(0, 0, "void")
        d = self._data
        pos = self._offsets[type_id]
        name_off, info, size_or_type = _TYPE.unpack_from(d, pos)
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        kflag = bool(info >> 31)
        name = self.string(name_off)
        pos += 12
        common = {"id": type_id, "kind": kind, "name": name, "kind_flag": kflag, "vlen": vlen}
        if kind in _SIZED:
            common["size"] = size_or_type
        else:
            self._check_id(size_or_type, f"{KIND_NAMES[kind]} [{type_id}] references type")
            common["type"] = size_or_type
        if kind == KIND_INT:
            (word,) = _U32.unpack_from(d, pos)
            return BtfType(**common, encoding=(word >> 24) & 0x0F, int_offset=(word >> 16) & 0xFF,
                           bits=word & 0xFF)
        if kind == KIND_ARRAY:
            elem, index, nelems = _TRIPLE.unpack_from(d, pos)
            self._check_id(elem, f"ARRAY [{type_id}] element type")
            self._check_id(index, f"ARRAY [{type_id}] index type")
            return BtfType(**common, elem_type=elem, index_type=index, nelems=nelems)
        if kind in (KIND_STRUCT, KIND_UNION):
            members = []
            for i in range(vlen):
                m_name, m_type, m_off = _TRIPLE.unpack_from(d, pos + 12 * i)
                self._check_id(m_type, f"member {i} of [{type_id}]")
                if kflag:
                    members.append(Member(self.string(m_name), m_type, m_off & 0xFFFFFF, m_off >> 24))
                else:
                    members.append(Member(self.string(m_name), m_type, m_off, 0))
            return BtfType(**common, members=tuple(members))
        if kind == KIND_ENUM:
            values = []
            for i in range(vlen):
                v_name, raw = _PAIR.unpack_from(d, pos + 8 * i)
                value = raw - (1 << 32) if kflag and raw & 0x80000000 else raw
                values.append(EnumValue(self.string(v_name), value))
            return BtfType(**common, values=tuple(values))
        if kind == KIND_ENUM64:
            values = []
            for i in range(vlen):
                v_name, lo, hi = _TRIPLE.unpack_from(d, pos + 12 * i)
                value = lo | (hi << 32)
                if kflag and value & (1 << 63):
                    value -= 1 << 64
                values.append(EnumValue(self.string(v_name), value))
            return BtfType(**common, values=tuple(values))
        if kind == KIND_FUNC_PROTO:
            params = []
            for i in range(vlen):
                p_name, p_type = _PAIR.unpack_from(d, pos + 8 * i)
                self._check_id(p_type, f"parameter {i} of [{type_id}]")
                params.append(Param(self.string(p_name), p_type))
            return BtfType(**common, params=tuple(params))
        if kind == KIND_VAR:
            (linkage,) = _U32.unpack_from(d, pos)
            return BtfType(**common, linkage=linkage)
        if kind == KIND_DATASEC:
            secinfo = []
            for i in range(vlen):
                v_type, v_off, v_size = _TRIPLE.unpack_from(d, pos + 12 * i)
                self._check_id(v_type, f"variable {i} of DATASEC [{type_id}]")
                secinfo.append(VarSecinfo(v_type, v_off, v_size))
            return BtfType(**common, vars=tuple(secinfo))
        if kind == KIND_DECL_TAG:
            (component,) = _I32.unpack_from(d, pos)
            return BtfType(**common, component_idx=component)
        if kind == KIND_FUNC:
            return BtfType(**common, linkage=vlen)
        return BtfType(**common)

    # --- lookups ----------------------------------------------------------------------

    def _build_name_index(self) -> None:
        with self._lock:
            if self._by_name is not None:
                return
            by_name: dict[str, list[int]] = {}
            d, strings = self._data, self._strings
            for type_id in range(1, len(self._offsets)):
                (name_off,) = _U32.unpack_from(d, self._offsets[type_id])
                if not name_off or name_off >= len(strings):
                    continue
                end = strings.find(b"\0", name_off)
                if end < 0:
                    continue
                name = strings[name_off:end].decode("utf-8", errors="replace")
                by_name.setdefault(name, []).append(type_id)
            by_essential: dict[str, list[int]] = {}
            for name, ids in by_name.items():
                by_essential.setdefault(essential_name(name), []).extend(ids)
            self._by_essential = by_essential
            self._by_name = by_name

    def find(self, name: str, kind: int | None = None) -> list[int]:
        """Ids of the types called ``name`` (of ``kind`` when given), in id order."""
        if self._by_name is None:
            self._build_name_index()
        assert self._by_name is not None
        ids = self._by_name.get(name, [])
        return [i for i in ids if kind is None or self.type(i).kind == kind]

    def find_essential(self, name: str) -> list[int]:
        """Ids of the types whose essential name (flavor removed) is ``name``."""
        if self._by_essential is None:
            self._build_name_index()
        assert self._by_essential is not None
        return sorted(self._by_essential.get(name, []))

    def find_one(self, name: str, kind: int | None = None) -> BtfType:
        ids = self.find(name, kind)
        if not ids:
            what = f"{KIND_NAMES.get(kind, kind)} " if kind is not None else ""
            raise BtfError(f"{self.source}: no {what}type named {name!r}")
        return self.type(ids[0])

    def datasec(self, name: str) -> BtfType | None:
        ids = self.find(name, KIND_DATASEC)
        return self.type(ids[0]) if ids else None

    # --- layout -----------------------------------------------------------------------

    def skip_modifiers(self, type_id: int) -> int:
        """Follow const/volatile/restrict/type_tag (but not typedefs)."""
        for _ in range(MAX_DEPTH):
            t = self.type(type_id)
            if t.kind not in _MODIFIERS:
                return type_id
            assert t.type is not None
            type_id = t.type
        raise BtfError(f"{self.source}: type [{type_id}]: modifier chain too long (a cycle?)")

    def resolve(self, type_id: int) -> int:
        """Follow typedefs and modifiers to the type that determines layout."""
        start = type_id
        for _ in range(MAX_DEPTH):
            t = self.type(type_id)
            if t.kind not in _TRANSPARENT:
                return type_id
            assert t.type is not None
            type_id = t.type
        raise BtfError(f"{self.source}: type [{start}]: typedef/modifier chain too long (a cycle?)")

    def resolved(self, type_id: int) -> BtfType:
        return self.type(self.resolve(type_id))

    def size(self, type_id: int) -> int:
        """Size in bytes of a type (``btf__resolve_size``): arrays multiply, pointers are 8,
        typedefs/modifiers/VARs are the size of what they name."""
        nelems = 1
        start = type_id
        for _ in range(MAX_DEPTH):
            t = self.type(type_id)
            if t.kind in _SIZED:
                assert t.size is not None
                return nelems * t.size
            if t.kind == KIND_PTR:
                return nelems * POINTER_SIZE
            if t.kind == KIND_ARRAY:
                nelems *= t.nelems
                type_id = t.elem_type
                continue
            if t.kind in _TRANSPARENT or t.kind == KIND_VAR:
                assert t.type is not None
                type_id = t.type
                continue
            raise BtfError(f"{self.source}: {t.describe()} has no size")
        raise BtfError(f"{self.source}: type [{start}]: reference chain too long for a size (a cycle?)")

    def members(self, type_id: int) -> tuple[Member, ...]:
        t = self.resolved(type_id)
        if t.kind not in (KIND_STRUCT, KIND_UNION):
            raise BtfError(f"{self.source}: {t.describe()} is not a struct or union")
        return t.members

    def member(self, type_id: int, name: str) -> Member:
        """A member by name, looking through anonymous struct/union members as C does; the
        returned ``bit_offset`` is relative to ``type_id``."""
        found = self._find_member(type_id, name, 0, [0])
        if found is None:
            raise BtfError(f"{self.source}: {self.resolved(type_id).describe()} has no member {name!r}")
        return found

    def _find_member(self, type_id: int, name: str, depth: int, steps: list[int]) -> Member | None:
        steps[0] += 1
        if depth > MAX_DEPTH or steps[0] > MAX_FIELDS:
            raise BtfError(f"{self.source}: anonymous members nest too deep in [{type_id}]")
        for m in self.members(type_id):
            if m.name == name:
                return m
            if not m.name and self.resolved(m.type).kind in (KIND_STRUCT, KIND_UNION):
                inner = self._find_member(m.type, name, depth + 1, steps)
                if inner is not None:
                    return inner._replace(bit_offset=inner.bit_offset + m.bit_offset)
        return None

    def int_fields(self, type_id: int) -> list[IntField] | None:
        """Flatten a type into its integer leaves ``(byte offset, byte size, signed)``, for merging
        per-CPU values field by field. ``None`` when the type is not made of whole integers only
        (unions, bitfields, floats, ...) or has more than ``MAX_FIELDS`` leaves."""
        out: list[IntField] = []
        # Steps are counted, not just fields: arrays of empty structs produce no fields but
        # could still make a malformed type take forever to walk.
        steps = [0]
        try:
            ok = self._flatten(type_id, 0, out, 0, steps)
        except BtfError:
            return None
        return out if ok else None

    def _flatten(self, type_id: int, base: int, out: list[IntField], depth: int, steps: list[int]) -> bool:
        steps[0] += 1
        if depth > MAX_DEPTH or len(out) > MAX_FIELDS or steps[0] > 4 * MAX_FIELDS:
            return False
        t = self.resolved(type_id)
        if t.kind == KIND_INT:
            assert t.size is not None
            if t.int_offset or t.bits != t.size * 8 or t.size not in (1, 2, 4, 8, 16):
                return False
            out.append(IntField(base, t.size, t.signed))
            return True
        if t.kind in (KIND_ENUM, KIND_ENUM64):
            assert t.size is not None
            if t.size not in (1, 2, 4, 8):
                return False
            out.append(IntField(base, t.size, t.signed))
            return True
        if t.kind == KIND_PTR:
            out.append(IntField(base, POINTER_SIZE, False))
            return True
        if t.kind == KIND_STRUCT:
            for m in t.members:
                if m.bitfield_size or m.bit_offset % 8:
                    return False
                if not self._flatten(m.type, base + m.bit_offset // 8, out, depth + 1, steps):
                    return False
            return True
        if t.kind == KIND_ARRAY:
            if t.nelems > MAX_FIELDS:
                return False
            elem_size = self.size(t.elem_type)
            for i in range(t.nelems):
                if not self._flatten(t.elem_type, base + i * elem_size, out, depth + 1, steps):
                    return False
            return True
        return False

    def type_str(self, type_id: int, _depth: int = 0) -> str:
        """A short C-like spelling of a type, for messages."""
        if _depth > 8:
            return "..."
        try:
            t = self.type(type_id)
        except BtfError:
            return f"<bad type {type_id}>"
        if t.kind in (KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_ENUM64):
            word = {KIND_STRUCT: "struct", KIND_UNION: "union"}.get(t.kind, "enum")
            return f"{word} {t.name or '(anon)'}"
        if t.kind == KIND_PTR:
            return self.type_str(t.type or 0, _depth + 1) + " *"
        if t.kind == KIND_ARRAY:
            return f"{self.type_str(t.elem_type, _depth + 1)}[{t.nelems}]"
        return t.name or t.kind_name.lower()
