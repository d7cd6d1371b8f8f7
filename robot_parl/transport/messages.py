"""Versioned wire messages: a small msgpack header plus raw numpy buffers. Never pickle.

Layout of one payload::

    b"RPRL" | uint32 LE header length | msgpack header | array buffers back to back

The header holds the schema version, the message type, its scalar fields and, per array, the field
path, dtype and shape. Decoding checks every one of those against the message's schema (types,
dtypes, sizes, lengths) and raises :class:`MessageError` for anything malformed or truncated, so a
receiver counts and drops bad payloads instead of crashing.
"""

from __future__ import annotations

import dataclasses
import math
import struct
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import msgspec
import numpy as np

MAGIC = b"RPRL"
SCHEMA_VERSION = 3  # 2: actions and controls name the peer that sent them; 3: steps say who gave the outcome
_PREFIX = struct.Struct("<4sI")
MAX_HEADER_BYTES = 1 << 20


class MessageError(ValueError):
    """A payload that is not a valid message of the expected kind."""


@dataclass
class Observation:
    """What the robot side saw at one tick of its control clock (stamps on the robot's clock, ns)."""

    TYPE: ClassVar[str] = "observation"
    seq: int
    stamp_ns: int
    images: dict[str, np.ndarray] = field(default_factory=dict)  # HxWx3 uint8 or HxW uint16 depth
    image_stamps_ns: dict[str, int] = field(default_factory=dict)
    proprio: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    ee_pose: np.ndarray | None = None  # xyz + quaternion xyzw when known
    instruction: str = ""
    episode_id: str = ""
    success: bool = False  # when the robot side can tell (simulators); otherwise operator labels decide


@dataclass
class Action:
    """The answer to observation ``seq``: values in the robot's physical units."""

    TYPE: ClassVar[str] = "action"
    seq: int
    values: np.ndarray
    source: Literal["policy", "teleop", "hold"] = "policy"
    policy_version: int = 0
    critic_version: int = 0
    sent_ns: int = 0
    peer: str = ""  # the sender's id: a robot side obeys the peer holding its lease


ControlCommand = Literal["start", "stop", "reset", "label", "intervention", "estop", "clear_estop"]


@dataclass
class Control:
    """An operator or actor command to the robot side. ``value``: label success, intervention on."""

    TYPE: ClassVar[str] = "control"
    command: ControlCommand
    value: bool = False
    episode_id: str = ""
    stamp_ns: int = 0
    peer: str = ""  # the sender's id (see Action.peer)


@dataclass
class Status:
    """The robot side's counters and state, published periodically."""

    TYPE: ClassVar[str] = "status"
    stamp_ns: int
    seq: int = 0
    running: bool = False
    estop: bool = False
    episode_id: str = ""
    counters: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)


@dataclass
class Teleop:
    """A command from a device the robot side hosts (SpaceMouse, keyboard): an action and buttons."""

    TYPE: ClassVar[str] = "teleop"
    stamp_ns: int
    device: str
    values: np.ndarray
    engaged: bool = True
    buttons: dict[str, bool] = field(default_factory=dict)


@dataclass
class Step:
    """One step of an episode, from actor to learner: s_t, the commanded a_t, r_t and the N candidates drawn at
    s_t, actions in the robot's units (as stored; the learner maps them to policy space on their way to
    replay). Index 0..T; the ``final`` step holds s_T alone and ends the episode."""

    TYPE: ClassVar[str] = "step"
    actor: str
    episode_id: str
    index: int
    stamp_ns: int
    images: dict[str, np.ndarray] = field(default_factory=dict)
    proprio: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    action: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    candidates: np.ndarray | None = None
    reward: float = 0.0
    source: Literal["rollout", "intervention"] = "rollout"
    policy_version: int = 0
    critic_version: int = 0
    instruction: str = ""
    final: bool = False
    success: bool = False
    # on the final step: who gave the outcome, and the success classifier's version and call where one watched
    # (data/episode_store.py Outcome)
    outcome_source: str = ""
    classifier_version: int = 0
    classifier_success: int = -1
    success_probability: float = -1.0  # a success classifier's probability for s_t (-1: none scored it)
    robot: str = ""  # the robot the actor acts on (its name in the key space)


