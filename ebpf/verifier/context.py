"""Which context bytes each program type may read or write, at which sizes, and what loads give.

The table agrees with the kernel's ``*_is_valid_access`` callbacks as the host kernel (6.18)
answered them: every (offset, size, read/write) of ``struct xdp_md`` and ``struct __sk_buff``
was loaded once and the kernel's verdict recorded. In words:

- ``xdp``: read-only; every field is a 4-byte load; ``data``/``data_end``/``data_meta`` give
  packet pointers; ``egress_ifindex`` needs a devmap attachment, so a plain XDP program cannot
  read it.
- ``sched_cls``: most 4-byte fields read at any aligned size up to 4 ("narrow" loads); ``cb`` is
  a 20-byte scratch area read and written at any aligned size that fits; ``data``/``data_end``/
  ``data_meta`` are 4-byte loads giving packet pointers; ``mark``, ``queue_mapping``,
  ``priority``, ``tc_index``, ``tc_classid`` are 4-byte writes, ``tstamp`` an 8-byte read/write;
  ``sk`` loads a socket pointer that may be NULL.
- ``socket_filter``: the same reads without direct packet access, ``tc_classid``, ``tstamp``,
  ``wire_len``, ``tstamp_type``, ``hwtstamp``; only ``cb`` is writable.
- ``seccomp``: ``struct seccomp_data`` (64 bytes), read-only, aligned 4- or 8-byte loads.
- ``raw``: no context structure (r1 is the event buffer: see :mod:`.check`).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import state as st


@dataclass(frozen=True)
class CtxField:
    name: str
    offset: int
    size: int
    read: str = "narrow"  # "narrow": any aligned size up to size; "exact": only size; "area": any fitting
    write: str = ""  # "", "exact" or "area"
    loads: str = st.SCALAR  # the register type a full-size load gives


@dataclass(frozen=True)
class CtxLayout:
    name: str
    size: int
    fields: tuple[CtxField, ...]

    def field_at(self, off: int, size: int) -> CtxField | None:
        for f in self.fields:
            if f.offset <= off and off + size <= f.offset + f.size:
                return f
        return None

    def check(self, off: int, size: int, write: bool) -> tuple[CtxField | None, str]:
        """(field, "") when the access is allowed, else (None, reason)."""
        if off < 0 or off + size > self.size:
            return None, f"offset {off} size {size} is outside the {self.size}-byte {self.name}"
        if off % size:
            return None, f"offset {off} is not aligned to the access size {size}"
        f = self.field_at(off, size)
        if f is None:
            return None, f"no {self.name} field a program may access at offset {off} size {size}"
        mode = f.write if write else f.read
        if not mode:
            return None, f"{self.name} field '{f.name}' is read-only" if write else \
                f"{self.name} field '{f.name}' cannot be read by this program type"
        if mode == "exact" and (size != f.size or off != f.offset):
            return None, f"{self.name} field '{f.name}' must be accessed with its full {f.size}-byte size"
        return f, ""


def _x(name: str, off: int, read: str = "exact", loads: str = st.SCALAR) -> CtxField:
    return CtxField(name, off, 4, read, "", loads)


XDP = CtxLayout("xdp_md", 24, (
    _x("data", 0, loads=st.PKT), _x("data_end", 4, loads=st.PKT_END), _x("data_meta", 8, loads=st.PKT_META),
    _x("ingress_ifindex", 12), _x("rx_queue_index", 16), CtxField("egress_ifindex", 20, 4, "", ""),
))


def _skb(tc: bool) -> CtxLayout:
    w = "exact" if tc else ""
    f = [
        CtxField("len", 0, 4), CtxField("pkt_type", 4, 4), CtxField("mark", 8, 4, write=w),
        CtxField("queue_mapping", 12, 4, write=w), CtxField("protocol", 16, 4), CtxField("vlan_present", 20, 4),
        CtxField("vlan_tci", 24, 4), CtxField("vlan_proto", 28, 4), CtxField("priority", 32, 4, write=w),
        CtxField("ingress_ifindex", 36, 4), CtxField("ifindex", 40, 4), CtxField("tc_index", 44, 4, write=w),
        CtxField("cb", 48, 20, "area", "area"), CtxField("hash", 68, 4),
        CtxField("tc_classid", 72, 4, "narrow" if tc else "", w),
        CtxField("data", 76, 4, "exact" if tc else "", loads=st.PKT),
        CtxField("data_end", 80, 4, "exact" if tc else "", loads=st.PKT_END),
        CtxField("napi_id", 84, 4), CtxField("family", 88, 48, "", ""),  # sock_ops fields: not for these types
        CtxField("data_meta", 140, 4, "exact" if tc else "", loads=st.PKT_META),
        CtxField("flow_keys", 144, 8, "", ""),
        CtxField("tstamp", 152, 8, "exact" if tc else "", w),
        CtxField("wire_len", 160, 4, "narrow" if tc else ""), CtxField("gso_segs", 164, 4),
        CtxField("sk", 168, 8, "exact", loads=st.SOCK_OR_NULL), CtxField("gso_size", 176, 4),
        CtxField("tstamp_type", 180, 1, "exact" if tc else ""), CtxField("hwtstamp", 184, 8, "exact" if tc else ""),
    ]
    return CtxLayout("__sk_buff", 192, tuple(f))


SECCOMP = CtxLayout("seccomp_data", 64, (
    CtxField("nr", 0, 4, "exact"), CtxField("arch", 4, 4, "exact"), CtxField("instruction_pointer", 8, 8, "area"),
    CtxField("args", 16, 48, "area"),
))

LAYOUTS: dict[str, CtxLayout | None] = {
    "raw": None, "xdp": XDP, "sched_cls": _skb(True), "socket_filter": _skb(False), "seccomp": SECCOMP,
}

# What R0 may hold at exit: None means any scalar (the kernel checks no range for these types).
RETURN_RANGES: dict[str, tuple[int, int] | None] = {
    "raw": None, "xdp": None, "sched_cls": None, "socket_filter": None, "seccomp": None,
}

# Types that may use the legacy packet loads (ld_abs/ld_ind), with the context in r6.
LD_ABS_TYPES = frozenset({"sched_cls", "socket_filter"})
