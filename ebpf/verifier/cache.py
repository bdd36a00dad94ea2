"""Verdicts remembered on disk, so a program verified once is not walked again.

Verification is a pure function of the program's code, its type, the privilege mode, the maps'
definitions and the verifier itself; the key hashes all of them (the verifier by its own source
files, so a new verifier never reuses an old verdict). A long walk (tens of seconds for loops
the kernel explores to its 1,000,000-instruction limit) then costs its time once per program.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from ..maps import MapSpec
from ..program import Program
from . import Verdict, VerifierError, verify

_SOURCES = Path(__file__).parent


def _verifier_fingerprint() -> bytes:
    h = hashlib.sha256()
    for path in sorted(_SOURCES.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.digest()


def default_dir() -> Path:
    root = os.environ.get("BPFMC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "bpfmc")
    return Path(root) / "verdicts"


class VerdictCache:
    def __init__(self, folder: str | Path | None = None):
        self.folder = Path(folder) if folder is not None else default_dir()
        self._fingerprint = _verifier_fingerprint()

    def key(self, program: Program, maps: Sequence[MapSpec], prog_type: str, privileged: bool,
            log_level: int) -> str:
        h = hashlib.sha256(self._fingerprint)
        h.update(program.code)
        h.update(json.dumps([prog_type, privileged, log_level,
                             [[m.map_type, m.key_size, m.value_size, m.max_entries, m.flags] for m in maps]]).encode())
        return h.hexdigest()

    def verify(self, program: Program, *, maps: Sequence[MapSpec] = (), privileged: bool = True,
               log_level: int = 1) -> Verdict:
        """``verify`` with the verdict remembered; the log of a remembered verdict is the one
        its first walk wrote (statistics included)."""
        prog_type = program.prog_type
        path = self.folder / f"{self.key(program, maps, prog_type, privileged, log_level)}.json"
        try:
            doc = json.loads(path.read_text())
            err = doc["error"]
            return Verdict(doc["accepted"], None if err is None else VerifierError(err["pc"], err["message"],
                                                                                  err["insn"], err["detail"]),
                           doc["log"], doc["stats"] | {"cached": True})
        except (OSError, ValueError, KeyError, TypeError):
            pass
        verdict = verify(program, maps=maps, privileged=privileged, log_level=log_level)
        e = verdict.error
        doc = {"accepted": verdict.accepted, "log": verdict.log, "stats": verdict.stats,
               "error": None if e is None else {"pc": e.pc, "message": e.message, "insn": e.insn, "detail": e.log}}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(doc))
            tmp.replace(path)  # atomic: a reader sees the whole verdict or none
        except OSError:
            pass  # an unwritable cache only costs time
        return verdict
