"""The host Linux kernel as a reference engine: raw ``bpf()`` calls and a libbpf object loader.

Tests and benchmarks compare bpfmc with the kernel on the same programs (DESIGN: "The kernel is
the reference"). Everything here goes through ctypes so that no compiled extension is needed:

* a thin wrapper over the ``bpf()`` system call (program load, test run, maps, object info),
  with ``union bpf_attr`` laid out as in ``linux/bpf.h``;
* :func:`load_object`, which loads an ELF object with the system's libbpf -- never with
  bpfmc's own loader, so a bug shared by our loader and our engine cannot hide;
* :func:`pin_to_cpu`, because a per-CPU map row is only comparable on the CPU that wrote it.

Every object holding a kernel file descriptor closes it on ``close()``, on leaving a ``with``
block, or when garbage-collected.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno as _errno
import os
import platform
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import maps as _maps

__all__ = [
    "BPF_ANY", "BPF_EXIST", "BPF_NOEXIST", "BPF_F_LOCK", "BPF_F_TEST_RUN_ON_CPU",
    "MAP_TYPES", "PROG_TYPES", "KernelError", "KernelVerifierError", "KernelProgram", "KernelMap",
    "KernelObject", "TestRunResult", "ProgInfo", "MapInfo", "available", "libbpf_available",
    "prog_load", "prog_test_run", "map_create", "map_update", "map_lookup", "map_lookup_and_delete",
    "map_delete", "map_get_next_key", "map_keys", "obj_get", "obj_pin", "prog_get_fd_by_id",
    "map_get_fd_by_id", "obj_get_info_by_fd", "load_object", "pin_to_cpu", "possible_cpus",
    "map_type_id", "prog_type_id",
]

# --- constants from linux/bpf.h ------------------------------------------------------------

# enum bpf_cmd
BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_MAP_DELETE_ELEM = 3
BPF_MAP_GET_NEXT_KEY = 4
BPF_PROG_LOAD = 5
BPF_OBJ_PIN = 6
BPF_OBJ_GET = 7
BPF_PROG_TEST_RUN = 10
BPF_PROG_GET_FD_BY_ID = 13
BPF_MAP_GET_FD_BY_ID = 14
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_MAP_LOOKUP_AND_DELETE_ELEM = 21

# map update flags
BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2
BPF_F_LOCK = 4

# BPF_PROG_TEST_RUN flags
BPF_F_TEST_RUN_ON_CPU = 1
BPF_F_TEST_XDP_LIVE_FRAMES = 2

BPF_OBJ_NAME_LEN = 16
BPF_TAG_SIZE = 8

PROG_TYPES: dict[str, int] = {
    "unspec": 0, "socket_filter": 1, "kprobe": 2, "sched_cls": 3, "sched_act": 4, "tracepoint": 5,
    "xdp": 6, "perf_event": 7, "cgroup_skb": 8, "cgroup_sock": 9, "lwt_in": 10, "lwt_out": 11,
    "lwt_xmit": 12, "sock_ops": 13, "sk_skb": 14, "cgroup_device": 15, "sk_msg": 16,
    "raw_tracepoint": 17, "cgroup_sock_addr": 18, "lwt_seg6local": 19, "lirc_mode2": 20,
    "sk_reuseport": 21, "flow_dissector": 22, "cgroup_sysctl": 23, "raw_tracepoint_writable": 24,
    "cgroup_sockopt": 25, "tracing": 26, "struct_ops": 27, "ext": 28, "lsm": 29, "sk_lookup": 30,
    "syscall": 31,
}
_PROG_ALIASES = {"tc": "sched_cls", "classifier": "sched_cls", "socket": "socket_filter", "raw_tp": "raw_tracepoint"}

# Map type numbers are defined once, with the language (ebpf/maps.py).
MAP_TYPES: dict[str, int] = _maps.MAP_TYPES
_MAP_NAMES = {v: k for k, v in MAP_TYPES.items()}
_PROG_NAMES = {v: k for k, v in PROG_TYPES.items()}

# Per-CPU maps exchange one round_up(value_size, 8) slot per possible CPU with user space.
_PERCPU_MAP_TYPES = _maps.PERCPU_MAP_TYPES

# The bpf() syscall number is per architecture (not in any Python module).
_SYSCALL_NR = {"x86_64": 321, "aarch64": 280}


class KernelError(OSError):
    """A ``bpf()`` call (or a libbpf call) failed; ``errno`` is the kernel's error number (libbpf's
    own codes start at 4000). ``log`` holds whatever libbpf or the verifier said."""

    def __init__(self, err: int, message: str, log: str = ""):
        super().__init__(err, message)
        self.log = log

    def _detail(self) -> str:
        return self.log

    def __str__(self) -> str:
        # The last lines of a verifier log name the problem; the whole log stays on .log.
        tail = self._detail().strip().splitlines()[-8:]
        return super().__str__() + ("\n" + "\n".join(tail) if tail else "")


class KernelVerifierError(KernelError):
    """The kernel refused to load a program. ``log`` holds the verifier's (or libbpf's) text."""

    @property
    def verifier_log(self) -> str:
        """Only the kernel verifier's part of ``log`` when libbpf wrapped it, else all of it."""
        begin, end = "-- BEGIN PROG LOAD LOG --", "-- END PROG LOAD LOG --"
        i = self.log.find(begin)
        if i < 0:
            return self.log
        j = self.log.find(end, i)
        return self.log[i + len(begin): j if j >= 0 else None].strip("\n")

    def _detail(self) -> str:
        return self.verifier_log


