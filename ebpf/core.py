"""CO-RE ("compile once, run everywhere") relocations, resolved the way libbpf resolves them.

clang records in ``.BTF.ext`` every instruction whose constant depends on a kernel type's
layout: a field's byte offset or size, whether a field, type or enumerator exists, a type's
size, an enumerator's value. Each record names a *local* type (the object's BTF), an access
string (``"0:3:1"``: index into the root pointer, then member/element indices) and what is
wanted. The loader finds the same field in a *target* BTF (normally the running kernel's,
``/sys/kernel/btf/vmlinux``) and rewrites the instruction with the target's value.

The rules follow libbpf (``tools/lib/bpf/relo_core.c``) so that an object behaves here as it
does under libbpf: candidate target types share the local type's *essential* name (the name
without a ``___flavor`` suffix) and kind; members match by exact name, looking through
anonymous members; field types must be compatible (any two integers, any two pointers, enums
and forwards by essential name, arrays by element type). Where libbpf would quietly "poison"
an instruction whose relocation failed (so that a load fails only if the instruction is
reachable), we refuse the object with a :class:`CoreError` naming the access: an emulator has
no good reason to run a program whose author's assumptions about the kernel did not hold.
``BPF_CORE_TYPE_MATCHES`` (``bpf_core_type_matches``) is not supported.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from . import opcodes as op
from .btf import (
    KIND_ARRAY,
    KIND_ENUM,
    KIND_ENUM64,
    KIND_FLOAT,
    KIND_FUNC_PROTO,
    KIND_FWD,
    KIND_INT,
    KIND_PTR,
    KIND_STRUCT,
    KIND_UNION,
    MAX_DEPTH,
    Btf,
    BtfError,
    essential_name,
)

__all__ = ["CoreError", "CoreRelo", "parse_core_relos", "apply_core_relo", "RELO_KIND_NAMES"]

# enum bpf_core_relo_kind (include/uapi/linux/bpf.h).
FIELD_BYTE_OFFSET = 0
FIELD_BYTE_SIZE = 1
FIELD_EXISTS = 2
FIELD_SIGNED = 3
FIELD_LSHIFT_U64 = 4
FIELD_RSHIFT_U64 = 5
TYPE_ID_LOCAL = 6
TYPE_ID_TARGET = 7
TYPE_EXISTS = 8
TYPE_SIZE = 9
ENUMVAL_EXISTS = 10
ENUMVAL_VALUE = 11
TYPE_MATCHES = 12

RELO_KIND_NAMES = {
    FIELD_BYTE_OFFSET: "byte_off", FIELD_BYTE_SIZE: "byte_sz", FIELD_EXISTS: "field_exists",
    FIELD_SIGNED: "signed", FIELD_LSHIFT_U64: "lshift_u64", FIELD_RSHIFT_U64: "rshift_u64",
    TYPE_ID_LOCAL: "local_type_id", TYPE_ID_TARGET: "target_type_id", TYPE_EXISTS: "type_exists",
    TYPE_SIZE: "type_size", ENUMVAL_EXISTS: "enumval_exists", ENUMVAL_VALUE: "enumval_value",
    TYPE_MATCHES: "type_matches",
}
_FIELD_KINDS = frozenset(range(FIELD_BYTE_OFFSET, FIELD_RSHIFT_U64 + 1))
_TYPE_KINDS = frozenset({TYPE_ID_LOCAL, TYPE_ID_TARGET, TYPE_EXISTS, TYPE_SIZE, TYPE_MATCHES})
_ENUMVAL_KINDS = frozenset({ENUMVAL_EXISTS, ENUMVAL_VALUE})

# libbpf's BPF_CORE_SPEC_MAX_LEN: deepest access string it accepts.
SPEC_MAX_LEN = 64

_EXT_HEADER = struct.Struct("<HBBIIIIIII")
_RELO = struct.Struct("<IIII")
_U32 = struct.Struct("<I")
_SLOT = struct.Struct("<BBhi")


class CoreError(ValueError):
    """A CO-RE relocation that is malformed, unsupported or cannot be resolved."""


@dataclass(frozen=True)
class CoreRelo:
    """One ``struct bpf_core_relo`` record: ``insn_off`` is a byte offset in ``section``."""

    section: str
    insn_off: int
    type_id: int
    access: str
    kind: int

    @property
    def kind_name(self) -> str:
        return RELO_KIND_NAMES.get(self.kind, f"kind {self.kind}")


def parse_core_relos(ext: bytes, btf: Btf) -> list[CoreRelo]:
    """The CO-RE records of a ``.BTF.ext`` section (func_info and line_info are skipped: the
    loader has no use for them). Section names and access strings live in ``btf``'s strings."""
    if len(ext) < _EXT_HEADER.size - 8:
        raise BtfError(f"{len(ext)} bytes is too short for a header")
    if len(ext) < _EXT_HEADER.size:
        return []  # a header without the optional core_relo fields: no CO-RE records
    magic, version, _flags, hdr_len, *_info, core_off, core_len = _EXT_HEADER.unpack_from(ext)
    if magic != 0xEB9F:
        raise BtfError(f"bad magic 0x{magic:04x}")
    if version != 1:
        raise BtfError(f"unsupported version {version}")
    if hdr_len < 32 or not core_len:
        return []  # the header predates CO-RE, or there are no records
    start = hdr_len + core_off
    end = start + core_len
    if hdr_len > len(ext) or end > len(ext) or core_len < 4:
        raise BtfError(f"CO-RE relocation data ({start}..{end}) runs past the section ({len(ext)} bytes)")
    (rec_size,) = _U32.unpack_from(ext, start)
    if rec_size < _RELO.size or rec_size % 4:
        raise BtfError(f"bad CO-RE record size {rec_size}")
    out: list[CoreRelo] = []
    pos = start + 4
    while pos < end:
        if pos + 8 > end:
            raise BtfError("truncated CO-RE section header")
        sec_name_off, num = struct.unpack_from("<II", ext, pos)
        pos += 8
        if pos + num * rec_size > end:
            raise BtfError(f"{num} CO-RE records run past the end of the section")
        section = btf.string(sec_name_off)
        for _ in range(num):
            insn_off, type_id, access_off, kind = _RELO.unpack_from(ext, pos)
            out.append(CoreRelo(section, insn_off, type_id, btf.string(access_off), kind))
            pos += rec_size
    return out


