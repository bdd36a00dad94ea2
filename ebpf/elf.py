"""ELF object loader: what ``clang -O2 -g -target bpf -c prog.c`` produces, read as libbpf reads it.

An object holds programs (functions in executable sections whose names give their type:
``SEC("xdp")``, ``SEC("kprobe/...")``), subprograms (functions in ``.text``), maps (BTF-defined
in ``.maps``, legacy ``struct bpf_map_def`` in ``maps``), global variables (``.data``,
``.rodata``, ``.bss``, each of which becomes a one-element array map, as libbpf does) and
relocations tying the code to all of these. :func:`load_object` turns it into an
:class:`ObjectFile`: one self-contained :class:`~bpfmc.ebpf.program.Program` per entry
function, and a list of :class:`~bpfmc.ebpf.maps.MapSpec`.

How map references appear in program code (the contract with the verifier and the engine):

* a map: ``lddw rX, <map>`` becomes ``src = BPF_PSEUDO_MAP_IDX (5)``, first-slot ``imm`` =
  the map's index in :attr:`ObjectFile.maps`, second-slot ``imm`` = 0;
* a global variable (an address inside a global-data map): ``src = BPF_PSEUDO_MAP_IDX_VALUE
  (6)``, first-slot ``imm`` = map index, second-slot ``imm`` = byte offset in the map's value
  (symbol value plus the addend the compiler left in the instruction, as libbpf computes it);
* a callback (``bpf_loop(n, cb, ...)``): ``src = BPF_PSEUDO_FUNC (4)``, first-slot ``imm`` =
  slot offset of the callback relative to the next instruction (the kernel's convention),
  second-slot ``imm`` = 0;
* a bpf-to-bpf call: ``call`` with ``src = BPF_PSEUDO_CALL (1)`` and a relative ``imm``.

Subprograms a program calls (transitively, including callbacks) are appended after its own
code, each once, as libbpf does; ``Program.meta["functions"]`` records where each starts.

Unsupported, each refused with an :class:`ElfError` naming what was found: big-endian or
32-bit objects, non-BPF machines, ``SHT_RELA`` relocations, ``extern`` variables and kfuncs
(relocations against undefined symbols: ``.kconfig``, ``.ksyms``), ``struct_ops`` and arena
sections, program types the engine cannot run (cgroup, lsm, sk_msg, ...), unknown
executable section names (libbpf refuses those too, unless told the type: see
``section_types``), and ``bpf_core_type_matches``. Relocations inside global data (a
pointer initialised to another variable's address) are ignored as libbpf ignores them;
``.BTF.ext`` func_info and line_info are skipped; a ``version`` section is ignored.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.construct import ConstructError
from elftools.elf.elffile import ELFFile

from . import maps as M
from . import opcodes as op
from .btf import KIND_ARRAY, KIND_DATASEC, KIND_FUNC_PROTO, KIND_PTR, KIND_STRUCT, KIND_VAR, VAR_STATIC, Btf, BtfError
from .core import TYPE_ID_LOCAL, CoreError, CoreRelo, apply_core_relo, parse_core_relos
from .maps import MapSpec
from .program import Program, canonical_type
from .validate import ValidationError, validate

__all__ = ["ElfError", "NotFound", "ObjectFile", "load_object", "program_type_for_section", "VMLINUX_BTF"]

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")

EM_BPF = 247
_MACHINE_NAMES = {0: "none", 3: "i386", 8: "MIPS", 20: "PowerPC", 21: "PowerPC64", 22: "s390", 40: "ARM",
                  62: "x86-64", 183: "AArch64", 243: "RISC-V", 258: "LoongArch"}

# ELF relocation types of the BPF backend (llvm's docs/BPF "BPF LLVM Relocations").
R_BPF_NONE = 0
R_BPF_64_64 = 1  # lddw: map, global variable or function address
R_BPF_64_ABS64 = 2  # 64-bit data word (the .maps "values" arrays)
R_BPF_64_ABS32 = 3
R_BPF_64_NODYLD32 = 4  # .BTF/.BTF.ext bookkeeping, nothing to do at load time
R_BPF_64_32 = 10  # call: bpf-to-bpf
_RELOC_NAMES = {0: "R_BPF_NONE", 1: "R_BPF_64_64", 2: "R_BPF_64_ABS64", 3: "R_BPF_64_ABS32",
                4: "R_BPF_64_NODYLD32", 10: "R_BPF_64_32"}

SHF_EXECINSTR = 0x4
_BPF_MAP_DEF = struct.Struct("<IIIII")  # struct bpf_map_def: type, key_size, value_size, max_entries, map_flags
_SLOT = struct.Struct("<BBhi")


class ElfError(ValueError):
    """The object is not something we can load: malformed, truncated, or using a feature that
    is not supported. The message names the section, symbol and relocation involved."""


# --- section names -> program types --------------------------------------------------------

# (section name, our program type, kernel program type). A rule matches the name itself and
# the name followed by "/..." (libbpf's "+" definitions), unless it is listed in _EXACT.
_SECTION_RULES: tuple[tuple[str, str, str], ...] = (
    ("xdp", "xdp", "xdp"),
    ("xdp.frags", "xdp", "xdp"),
    ("socket", "socket_filter", "socket_filter"),
    ("tc", "sched_cls", "sched_cls"),
    ("classifier", "sched_cls", "sched_cls"),
    ("tcx/ingress", "sched_cls", "sched_cls"),
    ("tcx/egress", "sched_cls", "sched_cls"),
    ("netkit/primary", "sched_cls", "sched_cls"),
    ("netkit/peer", "sched_cls", "sched_cls"),
    # Tracing: the engine runs these as ``raw`` (the event bytes are the context); meta keeps
    # the kernel's type and the attach point for whoever wants to know.
    ("kprobe", "raw", "kprobe"),
    ("kretprobe", "raw", "kprobe"),
    ("ksyscall", "raw", "kprobe"),
    ("kretsyscall", "raw", "kprobe"),
    ("kprobe.multi", "raw", "kprobe"),
    ("kretprobe.multi", "raw", "kprobe"),
    ("kprobe.session", "raw", "kprobe"),
    ("uprobe", "raw", "kprobe"),
    ("uretprobe", "raw", "kprobe"),
    ("uprobe.s", "raw", "kprobe"),
    ("uretprobe.s", "raw", "kprobe"),
    ("uprobe.multi", "raw", "kprobe"),
    ("uretprobe.multi", "raw", "kprobe"),
    ("uprobe.multi.s", "raw", "kprobe"),
    ("uretprobe.multi.s", "raw", "kprobe"),
    ("uprobe.session", "raw", "kprobe"),
    ("usdt", "raw", "kprobe"),
    ("usdt.s", "raw", "kprobe"),
    ("tracepoint", "raw", "tracepoint"),
    ("tp", "raw", "tracepoint"),
    ("raw_tracepoint", "raw", "raw_tracepoint"),
    ("raw_tp", "raw", "raw_tracepoint"),
    ("raw_tracepoint.w", "raw", "raw_tracepoint_writable"),
    ("raw_tp.w", "raw", "raw_tracepoint_writable"),
    ("tp_btf", "raw", "tracing"),
    ("fentry", "raw", "tracing"),
    ("fexit", "raw", "tracing"),
    ("fmod_ret", "raw", "tracing"),
    ("fentry.s", "raw", "tracing"),
    ("fexit.s", "raw", "tracing"),
    ("fmod_ret.s", "raw", "tracing"),
    ("perf_event", "raw", "perf_event"),
)
_EXACT = frozenset({"tcx/ingress", "tcx/egress", "netkit/primary", "netkit/peer"})
_RULES_BY_NAME = {name: (ptype, ktype) for name, ptype, ktype in _SECTION_RULES}

# Section prefixes libbpf knows whose program types the engine cannot run: named in the error
# so that the user learns "not supported" rather than "unknown".
_UNSUPPORTED_PREFIXES = (
    "action", "cgroup", "cgroup_skb", "sk_skb", "sk_msg", "sk_lookup", "sk_reuseport", "sockops",
    "lsm", "lsm.s", "lsm_cgroup", "iter", "iter.s", "struct_ops", "struct_ops.s", "syscall",
    "flow_dissector", "lwt_in", "lwt_out", "lwt_xmit", "lwt_seg6local", "lirc_mode2", "netfilter",
    "freplace", "sk_reuseport/migrate", "cgroup_sock", "cgroup_sock_addr", "cgroup_sysctl",
    "cgroup_sockopt", "cgroup_device", "xdp/devmap", "xdp/cpumap", "xdp.frags/devmap", "xdp.frags/cpumap",
)
# XDP programs for devmap/cpumap entries run in another context than packet XDP: refused.
_XDP_MAP_PROGRAMS = ("xdp/devmap", "xdp/cpumap", "xdp.frags/devmap", "xdp.frags/cpumap")


@dataclass(frozen=True)
class SectionType:
    """What a program section's name says: our type, the kernel's, the attach target."""

    prog_type: str
    kernel_type: str
    attach: str = ""
    autoload: bool = True


def program_type_for_section(section: str, overrides: Mapping[str, str] | None = None) -> SectionType:
    """Map a libbpf section name to a program type; :class:`ElfError` for unknown or unsupported
    names. ``overrides`` maps exact section names to a program type (``"raw"``, ``"xdp"``, ...)."""
    name = section
    autoload = True
    if name.startswith("?"):  # libbpf: "?xdp" declares a program that is not loaded by default
        name, autoload = name[1:], False
    if overrides and section in overrides:
        try:
            ptype = canonical_type(overrides[section])
        except ValueError as e:
            raise ElfError(f"section {section!r}: {e}") from None
        return SectionType(ptype, ptype, "", autoload)
    if name in _EXACT:
        rule = _RULES_BY_NAME[name]
        return SectionType(rule[0], rule[1], "", autoload)
    head, _, rest = name.partition("/")
    rule = _RULES_BY_NAME.get(head)
    if rule is not None and not name.startswith(_XDP_MAP_PROGRAMS):
        return SectionType(rule[0], rule[1], rest, autoload)
    for prefix in _UNSUPPORTED_PREFIXES:
        if name == prefix or name.startswith(prefix + "/") or head == prefix:
            raise ElfError(f"section {section!r}: program type {prefix!r} is not supported "
                           f"(supported: xdp, socket, tc/classifier, and tracing sections loaded as raw)")
    raise ElfError(f"section {section!r}: unknown program section name (libbpf conventions: xdp, socket, tc, "
                   f"kprobe/..., tracepoint/..., raw_tp/..., perf_event, fentry/..., ...); "
                   f"pass section_types={{{section!r}: 'raw'}} to load it anyway")


# --- the result ----------------------------------------------------------------------------


class NotFound(KeyError):
    """A program or map that is not in the object; the message lists what is."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0]) if self.args else ""