def prog_type_id(prog_type: str | int) -> int:
    if isinstance(prog_type, int):
        return prog_type
    name = _PROG_ALIASES.get(prog_type, prog_type)
    if name not in PROG_TYPES:
        raise ValueError(f"unknown program type {prog_type!r} (known: {', '.join(PROG_TYPES)})")
    return PROG_TYPES[name]


def map_type_id(map_type: str | int) -> int:
    if isinstance(map_type, int):
        return map_type
    if map_type not in MAP_TYPES:
        raise ValueError(f"unknown map type {map_type!r} (known: {', '.join(MAP_TYPES)})")
    return MAP_TYPES[map_type]


# --- union bpf_attr --------------------------------------------------------------------------
#
# One ctypes Structure per command, each padded to sizeof(union bpf_attr) as the 6.1 UAPI header
# on this machine declares it (144 bytes). The kernel accepts any size up to its own union and
# zero-fills the rest; fields it does not know past our size stay zero, which is what it
# requires of unused tail bytes. tests/test_kernel.py checks the offsets against the header.

BPF_ATTR_SIZE = 144

_u8, _u32, _u64 = ctypes.c_uint8, ctypes.c_uint32, ctypes.c_uint64


def _attr(name: str, fields: list[tuple[str, type]]) -> type[ctypes.Structure]:
    body = type(name + "_body", (ctypes.Structure,), {"_fields_": fields})
    size = ctypes.sizeof(body)
    assert size <= BPF_ATTR_SIZE, name
    return type(name, (ctypes.Structure,), {"_fields_": fields + [("_pad", _u8 * (BPF_ATTR_SIZE - size))]})


MapCreateAttr = _attr("MapCreateAttr", [
    ("map_type", _u32), ("key_size", _u32), ("value_size", _u32), ("max_entries", _u32),
    ("map_flags", _u32), ("inner_map_fd", _u32), ("numa_node", _u32),
    ("map_name", ctypes.c_char * BPF_OBJ_NAME_LEN), ("map_ifindex", _u32), ("btf_fd", _u32),
    ("btf_key_type_id", _u32), ("btf_value_type_id", _u32), ("btf_vmlinux_value_type_id", _u32),
    ("map_extra", _u64),
])
MapElemAttr = _attr("MapElemAttr", [
    ("map_fd", _u32), ("key", _u64), ("value", _u64),  # value doubles as next_key
    ("flags", _u64),
])
ProgLoadAttr = _attr("ProgLoadAttr", [
    ("prog_type", _u32), ("insn_cnt", _u32), ("insns", _u64), ("license", _u64),
    ("log_level", _u32), ("log_size", _u32), ("log_buf", _u64), ("kern_version", _u32),
    ("prog_flags", _u32), ("prog_name", ctypes.c_char * BPF_OBJ_NAME_LEN), ("prog_ifindex", _u32),
    ("expected_attach_type", _u32), ("prog_btf_fd", _u32), ("func_info_rec_size", _u32),
    ("func_info", _u64), ("func_info_cnt", _u32), ("line_info_rec_size", _u32), ("line_info", _u64),
    ("line_info_cnt", _u32), ("attach_btf_id", _u32), ("attach_prog_fd", _u32),
    ("core_relo_cnt", _u32), ("fd_array", _u64), ("core_relos", _u64), ("core_relo_rec_size", _u32),
])
ObjAttr = _attr("ObjAttr", [("pathname", _u64), ("bpf_fd", _u32), ("file_flags", _u32)])
TestRunAttr = _attr("TestRunAttr", [
    ("prog_fd", _u32), ("retval", _u32), ("data_size_in", _u32), ("data_size_out", _u32),
    ("data_in", _u64), ("data_out", _u64), ("repeat", _u32), ("duration", _u32),
    ("ctx_size_in", _u32), ("ctx_size_out", _u32), ("ctx_in", _u64), ("ctx_out", _u64),
    ("flags", _u32), ("cpu", _u32), ("batch_size", _u32),
])
GetIdAttr = _attr("GetIdAttr", [("id", _u32), ("next_id", _u32), ("open_flags", _u32)])
InfoAttr = _attr("InfoAttr", [("bpf_fd", _u32), ("info_len", _u32), ("info", _u64)])


class BpfProgInfo(ctypes.Structure):
    _fields_ = [
        ("type", _u32), ("id", _u32), ("tag", _u8 * BPF_TAG_SIZE), ("jited_prog_len", _u32),
        ("xlated_prog_len", _u32), ("jited_prog_insns", _u64), ("xlated_prog_insns", _u64),
        ("load_time", _u64), ("created_by_uid", _u32), ("nr_map_ids", _u32), ("map_ids", _u64),
        ("name", ctypes.c_char * BPF_OBJ_NAME_LEN), ("ifindex", _u32),
        ("gpl_compatible", _u32),  # bit 0; the other 31 bits are padding
        ("netns_dev", _u64), ("netns_ino", _u64), ("nr_jited_ksyms", _u32), ("nr_jited_func_lens", _u32),
        ("jited_ksyms", _u64), ("jited_func_lens", _u64), ("btf_id", _u32), ("func_info_rec_size", _u32),
        ("func_info", _u64), ("nr_func_info", _u32), ("nr_line_info", _u32), ("line_info", _u64),
        ("jited_line_info", _u64), ("nr_jited_line_info", _u32), ("line_info_rec_size", _u32),
        ("jited_line_info_rec_size", _u32), ("nr_prog_tags", _u32), ("prog_tags", _u64),
        ("run_time_ns", _u64), ("run_cnt", _u64), ("recursion_misses", _u64), ("verified_insns", _u32),
        ("attach_btf_obj_id", _u32), ("attach_btf_id", _u32), ("_pad", _u32),
    ]


