"""Versioned weights between learner and actors: safetensors bytes in sha256-checked chunks.

A transfer is named ``<part>-<learner instance>-<version>``; its safetensors metadata repeats part,
instance and version, so a payload cannot be applied under another name. The receiver hands over
complete, verified payloads only; what fails (a bad checksum, a truncated transfer, a state for
another model) is refused, counted and logged, and the actor keeps the weights it has.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
from dataclasses import dataclass

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from robot_parl.transport.channel import Publisher
from robot_parl.transport.chunks import Reassembler, split_payload
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.messages import MessageError

PARTS = ("policy", "critic")
log = logging.getLogger(__name__)


@dataclass
class Weights:
    part: str
    instance: str
    version: int
    state: dict[str, torch.Tensor]


def pack(weights: Weights) -> bytes:
    """Serialize as safetensors (contiguous CPU tensors) with part, instance and version as metadata."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in weights.state.items()}
    return save_safetensors(state, metadata={"part": weights.part, "instance": weights.instance,
                                             "version": str(weights.version)})


def unpack(transfer_id: str, data: bytes) -> Weights:
    """Parse a verified payload; raises MessageError when it is not what its name says."""
    try:
        state = load_safetensors(data)  # validates the whole layout first
        (header_len,) = struct.unpack_from("<Q", data)
        meta = json.loads(data[8:8 + header_len]).get("__metadata__", {})
        weights = Weights(meta["part"], meta["instance"], int(meta["version"]), state)
    except Exception as err:  # safetensors raises its own error types for malformed bytes
        raise MessageError(f"weights transfer {transfer_id!r} is not a valid safetensors payload: {err}") from None
    if transfer_id != f"{weights.part}-{weights.instance}-{weights.version}" or weights.part not in PARTS:
        raise MessageError(f"weights transfer {transfer_id!r} carries {weights.part} v{weights.version} of "
                           f"{weights.instance}: the name and the content disagree")
    return weights


class WeightPublisher:
    """Sends weights on ``weights/<part>`` of the learner's key space (blocking: nothing dropped)."""

    def __init__(self, session, keys: KeySpace):
        self._pubs = {part: Publisher(session, keys.weights(part), block=True) for part in PARTS}

    def publish(self, weights: Weights) -> int:
        """Send one version; returns the payload size in bytes."""
        data = pack(weights)
        for chunk in split_payload(data, f"{weights.part}-{weights.instance}-{weights.version}"):
            self._pubs[weights.part].put_bytes(chunk)
        return len(data)

    def matched(self, timeout_s: float) -> bool:
        """Wait until an actor subscribes to every part (see :meth:`Publisher.matched`)."""
        return all(pub.matched(timeout_s) for pub in self._pubs.values())

    def close(self) -> None:
        for pub in self._pubs.values():
            pub.close()


class WeightInbox:
    """Receives weights (transport thread); :meth:`take` returns the newest complete version of each part.

    A transfer whose next chunk does not come within ``transfer_timeout_s`` is dropped (refused and counted), so
    transfers that never complete cannot hold memory.
    """

    def __init__(self, session, keys: KeySpace, transfer_timeout_s: float = 60.0):
        self._reassembler = Reassembler(timeout_s=transfer_timeout_s)
        self._lock = threading.Lock()
        self._latest: dict[str, Weights] = {}
        self.refused = 0
        self.last_error = ""
        self._subs = [session.declare_subscriber(keys.weights(part), self._on_sample) for part in PARTS]

    @property
    def pending_transfers(self) -> int:
        """Transfers begun and not yet complete."""
        with self._lock:
            return len(self._reassembler)

    def _on_sample(self, sample) -> None:
        with self._lock:
            expired = self._reassembler.expire()
            try:
                done, error = self._reassembler.add(sample.payload.to_bytes()), ""
            except MessageError as err:
                done, error = None, str(err)
        self._refuse_expired(expired)
        if done is not None:
            try:
                weights = unpack(*done)
            except MessageError as err:
                error = str(err)
            else:
                with self._lock:
                    self._latest[weights.part] = weights
        if error:
            self.refuse(error)

    def _refuse_expired(self, transfers: list[str]) -> None:
        for transfer in transfers:
            self.refuse(f"transfer {transfer!r} got no chunk for {self._reassembler.timeout_s} s; dropped incomplete")

    def refuse(self, why: str) -> None:
        """Count and log a payload that cannot be applied (also called by the actor when loading fails)."""
        with self._lock:
            self.refused += 1
            self.last_error = why
        log.warning("weights refused: %s", why)

    def take(self) -> list[Weights]:
        """Weights that arrived since the last call (newest per part)."""
        with self._lock:
            out = list(self._latest.values())
            self._latest.clear()
            expired = self._reassembler.expire()
        self._refuse_expired(expired)
        return out

    def close(self) -> None:
        for sub in self._subs:
            sub.undeclare()