@dataclass(frozen=True)
class ObjectFile:
    """Programs keyed by function name, maps in index order (the ``imm`` of ``lddw`` with
    ``src=5``/``6``), the license string, and the object's BTF (or None)."""

    programs: dict[str, Program]
    maps: list[MapSpec]
    license: str = ""
    btf: Btf | None = None
    source: str = "<bytes>"

    def program(self, name_or_section: str) -> Program:
        """A program by function name, or by section name when that section holds exactly one."""
        if name_or_section in self.programs:
            return self.programs[name_or_section]
        hits = [p for p in self.programs.values() if p.meta.get("section") == name_or_section]
        if len(hits) == 1:
            return hits[0]
        listing = ", ".join(f"{n} ({p.meta.get('section')})" for n, p in self.programs.items()) or "none"
        if hits:
            names = ", ".join(p.name for p in hits)
            raise NotFound(f"section {name_or_section!r} of {self.source} holds several programs ({names}); "
                           f"name one")
        raise NotFound(f"no program or section {name_or_section!r} in {self.source} (programs: {listing})")

    def map_index(self, name: str) -> int:
        for i, m in enumerate(self.maps):
            if m.name == name:
                return i
        raise NotFound(f"no map {name!r} in {self.source} (maps: {', '.join(m.name for m in self.maps) or 'none'})")

    def map(self, name: str) -> MapSpec:
        return self.maps[self.map_index(name)]


# --- loading -------------------------------------------------------------------------------


