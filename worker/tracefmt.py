"""Formatting ``bpf_trace_printk`` lines, after the run, the way the kernel's trace_pipe shows
them. The engine records the format bytes and the three arguments; formatting here keeps string
handling out of compiled code."""

from __future__ import annotations

import re

_SPEC = re.compile(rb"%([-+ 0#]*)(\d*)(?:\.(\d+))?(ll|l|h|hh|z)?([diuxXpcs%])")


def format_trace(record: bytes) -> str:
    """``record`` = the format bytes (as passed, NUL included or not) + three little-endian u64."""
    fmt, raw = record[:-24], record[-24:]
    fmt = fmt.split(b"\0", 1)[0]
    args = [int.from_bytes(raw[i:i + 8], "little") for i in range(0, 24, 8)]
    out = []
    pos = 0
    used = 0
    for m in _SPEC.finditer(fmt):
        out.append(fmt[pos:m.start()].decode(errors="replace"))
        pos = m.end()
        flags, width, _prec, length, conv = m.groups()
        if conv == b"%":
            out.append("%")
            continue
        value = args[used] if used < 3 else 0
        used += 1
        bits = 64 if length in (b"l", b"ll", b"z") or conv == b"p" else 32
        value &= (1 << bits) - 1
        if conv in (b"d", b"i"):
            if value >> (bits - 1):
                value -= 1 << bits
            text = str(value)
        elif conv == b"u":
            text = str(value)
        elif conv == b"x":
            text = f"{value:x}"
        elif conv == b"X":
            text = f"{value:X}"
        elif conv == b"p":
            text = f"0x{value:x}"
        elif conv == b"c":
            text = chr(value & 0xFF)
        else:  # %s: the string lived in program memory; show the pointer
            text = f"<0x{value:x}>"
        w = int(width) if width else 0
        pad = "0" if b"0" in (flags or b"") and b"-" not in (flags or b"") else " "
        text = text.ljust(w) if b"-" in (flags or b"") else text.rjust(w, pad)
        out.append(text)
    out.append(fmt[pos:].decode(errors="replace"))
    return "".join(out).rstrip("\n")
