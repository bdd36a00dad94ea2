"""Record and replay: a file that reproduces a run of the machine exactly.

A recording holds what decides a deterministic run: a header (the object's SHA-256, the program,
the hardware model, the seed, the clock mode, control-plane map updates made before the first
event) and then every batch as it was steered: the events' bytes, their lengths and the core
each one ran on. Replaying feeds the same batches with explicit core steering, so neither the
steering mode nor the number of workers can change where an event runs.

Layout (little-endian)::

    "BPFMCREC" u32 version u32 header_bytes  header (JSON, UTF-8)
    then per batch: "BTCH" u32 n  u32 lengths[n]  u32 cores[n]  u8 blob[sum(lengths)]

A file that ends inside a batch (a recorder killed mid-write) replays up to the last whole batch.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"BPFMCREC"
VERSION = 1
_HEAD = struct.Struct("<8sII")
_BATCH = struct.Struct("<4sI")


class RecordingError(ValueError):
    """A file that is not a recording, or of a version this build cannot read."""


def object_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Recorder:
    """Appends batches to a recording file; use as a context manager."""

    path: Path
    header: dict

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self._f = self.path.open("wb")
        head = json.dumps(self.header, sort_keys=True).encode()
        self._f.write(_HEAD.pack(MAGIC, VERSION, len(head)) + head)
        self.batches = 0
        self.events = 0

    def add(self, blob: np.ndarray, lengths: np.ndarray, cores: np.ndarray) -> None:
        n = len(lengths)
        self._f.write(_BATCH.pack(b"BTCH", n))
        self._f.write(np.asarray(lengths, "<u4").tobytes())
        self._f.write(np.asarray(cores, "<u4").tobytes())
        self._f.write(np.asarray(blob, np.uint8).tobytes())
        self._f.flush()
        self.batches += 1
        self.events += n

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Recording:
    """A recording read back: ``header`` and ``batches()``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._data = self.path.read_bytes()
        except OSError as e:
            raise RecordingError(f"cannot read {path}: {e.strerror}") from None
        if len(self._data) < _HEAD.size or self._data[:8] != MAGIC:
            raise RecordingError(f"{path}: not a bpfmc recording (no {MAGIC.decode()} header)")
        _, version, hlen = _HEAD.unpack_from(self._data)
        if version != VERSION:
            raise RecordingError(f"{path}: recording format version {version}; this build reads {VERSION}")
        try:
            self.header = json.loads(self._data[_HEAD.size:_HEAD.size + hlen])
        except ValueError as e:
            raise RecordingError(f"{path}: damaged header: {e}") from None
        self._start = _HEAD.size + hlen

    def batches(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(blob, lengths, cores) of each whole batch, in recorded order."""
        data, off = self._data, self._start
        while off + _BATCH.size <= len(data):
            tag, n = _BATCH.unpack_from(data, off)
            if tag != b"BTCH":
                raise RecordingError(f"{self.path}: damaged batch record at byte {off}")
            off += _BATCH.size
            if off + 8 * n > len(data):
                return
            lengths = np.frombuffer(data, "<u4", n, off).astype(np.int64)
            cores = np.frombuffer(data, "<u4", n, off + 4 * n).astype(np.int64)
            off += 8 * n
            size = int(lengths.sum())
            if off + size > len(data):
                return
            yield np.frombuffer(data, np.uint8, size, off).copy(), lengths, cores
            off += size