class BpfMapInfo(ctypes.Structure):
    _fields_ = [
        ("type", _u32), ("id", _u32), ("key_size", _u32), ("value_size", _u32), ("max_entries", _u32),
        ("map_flags", _u32), ("name", ctypes.c_char * BPF_OBJ_NAME_LEN), ("ifindex", _u32),
        ("btf_vmlinux_value_type_id", _u32), ("netns_dev", _u64), ("netns_ino", _u64), ("btf_id", _u32),
        ("btf_key_type_id", _u32), ("btf_value_type_id", _u32), ("_pad", _u32), ("map_extra", _u64),
    ]


# --- the system call -------------------------------------------------------------------------

_libc: ctypes.CDLL | None = None


def _syscall_nr() -> int:
    nr = _SYSCALL_NR.get(platform.machine())
    if nr is None or not os.uname().sysname == "Linux":
        raise KernelError(_errno.ENOSYS, f"bpf() is not wired up for {os.uname().sysname}/{platform.machine()}")
    return nr


def _sys_bpf(cmd: int, attr: ctypes.Structure) -> int:
    """Call bpf(cmd, &attr, sizeof attr); return the result or raise :class:`KernelError`."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    ret = _libc.syscall(ctypes.c_long(_syscall_nr()), ctypes.c_long(cmd), ctypes.byref(attr),
                        ctypes.c_long(ctypes.sizeof(attr)))
    if ret < 0:
        err = ctypes.get_errno()
        raise KernelError(err, f"bpf(cmd {cmd}): {os.strerror(err)}")
    return ret


def _addr(buf: ctypes.Array | None) -> int:
    return ctypes.addressof(buf) if buf is not None else 0


def _cbuf(data: bytes) -> ctypes.Array:
    # create_string_buffer appends a NUL; harmless, and it keeps a zero-length input addressable.
    return ctypes.create_string_buffer(bytes(data), len(data) or 1)


def _name(name: str) -> bytes:
    # Object names are at most 15 characters from [A-Za-z0-9_.]; anything else is EINVAL.
    clean = "".join(c if c.isascii() and (c.isalnum() or c in "_.") else "_" for c in name)
    return clean[: BPF_OBJ_NAME_LEN - 1].encode()


def _fd(obj: int | KernelProgram | KernelMap) -> int:
    if isinstance(obj, int):
        return obj
    if obj.fd < 0:
        raise ValueError(f"{obj!r} is closed")
    return obj.fd


# --- CPUs ------------------------------------------------------------------------------------

_possible: int | None = None


def possible_cpus() -> int:
    """How many CPUs the kernel considers possible: the row count of a per-CPU map value."""
    global _possible
    if _possible is None:
        with open("/sys/devices/system/cpu/possible") as f:
            text = f.read().strip()
        n = 0
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            n += (int(hi) if hi else int(lo)) - int(lo) + 1
        _possible = n
    return _possible


@contextlib.contextmanager
def pin_to_cpu(cpu: int) -> Iterator[int]:
    """Run the block on host CPU ``cpu`` only (the calling thread), restoring the old mask after.

    A test run executes on the CPU that issued the syscall, so only a pinned process knows which
    row of a per-CPU map its runs updated.
    """
    old = os.sched_getaffinity(0)
    if cpu not in old:
        raise ValueError(f"CPU {cpu} is not in this process's affinity mask {sorted(old)}")
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, old)


# --- programs --------------------------------------------------------------------------------


class KernelProgram:
    """A loaded program: its fd plus what we know about it. Close it, or use it in ``with``."""

    def __init__(self, fd: int, name: str = "", prog_type: int = 0, log: str = "", section: str | None = None):
        self.fd = fd
        self.name = name
        self.prog_type = prog_type
        self.log = log
        self.section = section

    @classmethod
    def from_fd(cls, fd: int) -> KernelProgram:
        """Wrap an fd (which the new object then owns), reading name and type from the kernel."""
        info = obj_get_info_by_fd(fd)
        if not isinstance(info, ProgInfo):
            raise ValueError(f"fd {fd} is not a BPF program")
        return cls(fd, info.name, info.type)

    @property
    def type_name(self) -> str:
        return _PROG_NAMES.get(self.prog_type, str(self.prog_type))

    @property
    def closed(self) -> bool:
        return self.fd < 0

    def fileno(self) -> int:
        return self.fd

    def info(self) -> ProgInfo:
        info = obj_get_info_by_fd(_fd(self))
        assert isinstance(info, ProgInfo)
        return info

    def test_run(self, data_in: bytes, **kw: Any) -> TestRunResult:
        return prog_test_run(self, data_in, **kw)

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def __enter__(self) -> KernelProgram:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __repr__(self) -> str:
        return f"KernelProgram(fd={self.fd}, name={self.name!r}, type={self.type_name})"


def prog_load(
    code: bytes,
    prog_type: str | int = "socket_filter",
    license: str = "GPL",
    log_level: int = 1,
    expected_attach_type: int = 0,
    prog_flags: int = 0,
    *,
    name: str = "",
    log_size: int = 1 << 20,
) -> KernelProgram:
    """Load raw instruction bytes (no map relocations: fds must already be in the code).

    Raises :class:`KernelVerifierError` with the verifier log when the kernel refuses. The log of
    a successful load is kept on the program (``log``). At ``log_level=1`` the kernel formats
    every instruction it walks but keeps only the path that failed (a success leaves just the
    ``processed N insns`` line), so long programs load much slower (B1: ~1.9 s against ~0.16 s
    at level 0 or 4, stats only). When the text does not fit ``log_size`` the kernel fails with
    ENOSPC; the load is then retried without a log so that the verdict -- and, on refusal, the
    real errno -- is the kernel's, with the truncated log kept.
    """
    if len(code) % 8 or not code:
        raise ValueError(f"program length {len(code)} is not a positive multiple of 8 bytes")
    insns = _cbuf(code)
    lic = ctypes.create_string_buffer(license.encode())
    ptype = prog_type_id(prog_type)

    def attempt(level: int) -> tuple[int, str]:
        attr = ProgLoadAttr()
        attr.prog_type = ptype
        attr.insn_cnt = len(code) // 8
        attr.insns = _addr(insns)
        attr.license = _addr(lic)
        attr.expected_attach_type = expected_attach_type
        attr.prog_flags = prog_flags
        attr.prog_name = _name(name)
        logbuf = None
        if level:
            logbuf = ctypes.create_string_buffer(max(log_size, 128))
            attr.log_level, attr.log_size, attr.log_buf = level, len(logbuf), _addr(logbuf)
        for _ in range(5):
            try:
                return _sys_bpf(BPF_PROG_LOAD, attr), _logtext(logbuf)
            except KernelError as e:
                # PROG_LOAD can fail transiently with EAGAIN; libbpf retries it as well.
                if e.errno != _errno.EAGAIN:
                    e.log = _logtext(logbuf)
                    raise
        raise KernelError(_errno.EAGAIN, "BPF_PROG_LOAD kept returning EAGAIN")

    try:
        fd, log = attempt(log_level)
    except KernelError as e:
        log = e.log
        if not (e.errno == _errno.ENOSPC and log_level):
            raise KernelVerifierError(e.errno, f"kernel refused the program: {os.strerror(e.errno)}", log) from None
        try:
            fd, _ = attempt(0)
        except KernelError as e2:
            raise KernelVerifierError(
                e2.errno, f"kernel refused the program: {os.strerror(e2.errno)} (log truncated)", log
            ) from None
    return KernelProgram(fd, name, ptype, log)


def _logtext(buf: ctypes.Array | None) -> str:
    return buf.value.decode(errors="replace") if buf is not None else ""


@dataclass(frozen=True)
class TestRunResult:
    """What BPF_PROG_TEST_RUN reports. ``retval`` is 32 bits: the kernel keeps only r0's low half."""

    __test__ = False  # not a pytest class despite the name

    retval: int
    data_out: bytes
    ctx_out: bytes | None
    duration_ns: int  # the kernel's average per run, including its own loop overhead