# --- specs ------------------------------------------------------------------------------


@dataclass
class _Acc:
    # For a named member: the id of the struct/union holding it and the member's index. For an
    # array element or the root: the element (root) type's id and the index.
    type_id: int
    idx: int
    name: str | None = None


@dataclass
class _Spec:
    btf: Btf
    root_type_id: int
    accs: list[_Acc] = field(default_factory=list)
    raw: list[int] = field(default_factory=list)
    bit_offset: int = 0


def _composite(btf: Btf, type_id: int) -> bool:
    return btf.type(type_id).kind in (KIND_STRUCT, KIND_UNION)


def _is_flex_array(btf: Btf, prev: _Acc, nelems: int) -> bool:
    # A zero-length array that is the last member of its struct may be indexed past its size.
    if prev.name is None or nelems > 0:
        return False
    return prev.idx == btf.type(prev.type_id).vlen - 1


def _parse_access(access: str) -> list[int]:
    try:
        raw = [int(part) for part in access.split(":")]
    except ValueError:
        raise CoreError(f"malformed access string {access!r}") from None
    if not raw or any(v < 0 for v in raw):
        raise CoreError(f"malformed access string {access!r}")
    if len(raw) > SPEC_MAX_LEN:
        raise CoreError(f"access string {access!r} is deeper than {SPEC_MAX_LEN}")
    return raw


