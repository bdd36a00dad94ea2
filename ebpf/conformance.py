"""Reader for the ``bpf_conformance`` ``.data`` test format.

A file is a list of ``-- name`` sections (``asm``, ``raw``, ``mem``, ``result``, ``error``, and
the ignored ``c`` / ``no register offset``); ``#`` starts a comment anywhere. See the conformance
README for the rules implemented here. Decisions of our own:

* An unknown directive makes the whole file a skipped case (``skip_reason`` names it), as the
  upstream runner does; ``negative/invalid_unknown_directive.data`` therefore parses to a skip.
* A file with neither ``-- result`` nor ``-- error``, or without instructions, is skipped too.
* ``-- error`` with no text gives ``error == ""``: "loading must fail, any message" (the
  ``negative/unused-*`` files); absent, ``error is None``.
* Invalid assembly raises :class:`~bpfmc.ebpf.asm.AsmError` with the file's line number;
  malformed ``raw``/``mem``/``result`` text raises :class:`FormatError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .asm import assemble_lines

KNOWN_SECTIONS = ("asm", "raw", "mem", "result", "error", "c", "no register offset")
_IGNORED = ("c", "no register offset")
_BYTE_RE = re.compile(r"[0-9a-fA-F]{2}")
_U64 = (1 << 64) - 1


class FormatError(ValueError):
    """A ``.data`` file whose non-assembly sections cannot be read."""

    def __init__(self, path: str, line: int, message: str):
        super().__init__(f"{path}:{line}: {message}")
        self.line = line
        self.reason = message


@dataclass(frozen=True)
class ConformanceCase:
    name: str
    path: Path | None
    code: bytes | None  # None when skipped
    mem: bytes
    result: int | None  # expected r0, unsigned 64-bit
    error: str | None  # expected failure text; "" means any failure
    skip_reason: str | None
    asm_text: str | None  # the -- asm section as written (comments included), if any

    @property
    def expects_failure(self) -> bool:
        return self.error is not None and self.result is None


def _sections(text: str) -> tuple[dict[str, list[tuple[int, str]]], list[tuple[int, str]]]:
    """Split into sections of (line number, comment-stripped line); also return unknown directives."""
    sections: dict[str, list[tuple[int, str]]] = {}
    unknown: list[tuple[int, str]] = []
    current: list[tuple[int, str]] | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        body = line.split("#", 1)[0].strip()
        if body.startswith("--"):
            name = " ".join(body[2:].split())
            if name not in KNOWN_SECTIONS:
                unknown.append((lineno, name))
                current = None
                continue
            current = sections.setdefault(name, [])
            continue
        if current is not None:
            current.append((lineno, line))
    return sections, unknown


def _nonblank(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    out = []
    for lineno, line in lines:
        body = line.split("#", 1)[0].strip()
        if body:
            out.append((lineno, body))
    return out


def _parse_result(path: str, lines: list[tuple[int, str]]) -> int:
    lineno, text = lines[-1]
    try:
        value = int(text, 16) if "0x" in text.lower() else int(text, 10)
    except ValueError:
        raise FormatError(path, lineno, f"invalid result '{text}'") from None
    if not 0 <= value <= _U64:
        raise FormatError(path, lineno, f"result '{text}' does not fit in 64 unsigned bits")
    return value


def _parse_mem(path: str, lines: list[tuple[int, str]]) -> bytes:
    out = bytearray()
    for lineno, text in lines:
        for tok in text.split():
            if not _BYTE_RE.fullmatch(tok):
                raise FormatError(path, lineno, f"invalid memory byte '{tok}' (expected two hex digits)")
            out.append(int(tok, 16))
    return bytes(out)


def _parse_raw(path: str, lines: list[tuple[int, str]]) -> bytes:
    """Two conventions: 8 two-digit hex bytes per line in memory order (negative/unused-*), or
    one 64-bit integer per token whose little-endian bytes are the instruction (tests/lddw)."""
    rows = [(lineno, text.split()) for lineno, text in lines]
    as_bytes = bool(rows) and all(len(toks) == 8 and all(_BYTE_RE.fullmatch(t) for t in toks) for _, toks in rows)
    out = bytearray()
    for lineno, toks in rows:
        if as_bytes:
            out += bytes(int(t, 16) for t in toks)
            continue
        for tok in toks:
            try:
                value = int(tok, 16) if tok.lower().startswith("0x") else int(tok, 10)
            except ValueError:
                raise FormatError(path, lineno, f"invalid raw instruction '{tok}'") from None
            if not 0 <= value <= _U64:
                raise FormatError(path, lineno, f"raw instruction '{tok}' does not fit in 64 bits")
            out += value.to_bytes(8, "little")
    return bytes(out)


def parse_text(text: str, name: str = "<string>", path: Path | None = None) -> ConformanceCase:
    """Parse the contents of one ``.data`` file. Raises AsmError or FormatError."""
    where = str(path) if path is not None else name
    sections, unknown = _sections(text)
    asm_lines = sections.get("asm")
    asm_text = "\n".join(line for _, line in asm_lines) if asm_lines is not None else None
    result_lines = _nonblank(sections.get("result", []))
    error_lines = _nonblank(sections.get("error", []))
    result = _parse_result(where, result_lines) if result_lines else None
    error = error_lines[-1][1] if error_lines else ("" if "error" in sections else None)
    mem = _parse_mem(where, _nonblank(sections.get("mem", [])))

    def skipped(reason: str) -> ConformanceCase:
        return ConformanceCase(name, path, None, mem, result, error, reason, asm_text)

    if unknown:
        lineno, directive = unknown[0]
        return skipped(f"unknown directive '-- {directive}' at line {lineno}")
    if result is None and error is None:
        return skipped("no expected result or error")
    if "raw" in sections:
        code = _parse_raw(where, _nonblank(sections["raw"]))
    else:
        code = assemble_lines(asm_lines or [])
    if not code:
        return skipped("no instructions")
    return ConformanceCase(name, path, code, mem, result, error, None, asm_text)


def parse_file(path: str | Path) -> ConformanceCase:
    path = Path(path)
    return parse_text(path.read_text(encoding="utf-8"), name=path.stem, path=path)


def case_paths(directory: str | Path) -> list[Path]:
    """The ``.data`` files of a directory, sorted by name."""
    return sorted(Path(directory).glob("*.data"))


def iter_cases(directory: str | Path) -> Iterator[ConformanceCase]:
    """Parse every ``.data`` file of a directory in name order.

    Raises on the first file that cannot be parsed (AsmError, FormatError); a runner that
    must report such files instead should loop over :func:`case_paths` with :func:`parse_file`.
    """
    for path in case_paths(directory):
        yield parse_file(path)
