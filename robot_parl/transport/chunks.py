"""Large payloads (weights, up to hundreds of MB) as a stream of chunks with a sha256 over the whole.

The receiver refuses a transfer whole when a chunk disagrees with the others, the reassembled bytes
have the wrong size or hash, or chunks stop arriving before it is complete: never a partial payload.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from robot_parl.transport.messages import Chunk, MessageError, decode, encode

DEFAULT_CHUNK_BYTES = 8 << 20


class PayloadError(MessageError):
    """A chunked transfer that cannot be delivered intact."""


def split_payload(data: bytes, transfer_id: str, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[bytes]:
    """Encoded Chunk messages carrying ``data``; every chunk names the whole's size and sha256."""
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be >= 1, got {chunk_bytes}")
    digest = hashlib.sha256(data).hexdigest()
    count = max(1, -(-len(data) // chunk_bytes))
    whole = np.frombuffer(data, dtype=np.uint8)
    for i in range(count):
        yield encode(Chunk(transfer_id, i, count, len(data), digest, whole[i * chunk_bytes:(i + 1) * chunk_bytes]))


@dataclass
class _Transfer:
    first: Chunk
    last_seen: float
    parts: dict[int, bytes] = field(default_factory=dict)


class Reassembler:
    """Collects chunks of concurrent transfers; :meth:`add` returns a payload once it is complete and verified."""

    def __init__(self, max_bytes: int = 4 << 30, timeout_s: float = 60.0):
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self._transfers: dict[str, _Transfer] = {}
        self.refused = 0

    def add(self, payload: bytes | memoryview, now: float | None = None) -> tuple[str, bytes] | None:
        """Take one encoded chunk; returns (transfer_id, payload) when the transfer completes.

        Raises MessageError for a malformed chunk and PayloadError when the transfer is refused
        (it is then forgotten; a resend starts afresh).
        """
        try:
            chunk = decode(payload, Chunk)
        except MessageError:
            self.refused += 1
            raise
        now = time.monotonic() if now is None else now
        t = self._transfers.get(chunk.transfer_id)
        if t is None:
            if chunk.total_bytes > self.max_bytes:
                return self._refuse(chunk.transfer_id, f"announces {chunk.total_bytes} bytes, "
                                                        f"more than the limit of {self.max_bytes}")
            t = self._transfers[chunk.transfer_id] = _Transfer(chunk, now)
        t.last_seen = now
        f = t.first
        if (chunk.count, chunk.total_bytes, chunk.sha256) != (f.count, f.total_bytes, f.sha256):
            return self._refuse(chunk.transfer_id, f"chunk {chunk.index} disagrees with the transfer's "
                                                    "count, size or sha256")
        if not 0 <= chunk.index < f.count or chunk.index in t.parts:
            return self._refuse(chunk.transfer_id, f"chunk index {chunk.index} is out of range or repeated")
        t.parts[chunk.index] = chunk.data.tobytes()
        if len(t.parts) < f.count:
            return None
        data = b"".join(t.parts[i] for i in range(f.count))
        del self._transfers[chunk.transfer_id]
        if len(data) != f.total_bytes:
            return self._refuse(chunk.transfer_id, f"{len(data)} bytes received, {f.total_bytes} announced")
        if hashlib.sha256(data).hexdigest() != f.sha256:
            return self._refuse(chunk.transfer_id, "sha256 mismatch")
        return chunk.transfer_id, data

    def __len__(self) -> int:
        """Transfers begun and not complete."""
        return len(self._transfers)

    def expire(self, now: float | None = None) -> list[str]:
        """Refuse and forget transfers that got no chunk for ``timeout_s``: their missing chunks are lost."""
        now = time.monotonic() if now is None else now
        stale = [tid for tid, t in self._transfers.items() if now - t.last_seen > self.timeout_s]
        for tid in stale:
            del self._transfers[tid]
            self.refused += 1
        return stale

    def _refuse(self, transfer_id: str, why: str):
        self._transfers.pop(transfer_id, None)
        self.refused += 1
        raise PayloadError(f"transfer {transfer_id!r} refused: {why}")