def _local_spec(btf: Btf, type_id: int, access: str, kind: int) -> _Spec:
    raw = _parse_access(access)
    root = btf.resolve(type_id)
    spec = _Spec(btf, type_id, raw=raw)
    spec.accs.append(_Acc(root, raw[0]))
    t = btf.type(root)
    if kind in _ENUMVAL_KINDS:
        if t.kind not in (KIND_ENUM, KIND_ENUM64) or len(raw) > 1 or raw[0] >= len(t.values):
            raise CoreError(f"access {access!r} does not name an enumerator of {btf.type_str(type_id)}")
        spec.accs[0].name = t.values[raw[0]].name
        return spec
    if kind in _TYPE_KINDS:
        if raw != [0]:
            raise CoreError(f"type relocation with access {access!r} (expected '0')")
        return spec
    spec.bit_offset = raw[0] * btf.size(root) * 8
    cur = root
    for idx in raw[1:]:
        cur = btf.resolve(cur)
        t = btf.type(cur)
        if t.kind in (KIND_STRUCT, KIND_UNION):
            if idx >= len(t.members):
                raise CoreError(f"access {access!r}: member {idx} of {btf.type_str(cur)} does not exist")
            m = t.members[idx]
            spec.bit_offset += m.bit_offset
            if m.name:  # anonymous members add their offset but are not accessors
                spec.accs.append(_Acc(cur, idx, m.name))
            cur = m.type
        elif t.kind == KIND_ARRAY:
            elem = btf.resolve(t.elem_type)
            if not _is_flex_array(btf, spec.accs[-1], t.nelems) and idx >= t.nelems:
                raise CoreError(f"access {access!r}: index {idx} is outside {btf.type_str(cur)}")
            spec.accs.append(_Acc(elem, idx))
            spec.bit_offset += idx * btf.size(elem) * 8
            cur = elem
        else:
            raise CoreError(f"access {access!r} goes into {btf.type(cur).describe()}, which has no members")
    return spec


class _Budget:
    """Bounds the work of recursive walks, which malformed BTF could make exponential."""

    def __init__(self, steps: int = 100_000):
        self.left = steps

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise CoreError("BTF too complex to match (reference cycles?)")


def _kinds_compatible(a: int, b: int) -> bool:
    return a == b or (a in (KIND_ENUM, KIND_ENUM64) and b in (KIND_ENUM, KIND_ENUM64))


def _fields_compatible(lbtf: Btf, lid: int, tbtf: Btf, tid: int) -> bool:
    for _ in range(MAX_DEPTH):
        lt = lbtf.resolved(lid)
        tt = tbtf.resolved(tid)
        if lt.kind in (KIND_STRUCT, KIND_UNION) and tt.kind in (KIND_STRUCT, KIND_UNION):
            return True
        if not _kinds_compatible(lt.kind, tt.kind):
            return False
        if lt.kind in (KIND_PTR, KIND_FLOAT):
            return True
        if lt.kind in (KIND_FWD, KIND_ENUM, KIND_ENUM64):
            return essential_name(lt.name) == essential_name(tt.name)
        if lt.kind == KIND_INT:
            # Integers of any size and sign are interchangeable; only the long-deprecated
            # "int with a bit offset" encoding is refused.
            return lt.int_offset == 0 and tt.int_offset == 0
        if lt.kind == KIND_ARRAY:
            lid, tid = lt.elem_type, tt.elem_type
            continue
        return False
    return False


def _types_compatible(lbtf: Btf, lid: int, tbtf: Btf, tid: int, budget: _Budget, depth: int = 0) -> bool:
    budget.spend()
    if depth > MAX_DEPTH:
        return False
    lt = lbtf.resolved(lid)
    tt = tbtf.resolved(tid)
    if not _kinds_compatible(lt.kind, tt.kind):
        return False
    if lt.kind in (0, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_ENUM64, KIND_FWD, KIND_FLOAT):
        return True
    if lt.kind == KIND_INT:
        return lt.int_offset == 0 and tt.int_offset == 0
    if lt.kind == KIND_PTR:
        return _types_compatible(lbtf, lt.type or 0, tbtf, tt.type or 0, budget, depth + 1)
    if lt.kind == KIND_ARRAY:
        return _types_compatible(lbtf, lt.elem_type, tbtf, tt.elem_type, budget, depth + 1)
    if lt.kind == KIND_FUNC_PROTO:
        if len(lt.params) != len(tt.params):
            return False
        for lp, tp in zip(lt.params, tt.params, strict=True):
            if not _types_compatible(lbtf, lp.type, tbtf, tp.type, budget, depth + 1):
                return False
        return _types_compatible(lbtf, lt.type or 0, tbtf, tt.type or 0, budget, depth + 1)
    return False