def load_object(
    path_or_bytes: str | os.PathLike | bytes | bytearray | memoryview,
    *,
    target_btf: str | os.PathLike | Btf | None = None,
    section_types: Mapping[str, str] | None = None,
) -> ObjectFile:
    """Load an eBPF ELF object. ``target_btf``: the BTF that CO-RE relocations are resolved
    against (a path or a parsed :class:`Btf`); default ``/sys/kernel/btf/vmlinux``, read only
    when the object has CO-RE relocations. ``section_types``: program types for executable
    sections whose names libbpf would not recognise (``{".text": "raw"}`` makes the functions
    of ``.text``, normally subprograms only, programs too). Raises :class:`ElfError`."""
    path_given = not isinstance(path_or_bytes, bytes | bytearray | memoryview)
    if not path_given:
        data, source = bytes(path_or_bytes), "<bytes>"
    else:
        source = os.fspath(path_or_bytes)
        try:
            data = Path(source).read_bytes()
        except OSError as e:
            raise ElfError(f"{source}: cannot read: {e.strerror or e}") from e
    loader = _Loader(data, source, target_btf, section_types or {})
    try:
        return loader.load()
    except ElfError as e:
        if path_given:  # say which file; for bytes there is nothing to add
            raise ElfError(f"{source}: {e}") from e.__cause__
        raise
    except (ELFError, ConstructError, struct.error, UnicodeDecodeError) as e:
        # pyelftools met something our own checks let through: still the input's fault.
        raise ElfError(f"{source}: malformed ELF object: {e}") from e


@dataclass
class _Section:
    index: int
    name: str
    type: str
    flags: int
    size: int
    link: int
    info: int
    entsize: int
    data: bytes  # b"" for SHT_NOBITS

    @property
    def is_code(self) -> bool:
        return self.type == "SHT_PROGBITS" and bool(self.flags & SHF_EXECINSTR)


@dataclass
class _Symbol:
    index: int
    name: str
    value: int
    size: int
    type: str  # STT_*
    bind: str  # STB_*
    shndx: int | None  # None: undefined, absolute or common
    placement: str = ""  # why shndx is None ("undefined", "common", ...)

    def describe(self) -> str:
        return f"symbol {self.name!r}" if self.name else f"symbol #{self.index}"


@dataclass
class _Func:
    name: str
    section: int
    start: int  # slot index in the section
    end: int  # one past the last slot
    is_global: bool


@dataclass
class _Target:
    """Where a call or function-address load points: a slot of a code section."""

    section: int
    slot: int
    what: str  # for messages: the relocation that produced it


@dataclass
class _Code:
    section: _Section
    code: bytearray
    funcs: list[_Func] = field(default_factory=list)
    # slot -> target of a bpf-to-bpf call (call src=1) or function address (lddw src=4)
    targets: dict[int, _Target] = field(default_factory=dict)
    relocated: set[int] = field(default_factory=set)


