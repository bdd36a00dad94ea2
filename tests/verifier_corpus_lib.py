"""The labelled verifier corpus (``tests/verifier_corpus/``): loading it, and asking the kernel.

Every case is one program -- a C file compiled by clang-19, or an assembly file in the
conformance dialect with a small header -- plus a label in ``labels.json``: accept or reject, the
rule it exercises, and who set the label (``kernel``: checked against the host kernel's verifier
by ``test_verifier_corpus_kernel.py``; ``ours``: the kernel cannot say, and ``reason`` says why).
See ``tests/verifier_corpus/README.md`` for the formats.

Use from a test::

    from verifier_corpus_lib import load_corpus
    for case in load_corpus():
        verdict = my_verify(case.program, case.maps, privileged=case.privileged)
        assert verdict == case.expected, case.name

:func:`kernel_verdict` loads one case with the host kernel: C objects through libbpf (never our
own ELF loader, so that a shared loader bug cannot hide), assembly through ``BPF_PROG_LOAD`` with
the header's maps created in the kernel and our map-index ``lddw`` turned into map fds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from bpfmc.ebpf import opcodes as op
from bpfmc.ebpf.asm import assemble
from bpfmc.ebpf.elf import load_object
from bpfmc.ebpf.insn import Insn, decode, encode
from bpfmc.ebpf.maps import MapSpec, map_type_id
from bpfmc.ebpf.program import PROGRAM_TYPES, Program, canonical_type

__all__ = ["CORPUS", "LABELS", "CorpusCase", "CorpusError", "KernelVerdict", "load_corpus", "load_case",
           "read_labels", "parse_asm", "compile_c", "kernel_verdict", "VERDICTS", "LABELLERS"]

CORPUS = Path(__file__).resolve().parent / "verifier_corpus"
LABELS = CORPUS / "labels.json"
VERDICTS = ("accept", "reject")
LABELLERS = ("kernel", "ours")

# The same compiler and flags as the ``bpf_cc`` fixture (tests/conftest.py).
CLANG = os.environ.get("BPFMC_CLANG", "clang-19")
BPF_CFLAGS = ["-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu"]

# bpfmc program types and the kernel's name for each ("raw" has no kernel twin).
KERNEL_TYPE = {"xdp": "xdp", "sched_cls": "sched_cls", "socket_filter": "socket_filter"}
# enum bpf_attach_type values an ``# attach:`` header may name (only what the corpus needs).
ATTACH_TYPES = {"cgroup_inet_ingress": 0, "cgroup_inet_egress": 1}


class CorpusError(ValueError):
    """A corpus file or label that cannot be read: names the file and the problem."""


@dataclass(frozen=True)
class CorpusCase:
    """One labelled program.

    ``program`` is a :class:`bpfmc.ebpf.program.Program` whose ``lddw`` map references follow the
    ELF loader's contract (``src=5``, ``imm`` = index in ``maps``; callbacks ``src=4``).
    ``prog_type`` is the type the label is for: a bpfmc type, or -- for the few cases whose rule
    only a kernel type exercises (``kernel_only``) -- a kernel type such as ``cgroup_skb``; then
    ``program.prog_type`` is ``raw`` and a bpfmc verifier should skip the case.
    ``privileged`` is False for the rules that only apply to unprivileged loads.
    """

    name: str
    program: Program
    maps: list[MapSpec]
    prog_type: str
    expected: str  # "accept" | "reject"
    rule: str
    labelled_by: str  # "kernel" | "ours"
    reason: str  # why "ours"; for "kernel" labels an optional note
    file: Path
    kind: str  # "c" | "asm"
    kernel_log: str = ""  # rejects: a substring of the kernel's log naming the cause
    privileged: bool = True
    kernel_type: str | None = None  # the kernel's program type, None when it has no twin (raw)
    attach_type: int = 0  # expected_attach_type for BPF_PROG_LOAD (asm cases of kernel-only types)
    twin: str = ""  # "ours" labels: the kernel-labelled case the label leans on
    object_path: Path | None = field(default=None, compare=False)  # the compiled object (C cases)

    @property
    def kernel_only(self) -> bool:
        """The label is for a kernel program type bpfmc does not have."""
        return self.prog_type not in PROGRAM_TYPES

    def __str__(self) -> str:
        return self.name


# --- assembly files with a header -------------------------------------------------------------

_HEADER_RE = re.compile(r"^\s*#\s*(type|map|kernel-type|attach)\s*:\s*(.*?)\s*$")
_MAPREF_RE = re.compile(r"\b(map|func):([A-Za-z_.][A-Za-z0-9_.]*)")
_LABEL_RE = re.compile(r"([A-Za-z_.][A-Za-z0-9_.$]*):")


@dataclass(frozen=True)
class AsmFile:
    prog_type: str
    maps: list[MapSpec]
    code: bytes
    kernel_type: str | None
    attach_type: int


def _parse_map(text: str, where: str) -> MapSpec:
    # "NAME TYPE key=4 value=8 entries=16 [flags=0]"
    parts = text.split()
    if len(parts) < 2:
        raise CorpusError(f"{where}: '# map:' wants 'NAME TYPE key=N value=N entries=N [flags=N]'")
    name, mtype, *attrs = parts
    kv: dict[str, int] = {"key": 0, "value": 0, "entries": 0, "flags": 0}
    for a in attrs:
        k, eq, v = a.partition("=")
        if not eq or k not in kv:
            raise CorpusError(f"{where}: bad map attribute {a!r} (key= value= entries= flags=)")
        kv[k] = int(v, 0)
    try:
        type_id = map_type_id(mtype)
    except ValueError as e:
        raise CorpusError(f"{where}: {e}") from None
    return MapSpec(name, type_id, kv["key"], kv["value"], kv["entries"], kv["flags"])


def parse_asm(path: Path) -> AsmFile:
    """Read an assembly corpus file: the header, then the program.

    Header lines are comments ``# type: xdp``, ``# map: NAME TYPE key=N value=N entries=N``
    (in index order), ``# kernel-type: cgroup_skb`` and ``# attach: cgroup_inet_egress``.
    Beyond the conformance dialect, two operands of ``lddw`` are understood: ``map:NAME``
    (a map reference: ``src=5``, ``imm`` = the map's index) and ``func:LABEL`` (a callback's
    address: ``src=4``, ``imm`` = slots from the next instruction to the label).
    """
    where = path.name
    text = path.read_text()
    prog_type = kernel_type = None
    attach = 0
    maps: list[MapSpec] = []
    lines: list[str] = []
    pseudo: list[tuple[int, str, str]] = []  # (index among lddw, "map"|"func", name)
    labels: dict[str, int] = {}
    n_lddw = 0
    slot = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        h = _HEADER_RE.match(raw)
        if h:
            key, value = h.groups()
            if key == "type":
                try:
                    prog_type = canonical_type(value)
                except ValueError:
                    prog_type = value  # a kernel-only type (checked below)
            elif key == "map":
                maps.append(_parse_map(value, f"{where}:{lineno}"))
            elif key == "kernel-type":
                kernel_type = value
            elif key == "attach":
                if value not in ATTACH_TYPES:
                    raise CorpusError(f"{where}:{lineno}: unknown attach type {value!r} ({', '.join(ATTACH_TYPES)})")
                attach = ATTACH_TYPES[value]
            lines.append("")
            continue
        body = raw.split("#", 1)[0].strip()
        m = _MAPREF_RE.search(body)
        if m:
            if not body.startswith("lddw"):
                raise CorpusError(f"{where}:{lineno}: {m.group(0)} is only allowed as the operand of lddw")
            pseudo.append((n_lddw, m.group(1), m.group(2)))
            body = body[: m.start()] + "0" + body[m.end():]
        if _LABEL_RE.fullmatch(body):
            labels[body[:-1]] = slot
        elif body:
            if body.split()[0] == "lddw":
                n_lddw += 1
                slot += 2
            else:
                slot += 1
        lines.append(body)
    if prog_type is None:
        raise CorpusError(f"{where}: no '# type:' header")
    if prog_type not in PROGRAM_TYPES and kernel_type is None:
        kernel_type = prog_type
    try:
        code = assemble("\n".join(lines))
    except ValueError as e:
        raise CorpusError(f"{where}: {e}") from None
    if pseudo:
        insns = decode(code)
        wide = [i for i, insn in enumerate(insns) if insn.is_wide]
        pcs, pc = [], 0
        for insn in insns:
            pcs.append(pc)
            pc += insn.slots
        names = [m.name for m in maps]
        for k, kind, name in pseudo:
            i = wide[k]
            if kind == "map":
                if name not in names:
                    raise CorpusError(f"{where}: lddw map:{name}: no '# map: {name} ...' header")
                insns[i] = Insn(op.LDDW, insns[i].dst, op.BPF_PSEUDO_MAP_IDX, 0, names.index(name))
            else:
                if name not in labels:
                    raise CorpusError(f"{where}: lddw func:{name}: no label {name!r}")
                rel = labels[name] - (pcs[i] + 1)
                insns[i] = Insn(op.LDDW, insns[i].dst, op.BPF_PSEUDO_FUNC, 0, rel & 0xFFFFFFFF)
        code = encode(insns)
    if kernel_type is None:
        kernel_type = KERNEL_TYPE.get(prog_type)
    return AsmFile(prog_type, maps, code, kernel_type, attach)


# --- C files ----------------------------------------------------------------------------------


def _cache_dir() -> Path:
    default = Path(tempfile.gettempdir()) / f"bpfmc-verifier-corpus-{os.getuid()}"
    d = Path(os.environ.get("BPFMC_CORPUS_CACHE") or default)
    d.mkdir(parents=True, exist_ok=True)
    return d


@cache
def _clang_version() -> str:
    if shutil.which(CLANG) is None:
        raise CorpusError(f"{CLANG} is not installed (set BPFMC_CLANG)")
    return subprocess.run([CLANG, "--version"], capture_output=True, text=True).stdout


def compile_c(path: Path) -> Path:
    """Compile one corpus C file into the cache (keyed by source, headers it includes, flags and
    compiler version); returns the object's path."""
    h = hashlib.sha256()
    for part in (_clang_version(), " ".join(BPF_CFLAGS), path.read_text()):
        h.update(part.encode())
    for inc in sorted(CORPUS.glob("*.h")):
        h.update(inc.read_bytes())
    out = _cache_dir() / f"{path.stem}-{h.hexdigest()[:16]}.o"
    if out.exists():
        return out
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    proc = subprocess.run([CLANG, *BPF_CFLAGS, "-c", str(path), "-o", str(tmp)], capture_output=True, text=True)
    if proc.returncode:
        raise CorpusError(f"{CLANG} failed on {path.name}:\n{proc.stderr}")
    os.replace(tmp, out)  # atomic: concurrent test processes never see half an object
    return out