@dataclass
class LearnerStatus:
    """The learner's heartbeat: which instance is running, its versions and rates, and the episodes it has
    committed lately (actors drop those from their journals and resend the others)."""

    TYPE: ClassVar[str] = "learner_status"
    stamp_ns: int
    instance: str
    versions: dict[str, int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)
    committed: list[str] = field(default_factory=list)


@dataclass
class Chunk:
    """One piece of a large payload (weights); see transport/chunks.py."""

    TYPE: ClassVar[str] = "chunk"
    transfer_id: str
    index: int
    count: int
    total_bytes: int
    sha256: str
    data: np.ndarray  # uint8


MESSAGES: dict[str, type] = {cls.TYPE: cls for cls in (Observation, Action, Control, Status, Teleop, Step,
                                                       LearnerStatus, Chunk)}

# (field, allowed dtypes, allowed ndims) of every array field; a dict field holds arrays by name.
_ARRAYS: dict[str, dict[str, tuple[set[str], set[int]]]] = {
    "observation": {"images": ({"uint8", "uint16"}, {2, 3}), "proprio": ({"float32"}, {1}),
                    "ee_pose": ({"float32", "float64"}, {1})},
    "action": {"values": ({"float32"}, {1})},
    "control": {},
    "status": {},
    "teleop": {"values": ({"float32"}, {1})},
    "step": {"images": ({"uint8", "uint16"}, {2, 3}), "proprio": ({"float32"}, {1}), "action": ({"float32"}, {1}),
             "candidates": ({"float32"}, {2})},
    "learner_status": {},
    "chunk": {"data": ({"uint8"}, {1})},
}


def _scalar_struct(cls: type) -> type:
    hints = typing.get_type_hints(cls)
    fields = [(f.name, hints[f.name]) for f in dataclasses.fields(cls) if f.name not in _ARRAYS[cls.TYPE]]
    return msgspec.defstruct(f"{cls.__name__}Fields", fields, forbid_unknown_fields=True)


# A strict decoder per message type checks every scalar field's type; all fields are always sent.
_FIELDS = {name: msgspec.msgpack.Decoder(_scalar_struct(cls)) for name, cls in MESSAGES.items()}