class _Loader:
    def __init__(self, data: bytes, source: str, target_btf: str | os.PathLike | Btf | None,
                 section_types: Mapping[str, str]):
        self.data = data
        self.source = source
        self.target_arg = target_btf
        self.section_types = section_types
        self.sections: list[_Section] = []
        self.symbols: list[_Symbol] = []
        self.btf: Btf | None = None
        self.maps: list[MapSpec] = []
        self.map_at: dict[tuple[int, int], int] = {}  # (section index, offset) -> map index
        self.data_map: dict[int, int] = {}  # section index -> global-data map index
        self.values_offsets: dict[int, int | None] = {}  # map index -> byte offset of its "values"
        self.code: dict[int, _Code] = {}
        self._target_btf: Btf | None = None
        self.symtab: _Section | None = None
        self.core_relos: list[CoreRelo] = []

    # --- ELF structure ------------------------------------------------------------------

    def _check_header(self) -> None:
        d = self.data
        if len(d) < 4 or d[:4] != b"\x7fELF":
            raise ElfError("not an ELF file (bad magic)")
        if len(d) < 64:
            raise ElfError(f"truncated ELF header ({len(d)} bytes, need 64)")
        if d[4] == 1:
            raise ElfError("32-bit ELF object: eBPF objects are ELF64")
        if d[4] != 2:
            raise ElfError(f"bad ELF class {d[4]}")
        if d[5] == 2:
            raise ElfError("big-endian object (-target bpfeb): only little-endian eBPF is supported")
        if d[5] != 1:
            raise ElfError(f"bad ELF data encoding {d[5]}")
        e_type, e_machine = struct.unpack_from("<HH", d, 16)
        if e_machine != EM_BPF:
            mname = _MACHINE_NAMES.get(e_machine, "unknown")
            raise ElfError(f"ELF machine is {e_machine} ({mname}), not BPF ({EM_BPF}): "
                           f"was it compiled without -target bpf?")
        if e_type != 1:
            raise ElfError(f"ELF type is {e_type}, not a relocatable object (ET_REL): link-time output "
                           f"and executables are not eBPF objects")
        (shoff,) = struct.unpack_from("<Q", d, 40)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", d, 58)
        if shnum == 0 or shoff == 0:
            raise ElfError("ELF object has no section headers (or uses extended section numbering)")
        if shentsize != 64:
            raise ElfError(f"ELF section header size is {shentsize}, expected 64")
        if shoff + shnum * 64 > len(d):
            raise ElfError(f"section header table ({shnum} entries at offset {shoff}) runs past the end "
                           f"of the file ({len(d)} bytes): truncated?")
        if shstrndx >= shnum:
            raise ElfError(f"section name table index {shstrndx} is not a section ({shnum} sections)")
        # The name table is read by pyelftools before we can look at it: check it first.
        sh_type, = struct.unpack_from("<I", d, shoff + shstrndx * 64 + 4)
        str_off, str_size = struct.unpack_from("<QQ", d, shoff + shstrndx * 64 + 24)
        if sh_type != 3 or str_off + str_size > len(d):
            raise ElfError("section name table is not a string table inside the file: truncated or corrupt")

    def _read_sections(self) -> None:
        elf = ELFFile(io.BytesIO(self.data))
        n = elf.num_sections()
        for i in range(n):
            try:
                sec = elf.get_section(i)
            except (ELFError, ConstructError, struct.error, UnicodeDecodeError) as e:
                raise ElfError(f"section #{i}: malformed section header: {e}") from None
            h = sec.header
            stype = h["sh_type"]
            stype = stype if isinstance(stype, str) else f"type {stype}"
            name = sec.name
            size = h["sh_size"]
            if stype == "SHT_NOBITS" or stype == "SHT_NULL":
                body = b""
            else:
                off = h["sh_offset"]
                if off + size > len(self.data):
                    raise ElfError(f"section {name!r} (#{i}, {size} bytes at offset {off}) runs past the end of "
                                   f"the file ({len(self.data)} bytes): truncated?")
                body = self.data[off:off + size]
            self.sections.append(_Section(i, name, stype, h["sh_flags"], size, h["sh_link"], h["sh_info"],
                                          h["sh_entsize"], body))

    def _section(self, index: int | None) -> _Section | None:
        if index is None or not 0 <= index < len(self.sections):
            return None
        return self.sections[index]

    def _read_symbols(self) -> None:
        tabs = [s for s in self.sections if s.type == "SHT_SYMTAB"]
        if not tabs:
            raise ElfError("no symbol table (.symtab): was the object stripped?")
        if len(tabs) > 1:
            raise ElfError(f"{len(tabs)} symbol tables; expected one")
        tab = tabs[0]
        if tab.entsize != 24 or tab.size % 24:
            raise ElfError(f"section {tab.name!r}: symbol entry size {tab.entsize}, table size {tab.size} "
                           f"(expected 24-byte entries)")
        strtab = self._section(tab.link)
        if strtab is None or strtab.type != "SHT_STRTAB":
            raise ElfError(f"section {tab.name!r}: its string table (section #{tab.link}) is not a string table")
        names = strtab.data
        for i in range(tab.size // 24):
            st_name, st_info, _st_other, st_shndx, st_value, st_size = struct.unpack_from("<IBBHQQ", tab.data, i * 24)
            if st_name >= len(names) and st_name:
                raise ElfError(f"section {tab.name!r}: symbol #{i} name offset {st_name} is outside "
                               f"{strtab.name!r} ({len(names)} bytes)")
            end = names.find(b"\0", st_name)
            if end < 0:
                raise ElfError(f"section {strtab.name!r}: symbol #{i} name is not NUL-terminated")
            name = names[st_name:end].decode("utf-8", errors="replace")
            stype = _STT.get(st_info & 0xF, f"STT_{st_info & 0xF}")
            bind = _STB.get(st_info >> 4, f"STB_{st_info >> 4}")
            # SHN_UNDEF (0) and the reserved range (SHN_LORESERVE 0xff00 and up: ABS, COMMON,
            # XINDEX) have no section to point into.
            shndx = st_shndx if 0 < st_shndx < 0xFF00 else None
            where = {0: "undefined", 0xFFF1: "absolute", 0xFFF2: "common"}.get(st_shndx, "in no section")
            if shndx is not None and shndx >= len(self.sections):
                raise ElfError(f"section {tab.name!r}: symbol {name or '#' + str(i)!r} is in section #{shndx}, "
                               f"which does not exist")
            self.symbols.append(_Symbol(i, name, st_value, st_size, stype, bind, shndx, where))
        self.symtab = tab

    def _symbols_in(self, index: int) -> list[_Symbol]:
        return [s for s in self.symbols if s.shndx == index]

    def _relocations(self, target: _Section) -> list[tuple[int, int, _Symbol, str]]:
        """``(offset, type, symbol, description)`` of every relocation against ``target``."""
        out: list[tuple[int, int, _Symbol, str]] = []
        for rel in self.sections:
            if rel.info != target.index or rel.type not in ("SHT_REL", "SHT_RELA"):
                continue
            if rel.type == "SHT_RELA":
                raise ElfError(f"section {rel.name!r}: RELA relocations are not used by eBPF objects (unsupported)")
            if rel.entsize != 16 or rel.size % 16:
                raise ElfError(f"section {rel.name!r}: relocation entry size {rel.entsize}, section size {rel.size} "
                               f"(expected 16-byte entries)")
            assert self.symtab is not None
            if rel.link != self.symtab.index:
                raise ElfError(f"section {rel.name!r}: relocations refer to section #{rel.link}, not the symbol table")
            for i in range(rel.size // 16):
                r_offset, r_info = struct.unpack_from("<QQ", rel.data, i * 16)
                sym_index, rtype = r_info >> 32, r_info & 0xFFFFFFFF
                desc = f"section {rel.name!r} relocation #{i} ({_RELOC_NAMES.get(rtype, f'type {rtype}')} at " \
                       f"offset {r_offset})"
                if not 0 < sym_index < len(self.symbols):
                    raise ElfError(f"{desc}: symbol index {sym_index} is not a symbol")
                out.append((r_offset, rtype, self.symbols[sym_index], desc))
        return out

    # --- top level ------------------------------------------------------------------------

    def load(self) -> ObjectFile:
        self._check_header()
        self._read_sections()
        self._read_symbols()
        license_ = ""
        for sec in self.sections:
            if sec.name == "license":
                license_ = sec.data.split(b"\0", 1)[0].decode("utf-8", errors="replace")
            elif sec.name.startswith((".struct_ops", ".addr_space", ".arena")) and sec.size:
                raise ElfError(f"section {sec.name!r}: struct_ops and arena objects are not supported")
        self._read_btf()
        self._legacy_maps()
        self._btf_maps()
        self._data_maps()
        self._read_code()
        self._apply_core()
        for code in self.code.values():
            self._relocate(code)
        programs = self._build_programs(license_)
        return ObjectFile(programs, self.maps, license_, self.btf, self.source)

    # --- BTF ------------------------------------------------------------------------------

    def _read_btf(self) -> None:
        btf_sec = next((s for s in self.sections if s.name == ".BTF"), None)
        if btf_sec is None:
            return
        try:
            self.btf = Btf.parse(btf_sec.data, "section '.BTF'")
        except BtfError as e:
            raise ElfError(str(e)) from None
        ext = next((s for s in self.sections if s.name == ".BTF.ext"), None)
        if ext is not None:
            try:
                self.core_relos = parse_core_relos(ext.data, self.btf)
            except BtfError as e:
                raise ElfError(f"section '.BTF.ext': {e}") from None

    def _btf_call(self, where: str, fn, *args):
        """Run a BTF query, turning malformed-BTF errors into ElfErrors that say where."""
        try:
            return fn(*args)
        except BtfError as e:
            raise ElfError(f"{where}: {e}") from None

    def _fields(self, type_id: int) -> tuple[M.IntField, ...] | None:
        if self.btf is None or not type_id:
            return None
        fields = self.btf.int_fields(type_id)
        return tuple(fields) if fields is not None else None

    # --- maps -----------------------------------------------------------------------------

    def _add_map(self, spec: MapSpec, section: int, offset: int) -> None:
        if any(m.name == spec.name for m in self.maps):
            raise ElfError(f"section {spec.section!r}: two maps are named {spec.name!r}")
        if (section, offset) in self.map_at:
            other = self.maps[self.map_at[(section, offset)]].name
            raise ElfError(f"section {spec.section!r}: maps {other!r} and {spec.name!r} are both at offset {offset}")
        self.map_at[(section, offset)] = len(self.maps)
        self.maps.append(spec)

    def _legacy_maps(self) -> None:
        sec = next((s for s in self.sections if s.name == "maps"), None)
        if sec is None:
            return
        syms = sorted((s for s in self._symbols_in(sec.index) if s.type not in ("STT_SECTION", "STT_FILE")),
                      key=lambda s: s.value)
        if not syms:
            if sec.size:
                raise ElfError("section 'maps': map definitions without symbols naming them")
            return
        # libbpf's rule: every definition has the same size, the section size over the count.
        if sec.size % len(syms):
            raise ElfError(f"section 'maps': size {sec.size} is not a multiple of its {len(syms)} map symbols")
        def_size = sec.size // len(syms)
        if def_size < 16 or def_size % 4:
            raise ElfError(f"section 'maps': map definitions of {def_size} bytes (expected struct bpf_map_def, "
                           f"at least 16 bytes)")
        for sym in syms:
            if sym.value % 4 or sym.value + def_size > sec.size:
                raise ElfError(f"section 'maps': {sym.describe()} at offset {sym.value} is not a whole map "
                               f"definition of {def_size} bytes")
            raw = sec.data[sym.value:sym.value + min(def_size, _BPF_MAP_DEF.size)].ljust(_BPF_MAP_DEF.size, b"\0")
            mtype, key_size, value_size, max_entries, flags = _BPF_MAP_DEF.unpack(raw)
            self._add_map(MapSpec(sym.name, mtype, key_size, value_size, max_entries, flags, section="maps"),
                          sec.index, sym.value)

    def _btf_maps(self) -> None:
        sec = next((s for s in self.sections if s.name == ".maps"), None)
        if sec is None:
            return
        where = "section '.maps'"
        if self.btf is None:
            raise ElfError(f"{where}: BTF-defined maps need the object's BTF (compile with -g)")
        btf = self.btf
        datasec = self._btf_call(where, btf.datasec, ".maps")
        if datasec is None:
            if sec.size:
                raise ElfError(f"{where}: no DATASEC '.maps' in the object's BTF")
            return
        by_name = {s.name: s for s in self._symbols_in(sec.index) if s.type != "STT_SECTION"}
        extents: list[tuple[int, int, int]] = []  # (offset, size, map index)
        for var in datasec.vars:
            vt = self._btf_call(where, btf.type, var.type)
            if vt.kind != KIND_VAR:
                raise ElfError(f"{where}: DATASEC entry {vt.describe()} is not a variable")
            name = vt.name
            sym = by_name.get(name)
            offset = sym.value if sym is not None else var.offset
            size = (sym.size or var.size) if sym is not None else var.size
            if offset + size > sec.size:
                raise ElfError(f"{where}: map {name!r} ({size} bytes at {offset}) runs past the section ({sec.size})")
            spec, values_off = self._btf_map_def(name, vt.type, inner=False)
            extents.append((offset, size, len(self.maps)))
            self._add_map(spec, sec.index, offset)
            self.values_offsets[len(self.maps) - 1] = values_off
        self._map_slots(sec, extents)

    def _btf_uint(self, map_name: str, member) -> int:
        # __uint(name, N) is "int (*name)[N]": the number is the array's length.
        btf = self.btf
        assert btf is not None
        where = f"section '.maps': map {map_name!r} attribute {member.name!r}"
        ptr = self._btf_call(where, btf.resolved, member.type)
        if ptr.kind != KIND_PTR:
            raise ElfError(f"{where}: expected __uint() (a pointer to an array), found {ptr.describe()}")
        arr = self._btf_call(where, btf.type, ptr.type)
        if arr.kind != KIND_ARRAY:
            raise ElfError(f"{where}: expected __uint() (a pointer to an array), found a pointer to {arr.describe()}")
        return arr.nelems

    def _btf_map_def(self, name: str, type_id: int, *, inner: bool) -> tuple[MapSpec, int | None]:
        """Parse one ``struct { __uint(type, ...); ... }`` map definition; returns the spec and the
        byte offset of its ``values`` member (None without one)."""
        btf = self.btf
        assert btf is not None
        where = f"section '.maps': map {name!r}"
        st = self._btf_call(where, btf.resolved, type_id)
        if st.kind != KIND_STRUCT:
            raise ElfError(f"{where}: definition is {st.describe()}, expected a struct")
        ints: dict[str, int] = {}
        key_type = value_type = 0
        key_size = value_size = None
        values = None
        for m in st.members:
            if m.name in ("type", "max_entries", "map_flags", "numa_node", "pinning", "map_extra",
                          "key_size", "value_size"):
                ints[m.name] = self._btf_uint(name, m)
            elif m.name in ("key", "value"):
                ptr = self._btf_call(where, btf.resolved, m.type)
                if ptr.kind != KIND_PTR:
                    raise ElfError(f"{where}: {m.name!r} must be __type({m.name}, T) (a pointer), "
                                   f"found {ptr.describe()}")
                assert ptr.type is not None
                size = self._btf_call(where, btf.size, ptr.type)
                if m.name == "key":
                    key_type, key_size = ptr.type, size
                else:
                    value_type, value_size = ptr.type, size
            elif m.name == "values":
                values = m
            else:
                raise ElfError(f"{where}: unknown attribute {m.name!r}")
        if "type" not in ints:
            raise ElfError(f"{where}: no map type (__uint(type, ...))")
        mtype = ints["type"]
        for attr, from_type in (("key_size", key_size), ("value_size", value_size)):
            if attr in ints and from_type is not None and ints[attr] != from_type:
                raise ElfError(f"{where}: {attr} {ints[attr]} conflicts with the {from_type}-byte "
                               f"__type({attr[:-5]}, ...)")
        ksize = ints.get("key_size", key_size or 0)
        vsize = ints.get("value_size", value_size or 0)
        if mtype == M.BPF_MAP_TYPE_PERF_EVENT_ARRAY:
            # Newer libbpf defaults these, since the only meaningful sizes are 4 (an int index
            # and a perf event fd).
            ksize, vsize = ksize or 4, vsize or 4
        inner_spec = None
        values_off = None
        if values is not None:
            if inner:
                raise ElfError(f"{where}: an inner map cannot have 'values'")
            arr = self._btf_call(where, btf.resolved, values.type)
            if arr.kind != KIND_ARRAY or arr.nelems != 0:
                raise ElfError(f"{where}: 'values' must be __array(values, ...) (a zero-length array)")
            ptr = self._btf_call(where, btf.resolved, arr.elem_type)
            if ptr.kind != KIND_PTR:
                raise ElfError(f"{where}: 'values' elements must be pointers, found {ptr.describe()}")
            pointee = self._btf_call(where, btf.resolved, ptr.type or 0)
            if mtype in M.MAP_IN_MAP_TYPES:
                if pointee.kind != KIND_STRUCT:
                    raise ElfError(f"{where}: map-in-map 'values' must point to an inner map definition")
                inner_spec, _ = self._btf_map_def(f"{name}.inner", pointee.id, inner=True)
            elif mtype == M.BPF_MAP_TYPE_PROG_ARRAY:
                if pointee.kind != KIND_FUNC_PROTO:
                    raise ElfError(f"{where}: prog array 'values' must be function pointers")
            else:
                raise ElfError(f"{where}: 'values' is only for prog arrays and map-in-maps, not "
                               f"{M.map_type_name(mtype)}")
            if vsize not in (0, 4):
                raise ElfError(f"{where}: value size {vsize} for a map of programs or maps (must be 4)")
            vsize = 4
            values_off = values.bit_offset // 8
        spec = MapSpec(
            name, mtype, ksize, vsize, ints.get("max_entries", 0), ints.get("map_flags", 0),
            inner=inner_spec, key_btf=self._fields(key_type), value_btf=self._fields(value_type),
            section=".maps", numa_node=ints.get("numa_node", 0), pinning=ints.get("pinning", 0),
            map_extra=ints.get("map_extra", 0), key_type_id=key_type, value_type_id=value_type,
        )
        return spec, values_off

    def _map_slots(self, sec: _Section, extents: list[tuple[int, int, int]]) -> None:
        """Initial entries of prog arrays and map-in-maps: ``.rel.maps`` entries pointing from a
        map's ``values`` array to program or map symbols."""
        slots: dict[int, dict[int, str]] = {}
        for r_offset, rtype, sym, desc in self._relocations(sec):
            if rtype not in (R_BPF_64_ABS64, R_BPF_64_64):
                raise ElfError(f"{desc}: unexpected relocation type in '.maps' (against {sym.describe()})")
            hit = next(((off, size, idx) for off, size, idx in extents if off <= r_offset < off + size), None)
            if hit is None:
                raise ElfError(f"{desc}: offset is not inside any map definition")
            off, _size, idx = hit
            spec = self.maps[idx]
            values_off = self.values_offsets.get(idx)
            if values_off is None:
                raise ElfError(f"{desc}: map {spec.name!r} has no 'values' to initialise (against {sym.describe()})")
            rel = r_offset - off - values_off
            if rel < 0 or rel % 8:
                raise ElfError(f"{desc}: not a slot of map {spec.name!r}'s 'values'")
            slot = rel // 8
            if slot >= spec.max_entries:
                raise ElfError(f"{desc}: slot {slot} is beyond map {spec.name!r}'s {spec.max_entries} entries")
            target_sec = self._section(sym.shndx)
            if sym.shndx is None or target_sec is None:
                raise ElfError(f"{desc}: {sym.describe()} is {sym.placement}")
            if spec.map_type == M.BPF_MAP_TYPE_PROG_ARRAY:
                if sym.type != "STT_FUNC" or not target_sec.is_code or target_sec.name == ".text":
                    raise ElfError(f"{desc}: {sym.describe()} is not a program (a function in a program section)")
                slots.setdefault(idx, {})[slot] = sym.name
            else:
                target = self.map_at.get((sym.shndx, sym.value))
                if target is None or self.maps[target].section != ".maps":
                    raise ElfError(f"{desc}: {sym.describe()} is not a map")
                inner = spec.inner
                got = self.maps[target]
                if inner is not None and (got.map_type, got.key_size, got.value_size) != (
                        inner.map_type, inner.key_size, inner.value_size):
                    raise ElfError(f"{desc}: map {got.name!r} does not match the inner map definition of "
                                   f"{spec.name!r}")
                slots.setdefault(idx, {})[slot] = got.name
        for idx, entries in slots.items():
            spec = self.maps[idx]
            self.maps[idx] = replace(spec, slots=tuple(sorted(entries.items())))

    def _data_maps(self) -> None:
        for sec in self.sections:
            name = sec.name
            is_data = name in (".data", ".rodata", ".bss") or name.startswith((".data.", ".rodata.", ".bss."))
            if not is_data or sec.type not in ("SHT_PROGBITS", "SHT_NOBITS"):
                continue
            if sec.size == 0:
                continue  # nothing to map; the kernel refuses zero-sized values anyway
            if sec.size >= 1 << 32:
                raise ElfError(f"section {name!r}: {sec.size} bytes is too large for a map value")
            readonly = name.startswith(".rodata")
            initial = sec.data if sec.type == "SHT_PROGBITS" else bytes(sec.size)
            flags = M.BPF_F_RDONLY_PROG if readonly else 0
            value_fields, datasec_id, has_global = self._data_layout(sec)
            if has_global:
                # libbpf makes a data map mmapable (user space reads the variables in place)
                # only when it holds a non-static variable; mirror it for kernel comparisons.
                flags |= M.BPF_F_MMAPABLE
            spec = MapSpec(name, M.BPF_MAP_TYPE_ARRAY, 4, sec.size, 1, flags, initial=initial, frozen=readonly,
                           key_btf=(M.IntField(0, 4, False),), value_btf=value_fields, section=name,
                           value_type_id=datasec_id)
            self.data_map[sec.index] = len(self.maps)
            self._add_map(spec, sec.index, -1)

    def _data_layout(self, sec: _Section) -> tuple[tuple[M.IntField, ...] | None, int, bool]:
        """(integer fields of the section's variables, DATASEC type id, any global variable?)."""
        if self.btf is None:
            return None, 0, False
        btf = self.btf
        where = f"section {sec.name!r}"
        ids = self._btf_call(where, btf.find, sec.name, KIND_DATASEC)
        if not ids:
            return None, 0, False
        datasec = btf.type(ids[0])
        syms = {s.name: s for s in self._symbols_in(sec.index) if s.type == "STT_OBJECT"}
        fields: list[M.IntField] | None = []
        has_global = False
        for var in datasec.vars:
            vt = self._btf_call(where, btf.type, var.type)
            if vt.kind != KIND_VAR:
                fields = None
                continue
            has_global |= vt.linkage != VAR_STATIC
            sym = syms.get(vt.name)
            offset = sym.value if sym is not None else var.offset
            sub = btf.int_fields(vt.type or 0)
            if sub is None or fields is None:
                fields = None
                continue
            fields.extend(M.IntField(offset + f.offset, f.size, f.signed) for f in sub)
        return (tuple(sorted(fields)) if fields is not None else None), datasec.id, has_global

    # --- code -----------------------------------------------------------------------------

    def _read_code(self) -> None:
        for sec in self.sections:
            if not sec.is_code or not sec.size:
                continue
            if sec.size % 8:
                raise ElfError(f"section {sec.name!r}: size {sec.size} is not a multiple of 8 (instructions)")
            code = _Code(sec, bytearray(sec.data))
            code.funcs = self._functions(sec)
            self.code[sec.index] = code

    def _functions(self, sec: _Section) -> list[_Func]:
        n_slots = sec.size // 8
        funcs: list[_Func] = []
        for sym in self._symbols_in(sec.index):
            if sym.type != "STT_FUNC":
                continue
            if sym.value % 8 or sym.size % 8 or sym.value + sym.size > sec.size:
                raise ElfError(f"section {sec.name!r}: function {sym.name!r} ({sym.size} bytes at offset "
                               f"{sym.value}) is not whole instructions inside the section")
            if not sym.name:
                raise ElfError(f"section {sec.name!r}: function symbol #{sym.index} has no name")
            funcs.append(_Func(sym.name, sec.index, sym.value // 8, (sym.value + sym.size) // 8,
                               sym.bind != "STB_LOCAL"))
        funcs.sort(key=lambda f: f.start)
        # Size-less function symbols (hand-written assembly) extend to the next function.
        for i, f in enumerate(funcs):
            if f.end == f.start:
                f.end = funcs[i + 1].start if i + 1 < len(funcs) else n_slots
        for a, b in zip(funcs, funcs[1:], strict=False):
            if b.start < a.end:
                raise ElfError(f"section {sec.name!r}: functions {a.name!r} and {b.name!r} overlap")
        if not funcs and (sec.name != ".text" or ".text" in self.section_types):
            # No function symbols: the whole section is one program, named after the section.
            funcs.append(_Func(sec.name, sec.index, 0, n_slots, True))
        return funcs

    def _func_at(self, section: int, slot: int) -> _Func | None:
        code = self.code.get(section)
        if code is None:
            return None
        for f in code.funcs:
            if f.start <= slot < f.end:
                return f
        return None

    def _where(self, section: int, slot: int) -> str:
        sec = self.sections[section]
        f = self._func_at(section, slot)
        if f is None:
            return f"section {sec.name!r}, instruction {slot}"
        return f"program {f.name!r} (section {sec.name!r}), instruction {slot - f.start}"

    def _target(self) -> Btf:
        if self._target_btf is None:
            arg = self.target_arg
            if isinstance(arg, Btf):
                self._target_btf = arg
            else:
                path = Path(arg) if arg is not None else VMLINUX_BTF
                if arg is None and not path.exists():
                    raise ElfError(f"the object has CO-RE relocations but no target BTF was given and {path} "
                                   f"does not exist")
                try:
                    self._target_btf = Btf.load(path)
                except BtfError as e:
                    raise ElfError(f"target BTF: {e}") from None
        return self._target_btf

    def _apply_core(self) -> None:
        if not self.core_relos:
            return
        assert self.btf is not None
        by_name = {c.section.name: c for c in self.code.values()}
        for n, relo in enumerate(self.core_relos):
            code = by_name.get(relo.section)
            if code is None:
                raise ElfError(f"section '.BTF.ext': CO-RE relocation #{n} is for section {relo.section!r}, "
                               f"which has no code")
            if relo.insn_off % 8 or relo.insn_off >= code.section.size:
                raise ElfError(f"section '.BTF.ext': CO-RE relocation #{n} points at byte {relo.insn_off} of "
                               f"section {relo.section!r}, not an instruction")
            slot = relo.insn_off // 8
            target = self._target() if relo.kind != TYPE_ID_LOCAL else None
            try:
                apply_core_relo(code.code, slot, relo, self.btf, target)
            except (CoreError, BtfError) as e:
                local = self.btf.type_str(relo.type_id) if relo.type_id < len(self.btf) else f"type {relo.type_id}"
                raise ElfError(f"{self._where(code.section.index, slot)}: CO-RE relocation #{n} "
                               f"<{relo.kind_name}> of {local}, access {relo.access!r}: {e}") from None

    def _relocate(self, code: _Code) -> None:
        sec = code.section
        buf = code.code
        n_slots = len(buf) // 8
        for r_offset, rtype, sym, desc in self._relocations(sec):
            if r_offset % 8 or r_offset + 8 > len(buf):
                raise ElfError(f"{desc}: offset is not an instruction of section {sec.name!r}")
            slot = r_offset // 8
            opcode, regs, off, imm = _SLOT.unpack_from(buf, r_offset)
            where = f"{desc} against {sym.describe()} ({self._where(sec.index, slot)})"
            if rtype == R_BPF_NONE:
                continue
            if sym.shndx is None:
                raise ElfError(f"{where}: symbol is {sym.placement} (extern variables, kconfig and kfuncs "
                               f"are not supported)")
            target_sec = self.sections[sym.shndx]
            if rtype == R_BPF_64_32:
                if opcode != op.CALL or regs >> 4 != op.BPF_PSEUDO_CALL:
                    raise ElfError(f"{where}: R_BPF_64_32 must be on a bpf-to-bpf call, found opcode 0x{opcode:02x}")
                if not target_sec.is_code:
                    raise ElfError(f"{where}: call target is in section {target_sec.name!r}, which is not code")
                if sym.value % 8:
                    raise ElfError(f"{where}: call target offset {sym.value} is not an instruction boundary")
                # Global functions: imm = -1 and the symbol is the function; static ones: the
                # symbol is the section and imm is the slot offset minus one (libbpf's formula).
                code.targets[slot] = _Target(target_sec.index, sym.value // 8 + imm + 1, desc)
                code.relocated.add(slot)
                continue
            if rtype != R_BPF_64_64:
                raise ElfError(f"{where}: relocation type not supported in code")
            if opcode != op.LDDW or slot + 1 >= n_slots:
                raise ElfError(f"{where}: R_BPF_64_64 must be on an lddw, found opcode 0x{opcode:02x}")
            if regs >> 4:
                raise ElfError(f"{where}: lddw already has pseudo source {regs >> 4}")
            code.relocated.add(slot)
            dst = regs & 0xF
            if target_sec.name in ("maps", ".maps"):
                # libbpf finds the map by the symbol's offset; a section symbol names the start.
                key = sym.value + (imm if sym.type == "STT_SECTION" else 0)
                idx = self.map_at.get((target_sec.index, key))
                if idx is None:
                    raise ElfError(f"{where}: no map at offset {key} of section {target_sec.name!r}")
                self._set_lddw(buf, slot, dst, op.BPF_PSEUDO_MAP_IDX, idx, 0)
            elif target_sec.index in self.data_map:
                idx = self.data_map[target_sec.index]
                offset = sym.value + imm
                # One past the end is a valid address to form (an end pointer), not to use.
                if not 0 <= offset <= self.maps[idx].value_size:
                    raise ElfError(f"{where}: offset {offset} is outside {target_sec.name!r} "
                                   f"({self.maps[idx].value_size} bytes)")
                self._set_lddw(buf, slot, dst, op.BPF_PSEUDO_MAP_IDX_VALUE, idx, offset)
            elif target_sec.is_code:
                byte = sym.value + imm
                if byte % 8:
                    raise ElfError(f"{where}: function address {byte} is not an instruction boundary")
                code.targets[slot] = _Target(target_sec.index, byte // 8, desc)
                self._set_lddw(buf, slot, dst, op.BPF_PSEUDO_FUNC, 0, 0)
            elif target_sec.type == "SHT_NOBITS" or target_sec.type == "SHT_PROGBITS":
                raise ElfError(f"{where}: symbol is in section {target_sec.name!r}, which is neither a map, "
                               f"global data nor code")
            else:
                raise ElfError(f"{where}: symbol is in section {target_sec.name!r} ({target_sec.type})")
        self._scan(code)

    @staticmethod
    def _set_lddw(buf: bytearray, slot: int, dst: int, src: int, imm_lo: int, imm_hi: int) -> None:
        _SLOT.pack_into(buf, slot * 8, op.LDDW, (src << 4) | dst, 0, _s32(imm_lo))
        opcode2, regs2, off2, _ = _SLOT.unpack_from(buf, (slot + 1) * 8)
        _SLOT.pack_into(buf, (slot + 1) * 8, opcode2, regs2, off2, _s32(imm_hi))

    def _scan(self, code: _Code) -> None:
        """Find calls without relocations (to functions in the same section) and refuse pseudo
        instructions the compiler does not emit on its own."""
        buf = code.code
        n = len(buf) // 8
        slot = 0
        while slot < n:
            opcode, regs, _off, imm = _SLOT.unpack_from(buf, slot * 8)
            src = regs >> 4
            if opcode == op.LDDW:
                if src and slot not in code.relocated:
                    raise ElfError(f"{self._where(code.section.index, slot)}: lddw with pseudo source {src} "
                                   f"but no relocation")
                slot += 2
                continue
            if opcode == op.CALL and slot not in code.relocated:
                if src == op.BPF_PSEUDO_CALL:
                    code.targets[slot] = _Target(code.section.index, slot + imm + 1, "local call")
                elif src == op.BPF_PSEUDO_KFUNC_CALL:
                    raise ElfError(f"{self._where(code.section.index, slot)}: kfunc calls are not supported")
            slot += 1

    # --- programs -------------------------------------------------------------------------

    def _build_programs(self, license_: str) -> dict[str, Program]:
        programs: dict[str, Program] = {}
        for code in self.code.values():
            sec = code.section
            if sec.name == ".text" and ".text" not in self.section_types:
                continue  # subprograms only, as for libbpf (unless the caller gives .text a type)
            stype = program_type_for_section(sec.name, self.section_types)
            for func in code.funcs:
                if func.name in programs:
                    raise ElfError(f"section {sec.name!r}: two programs are named {func.name!r}")
                body, layout = self._link(func)
                meta = {"section": sec.name, "kernel_type": stype.kernel_type, "license": license_,
                        "functions": layout}
                if stype.attach:
                    meta["attach"] = stype.attach
                if not stype.autoload:
                    meta["autoload"] = False
                prog = Program(bytes(body), name=func.name, prog_type=stype.prog_type, meta=meta)
                try:
                    validate(prog.code, allow_pseudo=True)
                except ValidationError as e:
                    raise ElfError(f"program {func.name!r} (section {sec.name!r}): {e}") from None
                programs[func.name] = prog
        return programs

    def _link(self, entry: _Func) -> tuple[bytearray, dict[str, int]]:
        """The entry function's code followed by every function it reaches, calls and
        function-address loads patched to relative offsets in the combined code."""
        order = [entry]
        start = {(entry.section, entry.start): 0}
        size = entry.end - entry.start
        i = 0
        while i < len(order):
            f = order[i]
            i += 1
            for slot, target in sorted(self.code[f.section].targets.items()):
                if not f.start <= slot < f.end:
                    continue
                tf = self._func_at(target.section, target.slot)
                if tf is None:
                    raise ElfError(f"{self._where(f.section, slot)}: {target.what} targets instruction "
                                   f"{target.slot} of section {self.sections[target.section].name!r}, "
                                   f"which is not inside a function")
                if (tf.section, tf.start) not in start:
                    start[(tf.section, tf.start)] = size
                    size += tf.end - tf.start
                    order.append(tf)
        out = bytearray()
        for f in order:
            out += self.code[f.section].code[f.start * 8:f.end * 8]
        for f in order:
            base = start[(f.section, f.start)]
            for slot, target in self.code[f.section].targets.items():
                if not f.start <= slot < f.end:
                    continue
                tf = self._func_at(target.section, target.slot)
                assert tf is not None
                new_pc = base + slot - f.start
                dest = start[(tf.section, tf.start)] + target.slot - tf.start
                opcode, regs, off, _ = _SLOT.unpack_from(out, new_pc * 8)
                _SLOT.pack_into(out, new_pc * 8, opcode, regs, off, dest - new_pc - 1)
        layout = {f.name: start[(f.section, f.start)] for f in order}
        return out, layout


_STT = {0: "STT_NOTYPE", 1: "STT_OBJECT", 2: "STT_FUNC", 3: "STT_SECTION", 4: "STT_FILE", 5: "STT_COMMON",
        6: "STT_TLS"}
_STB = {0: "STB_LOCAL", 1: "STB_GLOBAL", 2: "STB_WEAK"}


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