# --- labels ------------------------------------------------------------------------------------

_REQUIRED = ("name", "file", "prog_type", "expected", "rule", "labelled_by")


def read_labels(path: Path = LABELS) -> list[dict]:
    """The label entries, with the shape checked (not the files they name)."""
    data = json.loads(path.read_text())
    entries = data["cases"] if isinstance(data, dict) else data
    seen: set[str] = set()
    for e in entries:
        missing = [k for k in _REQUIRED if k not in e]
        if missing:
            raise CorpusError(f"label {e.get('name', e)!r}: missing {', '.join(missing)}")
        if e["name"] in seen:
            raise CorpusError(f"label {e['name']!r} appears twice")
        seen.add(e["name"])
        if e["expected"] not in VERDICTS:
            raise CorpusError(f"label {e['name']!r}: expected must be one of {VERDICTS}")
        if e["labelled_by"] not in LABELLERS:
            raise CorpusError(f"label {e['name']!r}: labelled_by must be one of {LABELLERS}")
        if e["labelled_by"] == "ours" and not (e.get("reason") and e.get("twin")):
            raise CorpusError(f"label {e['name']!r}: an 'ours' label needs a reason and a twin")
        if e["expected"] == "reject" and e["labelled_by"] == "kernel" and not e.get("kernel_log"):
            raise CorpusError(f"label {e['name']!r}: a kernel-labelled reject needs kernel_log")
    return entries