def prog_test_run(
    prog: KernelProgram | int,
    data_in: bytes,
    repeat: int = 1,
    ctx_in: bytes | None = None,
    data_size_out: int | None = None,
    ctx_size_out: int | None = None,
    flags: int = 0,
    cpu: int = 0,
) -> TestRunResult:
    """Run a loaded program ``repeat`` times on ``data_in`` (and optional context) in the kernel.

    ``data_size_out`` defaults to the input length plus a page so that programs that grow the
    packet still fit; the kernel would otherwise write up to whatever it produced. A too-small
    output buffer raises ENOSPC (the kernel reports the size it needed in the message).
    """
    din = _cbuf(data_in) if data_in else None
    # Empty input: no data buffers at all, which raw_tracepoint test runs require.
    out_size = (len(data_in) + 4096 if data_in else 0) if data_size_out is None else data_size_out
    dout = ctypes.create_string_buffer(max(out_size, 1))
    cin = _cbuf(ctx_in) if ctx_in is not None else None
    csize = (len(ctx_in) if ctx_in is not None else 0) if ctx_size_out is None else ctx_size_out
    cout = ctypes.create_string_buffer(csize) if csize else None

    attr = TestRunAttr()
    attr.prog_fd = _fd(prog)
    attr.data_size_in = len(data_in)
    attr.data_in = _addr(din) if din is not None else 0
    attr.data_size_out = out_size
    # Zero data_size_out would mean "unbounded" to the kernel, so never hand it a buffer then.
    attr.data_out = _addr(dout) if out_size else 0
    attr.repeat = repeat
    if cin is not None:
        attr.ctx_size_in, attr.ctx_in = len(ctx_in or b""), _addr(cin)
    if cout is not None:
        attr.ctx_size_out, attr.ctx_out = csize, _addr(cout)
    attr.flags = flags
    attr.cpu = cpu
    try:
        _sys_bpf(BPF_PROG_TEST_RUN, attr)
    except KernelError as e:
        if e.errno == _errno.ENOSPC:
            raise KernelError(
                e.errno,
                f"test-run output did not fit: data needs {attr.data_size_out} bytes (gave {out_size}), "
                f"ctx needs {attr.ctx_size_out} (gave {csize})",
            ) from None
        raise
    data_out = dout.raw[: attr.data_size_out] if out_size else b""
    ctx_out = cout.raw[: attr.ctx_size_out] if cout is not None else None
    return TestRunResult(attr.retval, data_out, ctx_out, attr.duration)


# --- maps ------------------------------------------------------------------------------------


def _value_buf_size(map_type: int, value_size: int) -> int:
    if map_type in _PERCPU_MAP_TYPES:
        return possible_cpus() * ((value_size + 7) & ~7)
    return value_size