def _match_member(local: _Spec, lacc: _Acc, tbtf: Btf, tid: int, spec: _Spec, budget: _Budget,
                  depth: int = 0) -> int | None:
    """Find ``lacc``'s member in target composite ``tid`` (through anonymous members), pushing
    accessors onto ``spec``. Returns the matched member's type id, or None."""
    budget.spend()
    if depth > MAX_DEPTH:
        return None
    lbtf = local.btf
    lmember = lbtf.type(lacc.type_id).members[lacc.idx]
    tid = tbtf.resolve(tid)
    tt = tbtf.type(tid)
    if tt.kind not in (KIND_STRUCT, KIND_UNION):
        return None
    for i, m in enumerate(tt.members):
        if len(spec.raw) >= SPEC_MAX_LEN:
            raise CoreError("target access path is too deep")
        spec.bit_offset += m.bit_offset
        spec.raw.append(i)
        if not m.name:
            found = _match_member(local, lacc, tbtf, m.type, spec, budget, depth + 1)
            if found is not None:
                return found
        elif m.name == lmember.name:
            if not _fields_compatible(lbtf, lmember.type, tbtf, m.type):
                return None
            spec.accs.append(_Acc(tid, i, m.name))
            return m.type
        spec.bit_offset -= m.bit_offset
        spec.raw.pop()
    return None


def _match(local: _Spec, kind: int, tbtf: Btf, cand_id: int) -> _Spec | None:
    """The target spec for candidate ``cand_id``, or None if the candidate does not match."""
    lbtf = local.btf
    spec = _Spec(tbtf, cand_id, raw=[local.raw[0]])
    if kind in _TYPE_KINDS:
        return spec if _types_compatible(lbtf, local.root_type_id, tbtf, cand_id, _Budget()) else None
    if kind in _ENUMVAL_KINDS:
        tt = tbtf.resolved(cand_id)
        if tt.kind not in (KIND_ENUM, KIND_ENUM64):
            return None
        want = essential_name(local.accs[0].name or "")
        for i, v in enumerate(tt.values):
            if essential_name(v.name) == want:
                spec.accs.append(_Acc(tt.id, i, v.name))
                spec.raw = [i]
                return spec
        return None
    spec.raw = []
    tid = cand_id
    for i, lacc in enumerate(local.accs):
        tid = tbtf.resolve(tid)
        if lacc.name is not None:
            found = _match_member(local, lacc, tbtf, tid, spec, _Budget())
            if found is None:
                return None
            tid = found
            continue
        if i > 0:
            tt = tbtf.type(tid)
            if tt.kind != KIND_ARRAY:
                return None
            if not _is_flex_array(tbtf, spec.accs[-1], tt.nelems) and lacc.idx >= tt.nelems:
                return None
            tid = tbtf.resolve(tt.elem_type)
        spec.accs.append(_Acc(tid, lacc.idx))
        spec.raw.append(lacc.idx)
        spec.bit_offset += lacc.idx * tbtf.size(tid) * 8
    return spec


# --- values -----------------------------------------------------------------------------


@dataclass
class _Value:
    value: int
    validate: bool = True
    mem_size: int = 0  # byte size of the field for load/store size adjustment (0: none)
    mem_type: int = 0  # its resolved type id