def load_case(entry: dict) -> CorpusCase:
    path = CORPUS / entry["file"]
    if not path.is_file():
        raise CorpusError(f"label {entry['name']!r}: no file {entry['file']}")
    common = dict(name=entry["name"], expected=entry["expected"], rule=entry["rule"],
                  labelled_by=entry["labelled_by"], reason=entry.get("reason", ""), file=path,
                  kernel_log=entry.get("kernel_log", ""), privileged=entry.get("privileged", True),
                  twin=entry.get("twin", ""))
    if path.suffix == ".c":
        obj_path = compile_c(path)
        obj = load_object(obj_path)
        prog = obj.program(entry["program"]) if entry.get("program") else _only(obj.programs, path)
        ptype = entry["prog_type"]
        if prog.prog_type != canonical_type(ptype):
            raise CorpusError(f"{path.name}: program {prog.name} has type {prog.prog_type}, label says {ptype}")
        return CorpusCase(program=prog, maps=list(obj.maps), prog_type=prog.prog_type, kind="c",
                          kernel_type=KERNEL_TYPE.get(prog.prog_type), object_path=obj_path, **common)
    if path.suffix == ".s":
        asm = parse_asm(path)
        if asm.prog_type != entry["prog_type"]:
            raise CorpusError(f"{path.name}: header type {asm.prog_type}, label says {entry['prog_type']}")
        our_type = asm.prog_type if asm.prog_type in PROGRAM_TYPES else "raw"
        prog = Program(asm.code, name=path.stem, prog_type=our_type,
                       meta={"source": str(path), "kernel_type": asm.kernel_type})
        return CorpusCase(program=prog, maps=asm.maps, prog_type=asm.prog_type, kind="asm",
                          kernel_type=asm.kernel_type, attach_type=asm.attach_type, **common)
    raise CorpusError(f"{path.name}: corpus files are .c or .s")