class KernelMap:
    """A kernel map's fd and shape. Keys may be given as bytes or, for convenience, as an int
    (little-endian, ``key_size`` bytes). Per-CPU values are the kernel's raw layout:
    ``possible_cpus()`` slots of ``round_up(value_size, 8)`` bytes; :meth:`lookup_percpu` splits them.
    """

    def __init__(self, fd: int, map_type: int, key_size: int, value_size: int, max_entries: int,
                 name: str = "", flags: int = 0):
        self.fd = fd
        self.map_type = map_type
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.name = name
        self.flags = flags

    @classmethod
    def from_fd(cls, fd: int) -> KernelMap:
        """Wrap an fd (which the new object then owns), reading the map's shape from the kernel."""
        info = obj_get_info_by_fd(fd)
        if not isinstance(info, MapInfo):
            raise ValueError(f"fd {fd} is not a BPF map")
        return cls(fd, info.type, info.key_size, info.value_size, info.max_entries, info.name, info.map_flags)

    # Kept as ``type`` too because that is what the kernel and libbpf call it.
    @property
    def type(self) -> int:
        return self.map_type

    @property
    def type_name(self) -> str:
        return _MAP_NAMES.get(self.map_type, str(self.map_type))

    @property
    def is_percpu(self) -> bool:
        return self.map_type in _PERCPU_MAP_TYPES

    @property
    def value_buf_size(self) -> int:
        """Bytes a lookup returns / an update takes (all CPUs' slots for per-CPU maps)."""
        return _value_buf_size(self.map_type, self.value_size)

    @property
    def closed(self) -> bool:
        return self.fd < 0

    def fileno(self) -> int:
        return self.fd

    def _key(self, key: bytes | int | None) -> bytes | None:
        if key is None:
            return None
        if isinstance(key, int):
            return key.to_bytes(self.key_size, "little")
        return bytes(key)

    def lookup(self, key: bytes | int | None) -> bytes | None:
        return map_lookup(self, self._key(key))

    def lookup_percpu(self, key: bytes | int) -> list[bytes] | None:
        """One ``value_size`` row per possible CPU, or None if the key is absent."""
        raw = self.lookup(key)
        if raw is None:
            return None
        stride = (self.value_size + 7) & ~7
        return [raw[i * stride: i * stride + self.value_size] for i in range(possible_cpus())]

    def update(self, key: bytes | int | None, value: bytes | list[bytes], flags: int = BPF_ANY) -> None:
        """Write a value; for a per-CPU map ``value`` may be a list of per-CPU rows."""
        if isinstance(value, list):
            stride = (self.value_size + 7) & ~7
            value = b"".join(bytes(v).ljust(stride, b"\0") for v in value)
        map_update(self, self._key(key), value, flags)

    def delete(self, key: bytes | int) -> bool:
        return map_delete(self, self._key(key))

    def keys(self) -> Iterator[bytes]:
        return map_keys(self)

    def items(self) -> list[tuple[bytes, bytes]]:
        """Every (key, value) pair, keys in the kernel's iteration order; entries deleted between
        the key walk and the lookup are skipped."""
        out = []
        for k in self.keys():
            v = self.lookup(k)
            if v is not None:
                out.append((k, v))
        return out

    def info(self) -> MapInfo:
        info = obj_get_info_by_fd(_fd(self))
        assert isinstance(info, MapInfo)
        return info

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def __enter__(self) -> KernelMap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __repr__(self) -> str:
        return (f"KernelMap(fd={self.fd}, name={self.name!r}, type={self.type_name}, key_size={self.key_size}, "
                f"value_size={self.value_size}, max_entries={self.max_entries})")


def map_create(
    map_type: str | int,
    key_size: int,
    value_size: int,
    max_entries: int,
    flags: int = 0,
    name: str = "",
    *,
    inner_map_fd: int = 0,
    map_extra: int = 0,
) -> KernelMap:
    attr = MapCreateAttr()
    attr.map_type = map_type_id(map_type)
    attr.key_size = key_size
    attr.value_size = value_size
    attr.max_entries = max_entries
    attr.map_flags = flags
    attr.inner_map_fd = inner_map_fd
    attr.map_name = _name(name)
    attr.map_extra = map_extra
    fd = _sys_bpf(BPF_MAP_CREATE, attr)
    return KernelMap(fd, attr.map_type, key_size, value_size, max_entries, name, flags)


def _shape(m: int | KernelMap) -> tuple[int, int, int]:
    """(fd, key_size, value buffer size); a bare fd costs one OBJ_GET_INFO_BY_FD."""
    if isinstance(m, KernelMap):
        return _fd(m), m.key_size, m.value_buf_size
    info = obj_get_info_by_fd(m)
    if not isinstance(info, MapInfo):
        raise ValueError(f"fd {m} is not a BPF map")
    return m, info.key_size, _value_buf_size(info.type, info.value_size)


def _keybuf(key: bytes | None, key_size: int) -> ctypes.Array | None:
    # Queue, stack and bloom filter maps have no key: the kernel wants a NULL pointer.
    if key_size == 0:
        if key:
            raise ValueError("this map has no key (key_size 0); pass None or b''")
        return None
    if key is None or len(key) != key_size:
        raise ValueError(f"key must be {key_size} bytes, got {None if key is None else len(key)}")
    return _cbuf(key)


def map_update(m: int | KernelMap, key: bytes | None, value: bytes, flags: int = BPF_ANY) -> None:
    fd, key_size, vsize = _shape(m)
    # The kernel copies exactly vsize bytes from our pointer: a short buffer would leak stack garbage.
    if len(value) != vsize:
        raise ValueError(f"value must be {vsize} bytes (per-CPU maps take one 8-byte-aligned slot per CPU), "
                         f"got {len(value)}")
    kb, vb = _keybuf(key, key_size), _cbuf(value)
    attr = MapElemAttr(map_fd=fd, key=_addr(kb), value=_addr(vb), flags=flags)
    _sys_bpf(BPF_MAP_UPDATE_ELEM, attr)