def _field_value(spec: _Spec | None, kind: int) -> _Value:
    if kind == FIELD_EXISTS:
        return _Value(1 if spec is not None else 0)
    if spec is None:
        raise CoreError("the field does not exist in the target BTF")
    btf = spec.btf
    acc = spec.accs[-1]
    if acc.name is None:  # the last step is an array element (or the root itself)
        size = btf.size(acc.type_id)
        if kind == FIELD_BYTE_OFFSET:
            return _Value(spec.bit_offset // 8, True, size, acc.type_id)
        if kind == FIELD_BYTE_SIZE:
            return _Value(size)
        raise CoreError(f"{RELO_KIND_NAMES[kind]} cannot be applied to an array element")
    holder = btf.type(acc.type_id)
    member = holder.members[acc.idx]
    mtype_id = btf.resolve(member.type)
    mt = btf.type(mtype_id)
    bit_off = spec.bit_offset
    bit_size = member.bitfield_size
    bitfield = bit_size > 0
    if bitfield:
        # The smallest naturally aligned load (of at least the declared type's size) that
        # covers every bit of the field.
        byte_size = mt.size or 0
        if byte_size <= 0:
            raise CoreError(f"bitfield of {mt.describe()} has no size")
        byte_off = bit_off // 8 // byte_size * byte_size
        while bit_off + bit_size - byte_off * 8 > byte_size * 8:
            if byte_size >= 8:
                raise CoreError("bitfield cannot be read with one 64-bit load")
            byte_size *= 2
            byte_off = bit_off // 8 // byte_size * byte_size
    else:
        byte_size = btf.size(mtype_id)
        byte_off = bit_off // 8
        bit_size = byte_size * 8
    if kind == FIELD_BYTE_OFFSET:
        # The compiler's guess at a bitfield's load offset may legitimately differ from ours.
        if bitfield:
            return _Value(byte_off, False)
        return _Value(byte_off, True, byte_size, mtype_id)
    if kind == FIELD_BYTE_SIZE:
        return _Value(byte_size, not bitfield)
    if kind == FIELD_SIGNED:
        return _Value(int(mt.signed))
    if kind == FIELD_LSHIFT_U64:  # little-endian target
        return _Value(64 - (bit_off + bit_size - byte_off * 8), not bitfield)
    if kind == FIELD_RSHIFT_U64:
        return _Value(64 - bit_size)
    raise CoreError(f"unsupported field relocation kind {kind}")


def _type_value(spec: _Spec | None, kind: int) -> _Value:
    if spec is None:
        if kind == TYPE_EXISTS:
            return _Value(0)
        raise CoreError("the type does not exist in the target BTF")
    if kind in (TYPE_ID_TARGET, TYPE_ID_LOCAL):
        # Type ids change when objects are linked; the compiler's value is not checkable.
        return _Value(spec.root_type_id, False)
    if kind == TYPE_EXISTS:
        return _Value(1)
    if kind == TYPE_SIZE:
        return _Value(spec.btf.size(spec.root_type_id))
    raise CoreError(f"unsupported type relocation kind {kind}")


def _enum_value(spec: _Spec | None, kind: int) -> _Value:
    if kind == ENUMVAL_EXISTS:
        return _Value(1 if spec is not None else 0)
    if spec is None:
        raise CoreError("the enumerator does not exist in the target BTF")
    acc = spec.accs[-1]
    return _Value(spec.btf.resolved(acc.type_id).values[acc.idx].value)


def _value(spec: _Spec | None, kind: int) -> _Value:
    if kind in _FIELD_KINDS:
        return _field_value(spec, kind)
    if kind in _TYPE_KINDS:
        return _type_value(spec, kind)
    return _enum_value(spec, kind)


@dataclass
class _Result:
    orig: _Value
    new: _Value
    memsz_ok: bool = True


def _resolve(relo: CoreRelo, local: Btf, target: Btf | None) -> _Result:
    kind = relo.kind
    if kind not in RELO_KIND_NAMES:
        raise CoreError(f"unknown CO-RE relocation kind {kind}")
    if kind == TYPE_MATCHES:
        raise CoreError("type_matches relocations (bpf_core_type_matches) are not supported")
    local_spec = _local_spec(local, relo.type_id, relo.access, kind)
    orig = _value(local_spec, kind)
    if kind == TYPE_ID_LOCAL:
        return _Result(orig, orig)
    if target is None:
        raise CoreError("no target BTF to resolve it against")
    local_type = local.type(relo.type_id)
    if not local_type.name:
        raise CoreError(f"local type {local_type.describe()} is anonymous, so it has no counterpart to look up")
    results: list[tuple[int, _Result]] = []
    for cand_id in target.find_essential(essential_name(local_type.name)):
        if not _kinds_compatible(target.type(cand_id).kind, local_type.kind):
            continue
        spec = _match(local_spec, kind, target, cand_id)
        if spec is None:
            continue
        new = _value(spec, kind)
        res = _Result(orig, new)
        if kind == FIELD_BYTE_OFFSET and orig.mem_size and new.mem_size != orig.mem_size:
            # A field that changed size can still be loaded when the value zero-extends the
            # same way: a pointer, or an unsigned integer (libbpf's rule).
            lt = local.type(orig.mem_type)
            tt = target.type(new.mem_type)
            res.memsz_ok = (lt.kind == KIND_PTR and tt.kind == KIND_PTR) or (
                lt.kind == KIND_INT and tt.kind == KIND_INT and not lt.signed and not tt.signed)
        if results and (results[0][1].new.value != new.value):
            first = results[0][0]
            raise CoreError(f"ambiguous: target types [{first}] and [{cand_id}] give different values "
                            f"({results[0][1].new.value} and {new.value})")
        results.append((cand_id, res))
    if results:
        return results[0][1]
    return _Result(orig, _value(None, kind))


def apply_core_relo(code: bytearray, slot: int, relo: CoreRelo, local: Btf, target: Btf | None) -> None:
    """Resolve ``relo`` and patch the instruction at ``slot`` of ``code`` (a section's bytes).
    Raises :class:`CoreError` (or :class:`~bpfmc.ebpf.btf.BtfError` for broken BTF)."""
    if slot < 0 or (slot + 1) * 8 > len(code):
        raise CoreError(f"instruction {slot} is outside the section")
    res = _resolve(relo, local, target)
    opcode, regs, off, imm = _SLOT.unpack_from(code, slot * 8)
    cls = opcode & 0x07
    orig, new = res.orig.value, res.new.value
    check = res.orig.validate
    if cls in (op.BPF_ALU, op.BPF_ALU64):
        if opcode & op.BPF_X:
            raise CoreError(f"cannot patch ALU instruction 0x{opcode:02x} with a register operand")
        if check and imm & 0xFFFFFFFF != orig & 0xFFFFFFFF:
            raise CoreError(f"instruction immediate is {imm}, expected {orig} from the local BTF")
        if not -(1 << 31) <= new < (1 << 32):
            raise CoreError(f"value {new} does not fit a 32-bit immediate")
        _SLOT.pack_into(code, slot * 8, opcode, regs, off, _s32(new))
    elif cls in (op.BPF_LDX, op.BPF_ST, op.BPF_STX):
        if check and off != orig:
            raise CoreError(f"instruction offset is {off}, expected {orig} from the local BTF")
        if not 0 <= new <= 0x7FFF:
            raise CoreError(f"offset {new} does not fit the instruction's 16-bit offset")
        if not res.memsz_ok:
            raise CoreError("the field changed size and its type does not allow adjusting the load/store "
                            "(only pointers and unsigned integers can be)")
        if relo.kind == FIELD_BYTE_OFFSET and res.orig.mem_size and res.new.mem_size != res.orig.mem_size:
            have = op.SIZE_BYTES[opcode & 0x18]
            if have != res.orig.mem_size:
                raise CoreError(f"memory access is {have} bytes, expected {res.orig.mem_size} from the local BTF")
            sizes = {1: op.BPF_B, 2: op.BPF_H, 4: op.BPF_W, 8: op.BPF_DW}
            if res.new.mem_size not in sizes:
                raise CoreError(f"field is {res.new.mem_size} bytes in the target: no load of that size")
            opcode = (opcode & ~0x18) | sizes[res.new.mem_size]
        _SLOT.pack_into(code, slot * 8, opcode, regs, new, imm)
    elif opcode == op.LDDW:
        if (slot + 2) * 8 > len(code):
            raise CoreError("lddw is truncated")
        nop, nregs, noff, nimm = _SLOT.unpack_from(code, (slot + 1) * 8)
        if regs >> 4 or off or nop or nregs or noff:
            raise CoreError("lddw has an unexpected form (pseudo source or non-zero reserved fields)")
        value = (imm & 0xFFFFFFFF) | ((nimm & 0xFFFFFFFF) << 32)
        if check and value != orig & 0xFFFFFFFFFFFFFFFF:
            raise CoreError(f"lddw immediate is {value}, expected {orig} from the local BTF")
        new &= 0xFFFFFFFFFFFFFFFF
        _SLOT.pack_into(code, slot * 8, opcode, regs, off, _s32(new))
        _SLOT.pack_into(code, (slot + 1) * 8, 0, 0, 0, _s32(new >> 32))
    else:
        raise CoreError(f"cannot patch instruction with opcode 0x{opcode:02x}")


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v