def _only(programs: dict[str, Program], path: Path) -> Program:
    if len(programs) != 1:
        raise CorpusError(f"{path.name}: holds {len(programs)} programs ({', '.join(programs)}); name one")
    return next(iter(programs.values()))


def load_corpus(path: Path = LABELS) -> list[CorpusCase]:
    """Every labelled case, C compiled (cached) and assembly assembled, in labels.json order."""
    return [load_case(e) for e in read_labels(path)]


# --- the host kernel --------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelVerdict:
    verdict: str  # "accept" | "reject"
    log: str  # the verifier's log (for an accept: its statistics line)
    errno: int
    seconds: float


def _kernel_code(case: CorpusCase, fds: list[int]) -> bytes:
    """Our map-index lddw (src=5) as the kernel's map-fd lddw (src=1, imm = fd)."""
    out = []
    for insn in decode(case.program.code):
        if insn.is_wide and insn.src == op.BPF_PSEUDO_MAP_IDX:
            insn = Insn(op.LDDW, insn.dst, op.BPF_PSEUDO_MAP_FD, insn.off, fds[insn.imm & 0xFFFFFFFF])
        out.append(insn)
    return encode(out)


def kernel_verdict(case: CorpusCase, log_level: int = 4) -> KernelVerdict:
    """Load the case with the host kernel's verifier (as root: privileged) and say what it said.

    ``log_level`` 4 (statistics and the error, no instruction trace) keeps the 1M-instruction cases
    fast (the kernel formats every processed instruction at level 1); for C objects libbpf picks the
    level (it reloads with level 1 to print the log of a refusal). Raises ValueError for a case
    without a kernel program type (``raw``)."""
    from bpfmc.ebpf import kernel

    if case.kernel_type is None:
        raise ValueError(f"{case.name}: program type {case.prog_type} has no kernel twin")
    t0 = time.perf_counter()
    if case.kind == "c":
        assert case.object_path is not None
        try:
            with kernel.load_object(case.object_path) as obj:
                prog = next(iter(obj.programs.values()))
                log = prog.log
            return KernelVerdict("accept", log, 0, time.perf_counter() - t0)
        except kernel.KernelVerifierError as e:
            return KernelVerdict("reject", e.verifier_log, e.errno, time.perf_counter() - t0)
    maps = [kernel.map_create(m.map_type, m.key_size, m.value_size, m.max_entries, m.flags, m.name)
            for m in case.maps]
    try:
        code = _kernel_code(case, [m.fd for m in maps])
        try:
            with kernel.prog_load(code, case.kernel_type, log_level=log_level, name=case.name,
                                  expected_attach_type=case.attach_type) as prog:
                log = prog.log
            return KernelVerdict("accept", log, 0, time.perf_counter() - t0)
        except kernel.KernelVerifierError as e:
            return KernelVerdict("reject", e.log, e.errno, time.perf_counter() - t0)
    finally:
        for m in maps:
            m.close()