class _ArraySpec(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    path: str
    dtype: str
    shape: list[int]


class _Header(msgspec.Struct, forbid_unknown_fields=True):
    v: int
    type: str
    fields: msgspec.Raw
    arrays: list[_ArraySpec]


_HEADER = msgspec.msgpack.Decoder(_Header)
_ENCODER = msgspec.msgpack.Encoder()


def _check_array(kind: str, path: str, dtype: str, shape: list[int] | tuple[int, ...]) -> None:
    name, _, sub = path.partition("/")
    rules = _ARRAYS[kind].get(name)
    if rules is None or (name == "images") != bool(sub):
        raise MessageError(f"{kind} has no array field {path!r}")
    dtypes, ndims = rules
    if dtype not in dtypes:
        raise MessageError(f"{kind}.{path}: dtype {dtype} not allowed, expected one of {sorted(dtypes)}")
    if len(shape) not in ndims or any((not isinstance(d, int)) or d < 0 for d in shape):
        raise MessageError(f"{kind}.{path}: shape {list(shape)} is not {sorted(ndims)}-D with sizes >= 0")


def encode(msg: Any) -> bytes:
    """Serialize a message dataclass; raises MessageError when an array breaks the schema."""
    kind = getattr(msg, "TYPE", None)
    if kind not in MESSAGES or type(msg) is not MESSAGES[kind]:
        raise MessageError(f"not a message: {type(msg).__name__}")
    arrays: list[tuple[str, np.ndarray]] = []
    scalars = {}
    for f in dataclasses.fields(msg):
        value = getattr(msg, f.name)
        if f.name not in _ARRAYS[kind]:
            scalars[f.name] = value
        elif isinstance(value, dict):
            arrays += [(f"{f.name}/{k}", v) for k, v in value.items()]
        elif value is not None:
            arrays.append((f.name, value))
    specs, buffers = [], []
    for path, arr in arrays:
        if not isinstance(arr, np.ndarray):
            raise MessageError(f"{kind}.{path} must be a numpy array, got {type(arr).__name__}")
        arr = np.ascontiguousarray(arr)
        _check_array(kind, path, arr.dtype.name, arr.shape)
        specs.append((path, arr.dtype.name, list(arr.shape)))
        # a byte view, not a copy: join() below makes the only copy of the payload
        buffers.append(arr.astype(arr.dtype.newbyteorder("<"), copy=False).reshape(-1).view(np.uint8))
    header = _ENCODER.encode({"v": SCHEMA_VERSION, "type": kind, "fields": msgspec.Raw(_ENCODER.encode(scalars)),
                              "arrays": specs})
    return b"".join([_PREFIX.pack(MAGIC, len(header)), header, *buffers])


def decode(payload: bytes | bytearray | memoryview, expected: type | None = None) -> Any:
    """Parse a payload into its message dataclass (arrays are read-only views of ``payload``).

    Raises MessageError for a wrong magic, schema version or type, a malformed header, field types
    or array specs that break the schema, and buffers that are truncated or too long.
    """
    view = memoryview(payload)
    if len(view) < _PREFIX.size:
        raise MessageError(f"payload of {len(view)} bytes is shorter than the {_PREFIX.size}-byte prefix")
    magic, header_len = _PREFIX.unpack_from(view)
    if magic != MAGIC:
        raise MessageError(f"bad magic {bytes(magic)!r}, expected {MAGIC!r}")
    if header_len > MAX_HEADER_BYTES or _PREFIX.size + header_len > len(view):
        raise MessageError(f"header length {header_len} does not fit a payload of {len(view)} bytes")
    try:
        header = _HEADER.decode(view[_PREFIX.size:_PREFIX.size + header_len])
    # ValueError: invalid UTF-8 in a string; RecursionError: values nested deeper than msgspec will follow
    except (msgspec.DecodeError, ValueError, RecursionError) as err:
        raise MessageError(f"malformed header: {err}") from None
    if header.v != SCHEMA_VERSION:
        raise MessageError(f"schema version {header.v}, this build reads version {SCHEMA_VERSION}")
    cls = MESSAGES.get(header.type)
    if cls is None or (expected is not None and cls is not expected):
        want = expected.TYPE if expected is not None else sorted(MESSAGES)
        raise MessageError(f"message type {header.type!r}, expected {want}")
    try:
        scalars = msgspec.structs.asdict(_FIELDS[header.type].decode(header.fields))
    except (msgspec.DecodeError, ValueError, RecursionError) as err:
        raise MessageError(f"{header.type} fields: {err}") from None
    values: dict[str, Any] = {name: ({} if name == "images" else None) for name in _ARRAYS[header.type]}
    offset = _PREFIX.size + header_len
    for spec in header.arrays:
        _check_array(header.type, spec.path, spec.dtype, spec.shape)
        dtype = np.dtype(spec.dtype).newbyteorder("<")
        nbytes = math.prod(spec.shape) * dtype.itemsize  # Python ints: a forged shape cannot overflow
        if nbytes > len(view) - offset:
            raise MessageError(f"{header.type}.{spec.path}: {nbytes} bytes announced, "
                               f"{len(view) - offset} left (truncated payload)")
        arr = np.frombuffer(view, dtype=dtype, count=nbytes // dtype.itemsize, offset=offset).reshape(spec.shape)
        offset += nbytes
        name, _, sub = spec.path.partition("/")
        if (sub in values[name]) if sub else (values[name] is not None):
            raise MessageError(f"{header.type}.{spec.path} appears twice")
        if sub:
            values[name][sub] = arr
        else:
            values[name] = arr
    if offset != len(view):
        raise MessageError(f"{len(view) - offset} bytes after the last array")
    for f in dataclasses.fields(cls):
        if f.name in values and values[f.name] is None:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise MessageError(f"{header.type}.{f.name} is missing")
            if f.default_factory is not dataclasses.MISSING:
                values[f.name] = f.default_factory()
            else:
                del values[f.name]
    return cls(**scalars, **values)