def _lookup(cmd: int, m: int | KernelMap, key: bytes | None, flags: int) -> bytes | None:
    fd, key_size, vsize = _shape(m)
    kb, vb = _keybuf(key, key_size), ctypes.create_string_buffer(max(vsize, 1))
    attr = MapElemAttr(map_fd=fd, key=_addr(kb), value=_addr(vb), flags=flags)
    try:
        _sys_bpf(cmd, attr)
    except KernelError as e:
        if e.errno == _errno.ENOENT:
            return None
        raise
    return vb.raw[:vsize]


def map_lookup(m: int | KernelMap, key: bytes | None, flags: int = 0) -> bytes | None:
    """The value under ``key`` (all CPUs' slots for a per-CPU map), or None when absent.
    For queue and stack maps (key None) this peeks at the next element."""
    return _lookup(BPF_MAP_LOOKUP_ELEM, m, key, flags)


def map_lookup_and_delete(m: int | KernelMap, key: bytes | None = None) -> bytes | None:
    """Pop from a queue or stack (key None), or take an entry out of a hash map."""
    return _lookup(BPF_MAP_LOOKUP_AND_DELETE_ELEM, m, key, 0)


def map_delete(m: int | KernelMap, key: bytes) -> bool:
    """Delete ``key``; False when it was not there."""
    fd, key_size, _ = _shape(m)
    kb = _keybuf(key, key_size)
    try:
        _sys_bpf(BPF_MAP_DELETE_ELEM, MapElemAttr(map_fd=fd, key=_addr(kb)))
    except KernelError as e:
        if e.errno == _errno.ENOENT:
            return False
        raise
    return True


def map_get_next_key(m: int | KernelMap, key: bytes | None) -> bytes | None:
    """The key after ``key`` in the kernel's order (the first key when ``key`` is None), or None
    at the end. A key that is no longer in a hash map restarts the walk from the beginning."""
    fd, key_size, _ = _shape(m)
    return _next_key(fd, key_size, key)


def _next_key(fd: int, key_size: int, key: bytes | None) -> bytes | None:
    if key is not None and len(key) != key_size:
        raise ValueError(f"key must be {key_size} bytes, got {len(key)}")
    kb = _cbuf(key) if key is not None else None
    nb = ctypes.create_string_buffer(max(key_size, 1))
    try:
        _sys_bpf(BPF_MAP_GET_NEXT_KEY, MapElemAttr(map_fd=fd, key=_addr(kb), value=_addr(nb)))
    except KernelError as e:
        if e.errno == _errno.ENOENT:
            return None
        raise
    return nb.raw[:key_size]


def map_keys(m: int | KernelMap) -> Iterator[bytes]:
    """Walk all keys in the kernel's order. The map's shape is resolved once, not per step."""
    fd, key_size, _ = _shape(m)
    key = _next_key(fd, key_size, None)
    while key is not None:
        yield key
        key = _next_key(fd, key_size, key)


# --- pinned objects, ids, info -------------------------------------------------------------


def obj_pin(obj: int | KernelProgram | KernelMap, path: str) -> None:
    """Pin a program or map at ``path`` on a bpffs mount."""
    p = ctypes.create_string_buffer(os.fsencode(path))
    _sys_bpf(BPF_OBJ_PIN, ObjAttr(pathname=_addr(p), bpf_fd=_fd(obj)))


def obj_get(path: str, file_flags: int = 0) -> int:
    """An fd for the object pinned at ``path`` (wrap it with KernelProgram/KernelMap.from_fd)."""
    p = ctypes.create_string_buffer(os.fsencode(path))
    return _sys_bpf(BPF_OBJ_GET, ObjAttr(pathname=_addr(p), file_flags=file_flags))


def prog_get_fd_by_id(prog_id: int) -> int:
    return _sys_bpf(BPF_PROG_GET_FD_BY_ID, GetIdAttr(id=prog_id))


def map_get_fd_by_id(map_id: int) -> int:
    return _sys_bpf(BPF_MAP_GET_FD_BY_ID, GetIdAttr(id=map_id))


@dataclass(frozen=True)
class ProgInfo:
    type: int
    id: int
    name: str
    tag: bytes
    map_ids: tuple[int, ...]
    jited_prog_len: int
    xlated_prog_len: int
    verified_insns: int
    run_time_ns: int
    run_cnt: int
    gpl_compatible: bool


@dataclass(frozen=True)
class MapInfo:
    type: int
    id: int
    name: str
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    map_extra: int = 0


def _fd_kind(fd: int) -> str:
    # The anon inode name says what an fd is; the info call alone cannot tell progs from maps.
    try:
        link = os.readlink(f"/proc/self/fd/{fd}")
    except OSError as e:
        raise KernelError(e.errno or _errno.EBADF, f"fd {fd}: {e.strerror}") from None
    for kind in ("bpf-prog", "bpf-map", "bpf_link", "bpf-link", "btf"):
        if kind in link:
            return kind
    raise ValueError(f"fd {fd} is not a BPF object ({link})")


def _get_info(fd: int, info: ctypes.Structure) -> None:
    _sys_bpf(BPF_OBJ_GET_INFO_BY_FD, InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info)))


def obj_get_info_by_fd(fd: int) -> ProgInfo | MapInfo:
    """Kernel facts about a program or map fd (for a program, including the ids of its maps)."""
    kind = _fd_kind(fd)
    if kind == "bpf-map":
        mi = BpfMapInfo()
        _get_info(fd, mi)
        return MapInfo(mi.type, mi.id, mi.name.decode(errors="replace"), mi.key_size, mi.value_size,
                       mi.max_entries, mi.map_flags, mi.map_extra)
    if kind != "bpf-prog":
        raise ValueError(f"fd {fd} is a {kind}, not a program or map")
    pi = BpfProgInfo()
    _get_info(fd, pi)
    map_ids: tuple[int, ...] = ()
    if pi.nr_map_ids:
        # Second call with room for the ids; every other pointer field stays zero so the kernel
        # fills only what we asked for.
        n = pi.nr_map_ids
        ids = (_u32 * n)()
        pi = BpfProgInfo(nr_map_ids=n, map_ids=ctypes.addressof(ids))
        _get_info(fd, pi)
        map_ids = tuple(ids[: min(n, pi.nr_map_ids)])
    return ProgInfo(pi.type, pi.id, pi.name.decode(errors="replace"), bytes(pi.tag), map_ids, pi.jited_prog_len,
                    pi.xlated_prog_len, pi.verified_insns, pi.run_time_ns, pi.run_cnt, bool(pi.gpl_compatible & 1))


# --- availability ----------------------------------------------------------------------------

# The smallest program the kernel runs: mov64 r0, 0; exit.
_TRIVIAL = bytes([0xB7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])
_available: tuple[bool, str] | None = None


def available() -> tuple[bool, str]:
    """Whether this process may load and test-run a socket filter: (True, "") or (False, why).
    The answer is computed once per process."""
    global _available
    if _available is None:
        _available = _probe()
    return _available


def _probe() -> tuple[bool, str]:
    try:
        _syscall_nr()
    except KernelError as e:
        return False, e.strerror or str(e)
    try:
        prog = prog_load(_TRIVIAL, "socket_filter", log_level=0, name="bpfmc_probe")
    except KernelError as e:
        hint = ""
        if e.errno in (_errno.EPERM, _errno.EACCES):
            try:
                with open("/proc/sys/kernel/unprivileged_bpf_disabled") as f:
                    setting = f.read().strip()
            except OSError:
                setting = "unknown"
            hint = f" (needs root or CAP_BPF; kernel.unprivileged_bpf_disabled = {setting})"
        return False, f"BPF_PROG_LOAD of a trivial socket filter failed: {os.strerror(e.errno)}{hint}"
    except OSError as e:
        return False, f"bpf() unusable: {e}"
    with prog:
        try:
            # Socket-filter test runs need at least an Ethernet header's worth of data.
            res = prog_test_run(prog, bytes(64))
        except KernelError as e:
            return False, f"BPF_PROG_TEST_RUN failed: {os.strerror(e.errno)}"
    if res.retval != 0:
        return False, f"trivial program returned {res.retval}, expected 0"
    return True, ""


# --- libbpf ----------------------------------------------------------------------------------
#
# The reference loader. Written against libbpf 1.x semantics (1.1 on Debian 12): open returns
# NULL with errno set, load returns -errno, iteration is bpf_object__next_program/next_map.

_LIBBPF_WARN, _LIBBPF_INFO, _LIBBPF_DEBUG = 0, 1, 2
_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
# Bytes of one va_list: va_copy is a plain struct copy on these ABIs, which lets us measure the
# formatted length with one vsnprintf and format with a second.
_VA_LIST_SIZE = {"x86_64": 24, "aarch64": 32}

_libbpf: ctypes.CDLL | None = None
_libbpf_error: str | None = None
_libbpf_lock = threading.Lock()
_capture: list[str] | None = None
_capture_debug = False


def _load_libbpf() -> ctypes.CDLL:
    global _libbpf, _libbpf_error
    if _libbpf is not None:
        return _libbpf
    if _libbpf_error is not None:
        raise KernelError(_errno.ENOENT, _libbpf_error)
    if platform.machine() not in _VA_LIST_SIZE:
        _libbpf_error = f"libbpf print capture is not implemented for {platform.machine()}"
        raise KernelError(_errno.ENOSYS, _libbpf_error)
    lib = None
    for cand in ("libbpf.so.1", ctypes.util.find_library("bpf")):
        if cand:
            try:
                lib = ctypes.CDLL(cand, use_errno=True)
                break
            except OSError:
                continue
    if lib is None:
        _libbpf_error = "libbpf.so.1 not found (install libbpf1)"
        raise KernelError(_errno.ENOENT, _libbpf_error)
    P, I, U, C = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_char_p
    # Every pointer-returning function needs restype c_void_p: the default c_int truncates.
    sigs = {
        "libbpf_set_print": (P, [P]),
        "libbpf_strerror": (I, [I, C, ctypes.c_size_t]),
        "bpf_object__open_file": (P, [C, P]),
        "bpf_object__load": (I, [P]),
        "bpf_object__close": (None, [P]),
        "bpf_object__next_program": (P, [P, P]),
        "bpf_object__next_map": (P, [P, P]),
        "bpf_program__name": (C, [P]),
        "bpf_program__section_name": (C, [P]),
        "bpf_program__fd": (I, [P]),
        "bpf_program__type": (I, [P]),
        "bpf_map__name": (C, [P]),
        "bpf_map__fd": (I, [P]),
        "bpf_map__type": (I, [P]),
        "bpf_map__key_size": (U, [P]),
        "bpf_map__value_size": (U, [P]),
        "bpf_map__max_entries": (U, [P]),
        "bpf_map__map_flags": (U, [P]),
    }
    try:
        for fname, (res, args) in sigs.items():
            fn = getattr(lib, fname)
            fn.restype, fn.argtypes = res, args
    except AttributeError as e:
        _libbpf_error = f"libbpf lacks a needed symbol (want libbpf >= 0.8): {e}"
        raise KernelError(_errno.ENOSYS, _libbpf_error) from None
    libc = ctypes.CDLL(None)
    libc.vsnprintf.restype = ctypes.c_int
    libc.vsnprintf.argtypes = [P, ctypes.c_size_t, P, P]
    lib._vsnprintf = libc.vsnprintf  # type: ignore[attr-defined]
    _libbpf = lib
    return lib


def _on_print(level: int, fmt: int | None, ap: int | None) -> int:
    # Runs inside libbpf; must never raise (ctypes would only print the traceback).
    try:
        if _capture is None or fmt is None or (level >= _LIBBPF_DEBUG and not _capture_debug):
            return 0
        vsn = _libbpf._vsnprintf  # type: ignore[union-attr]
        size = _VA_LIST_SIZE[platform.machine()]
        copy = ctypes.create_string_buffer(size)
        ctypes.memmove(copy, ap, size)
        n = vsn(None, 0, fmt, copy)
        if n < 0:
            return 0
        buf = ctypes.create_string_buffer(n + 1)
        vsn(buf, n + 1, fmt, ap)
        _capture.append(buf.value.decode(errors="replace"))
    except Exception:  # noqa: BLE001 - see above
        pass
    return 0


_print_cb = _PRINT_FN(_on_print)  # module-level so the C pointer outlives every call


def _libbpf_strerror(err: int) -> str:
    # libbpf numbers its own failures from 4000 (LIBBPF_ERRNO__*), which strerror does not know.
    buf = ctypes.create_string_buffer(256)
    if _libbpf is not None and _libbpf.libbpf_strerror(err, buf, len(buf)) == 0:
        return buf.value.decode(errors="replace")
    return os.strerror(err)


def libbpf_available() -> tuple[bool, str]:
    """Whether libbpf could be loaded through ctypes: (True, "") or (False, why)."""
    try:
        _load_libbpf()
    except KernelError as e:
        return False, e.strerror or str(e)
    return True, ""


@dataclass
class KernelObject:
    """Programs and maps of one ELF object as libbpf loaded them into the kernel.

    The fds are duplicates of libbpf's, and libbpf's own object is closed right after loading, so
    this object's lifetime is independent of libbpf's bookkeeping.
    """

    path: str
    programs: dict[str, KernelProgram]
    maps: dict[str, KernelMap]
    log: str = ""

    def map(self, name: str) -> KernelMap:
        """A map by its name, or by the section of a global-data map: libbpf 1.x names those
        ``<object prefix>.bss``/``.data``/``.rodata`` (15 characters at most), so ``".bss"`` finds
        ``"b3_hash.bss"``."""
        if name in self.maps:
            return self.maps[name]
        hits = [m for n, m in self.maps.items() if name.startswith(".") and n.endswith(name)]
        if len(hits) == 1:
            return hits[0]
        what = "ambiguous" if hits else "no such map"
        raise KeyError(f"{what}: {name!r} in {self.path} (maps: {', '.join(self.maps) or 'none'})")

    def close(self) -> None:
        for p in self.programs.values():
            p.close()
        for m in self.maps.values():
            m.close()

    def __enter__(self) -> KernelObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_object(path: str | os.PathLike, *, debug: bool = False) -> KernelObject:
    """Open and load an ELF object with libbpf. ``log`` collects libbpf's warnings and notes
    (its debug chatter too when ``debug``); a refusal raises :class:`KernelVerifierError` whose
    ``log`` contains the verifier's text."""
    global _capture, _capture_debug
    lib = _load_libbpf()
    spath = os.fspath(path)
    with _libbpf_lock:
        lines: list[str] = []
        _capture, _capture_debug = lines, debug
        old = lib.libbpf_set_print(ctypes.cast(_print_cb, ctypes.c_void_p))
        obj = None
        try:
            obj = lib.bpf_object__open_file(os.fsencode(spath), None)
            if not obj:
                err = ctypes.get_errno() or _errno.EINVAL
                raise KernelError(err, f"libbpf could not open {spath}: {_libbpf_strerror(err)}", "".join(lines))
            ret = lib.bpf_object__load(obj)
            if ret < 0:
                raise KernelVerifierError(-ret, f"libbpf could not load {spath}: {_libbpf_strerror(-ret)}",
                                          "".join(lines))
            programs: dict[str, KernelProgram] = {}
            prog = lib.bpf_object__next_program(obj, None)
            while prog:
                fd = lib.bpf_program__fd(prog)
                name = lib.bpf_program__name(prog).decode()
                if fd >= 0:  # a program with autoload off has no fd
                    sec = lib.bpf_program__section_name(prog)
                    programs[name] = KernelProgram(os.dup(fd), name, lib.bpf_program__type(prog),
                                                   section=sec.decode() if sec else None)
                prog = lib.bpf_object__next_program(obj, prog)
            maps: dict[str, KernelMap] = {}
            m = lib.bpf_object__next_map(obj, None)
            while m:
                fd = lib.bpf_map__fd(m)
                name = lib.bpf_map__name(m).decode()
                if fd >= 0:
                    maps[name] = KernelMap(os.dup(fd), lib.bpf_map__type(m), lib.bpf_map__key_size(m),
                                           lib.bpf_map__value_size(m), lib.bpf_map__max_entries(m), name,
                                           lib.bpf_map__map_flags(m))
                m = lib.bpf_object__next_map(obj, m)
            return KernelObject(spath, programs, maps, "".join(lines))
        finally:
            if obj:
                lib.bpf_object__close(obj)
            lib.libbpf_set_print(old)
            _capture = None
