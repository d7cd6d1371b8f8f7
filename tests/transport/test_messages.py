import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from robot_parl.transport.channel import Inbox, Publisher, subscribe
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.messages import (
    Action,
    Chunk,
    Control,
    MessageError,
    Observation,
    Status,
    Teleop,
    decode,
    encode,
)

ints = st.integers(-(2**62), 2**62)
text = st.text(max_size=20)
names = st.text("abcdefgh_", min_size=1, max_size=8)
vec32 = hnp.arrays(np.float32, st.integers(0, 9), elements=st.floats(width=32, allow_nan=True, allow_infinity=True))
image = st.one_of(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=3, max_dims=3, max_side=6)),
                  hnp.arrays(np.uint16, hnp.array_shapes(min_dims=2, max_dims=2, max_side=6)))

messages = st.one_of(
    st.builds(Observation, seq=ints, stamp_ns=ints, images=st.dictionaries(names, image, max_size=3),
              image_stamps_ns=st.dictionaries(names, ints, max_size=3), proprio=vec32,
              ee_pose=st.one_of(st.none(), hnp.arrays(np.float64, 7)), instruction=text, episode_id=text),
    st.builds(Action, seq=ints, values=vec32, source=st.sampled_from(["policy", "teleop", "hold"]),
              policy_version=ints, critic_version=ints, sent_ns=ints),
    st.builds(Control, command=st.sampled_from(["start", "stop", "reset", "label", "intervention", "estop",
                                                "clear_estop"]), value=st.booleans(), episode_id=text,
              stamp_ns=ints),
    st.builds(Status, stamp_ns=ints, seq=ints, running=st.booleans(), estop=st.booleans(), episode_id=text,
              counters=st.dictionaries(names, ints, max_size=4),
              latency_ms=st.dictionaries(names, st.floats(allow_nan=False), max_size=4),
              versions=st.dictionaries(names, ints, max_size=3)),
    st.builds(Teleop, stamp_ns=ints, device=text, values=vec32, engaged=st.booleans(),
              buttons=st.dictionaries(names, st.booleans(), max_size=3)),
    st.builds(Chunk, transfer_id=text, index=ints, count=ints, total_bytes=ints, sha256=text,
              data=hnp.arrays(np.uint8, st.integers(0, 64))),
)


def _same(a, b):
    assert type(a) is type(b)
    for name, x in vars(a).items():
        y = getattr(b, name)
        if isinstance(x, dict):
            assert x.keys() == y.keys()
            for k in x:
                _same_value(x[k], y[k])
        else:
            _same_value(x, y)


def _same_value(x, y):
    if isinstance(x, np.ndarray):
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
    else:
        assert x == y or (x != x and y != y)


@settings(max_examples=300, deadline=None)
@given(messages)
def test_every_message_round_trips(msg):
    back = decode(encode(msg))
    _same(msg, back)
    assert decode(encode(msg), type(msg)) is not None


def test_wrong_type_and_schema_are_refused():
    payload = encode(Action(seq=1, values=np.zeros(7, np.float32)))
    with pytest.raises(MessageError, match="expected observation"):
        decode(payload, Observation)
    with pytest.raises(MessageError, match="dtype float64 not allowed"):
        encode(Action(seq=1, values=np.zeros(7)))
    with pytest.raises(MessageError, match="must be a numpy array"):
        encode(Action(seq=1, values=[0.0] * 7))
    with pytest.raises(MessageError, match="images/front.*dtype float32"):
        encode(Observation(seq=0, stamp_ns=0, images={"front": np.zeros((2, 2, 3), np.float32)}))


def _malformed(rng: np.random.Generator, valid: list[bytes]) -> bytes:
    base = bytearray(valid[rng.integers(len(valid))])
    kind = rng.integers(5)
    if kind == 0:  # truncated
        return bytes(base[: rng.integers(len(base))])
    if kind == 1:  # trailing garbage
        return bytes(base + rng.bytes(int(rng.integers(1, 50))))
    if kind == 2:  # random bytes, sometimes with the right magic
        junk = rng.bytes(int(rng.integers(0, 200)))
        return b"RPRL" + junk if rng.random() < 0.5 else junk
    if kind == 3:  # corrupted header bytes (the arrays' bytes are data and may be anything)
        header_end = 8 + int.from_bytes(base[4:8], "little")
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(4, header_end))
            base[i] = (base[i] + int(rng.integers(1, 256))) % 256
        return bytes(base)
    # a well-formed header whose array announces more data than there is
    return bytes(base[:-1])


def test_ten_thousand_malformed_payloads_are_refused_and_counted(zenoh_pair, wait_for):
    a, b = zenoh_pair
    keys = KeySpace("test", "arm")
    valid = [encode(Action(seq=i, values=np.full(7, i, np.float32))) for i in range(5)]
    rng = np.random.default_rng(0)
    bad = []
    while len(bad) < 10_000:
        payload = _malformed(rng, valid)
        try:  # a header corruption can, rarely, still be a valid Action (e.g. another seq): keep only real refusals
            decode(payload, Action)
        except MessageError:
            bad.append(payload)
    inbox = Inbox(Action, maxlen=100)
    sub = subscribe(b, keys.action, inbox)
    pub = Publisher(a, keys.action, block=True)
    wait_for(lambda: False, 0.3)
    for payload in bad:
        pub.put_bytes(payload)
    pub.put(Action(seq=99, values=np.ones(7, np.float32)))
    assert wait_for(lambda: inbox.received == 1, 30)
    assert wait_for(lambda: inbox.refused == 10_000, 30)
    assert inbox.get(1).seq == 99
    pub.close()
    sub.undeclare()


def test_decode_reports_header_corruption_kinds():
    payload = bytearray(encode(Status(stamp_ns=1)))
    payload[4:8] = (10**9).to_bytes(4, "little")
    with pytest.raises(MessageError, match="header length"):
        decode(bytes(payload))
    with pytest.raises(MessageError, match="shorter than"):
        decode(b"RP")


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_headers_are_refused_not_raised_as_recursion(depth):
    import struct

    import msgspec

    from robot_parl.transport.messages import MAGIC, SCHEMA_VERSION

    enc = msgspec.msgpack.Encoder()
    nested = b"\x91" * depth + b"\x90"  # [[[...[]...]]]

    def payload(fields: bytes, arrays: bytes) -> bytes:
        header = b"".join([b"\x84", enc.encode("v"), enc.encode(SCHEMA_VERSION), enc.encode("type"),
                           enc.encode("status"), enc.encode("fields"), fields, enc.encode("arrays"), arrays])
        return struct.pack("<4sI", MAGIC, len(header)) + header

    for fields, arrays in ((nested, enc.encode([])), (enc.encode({}), nested),
                           (b"\x81" + enc.encode("counters") + nested, enc.encode([]))):
        with pytest.raises(MessageError):
            decode(payload(fields, arrays))


def test_keys_refuse_names_that_break_the_key_space():
    keys = KeySpace("lab-1", "widowx")
    assert keys.obs == "robot_parl/lab-1/widowx/obs"
    assert keys.weights("policy") == "robot_parl/lab-1/widowx/weights/policy"
    for bad in ("", "a/b", "a*", "a b"):
        with pytest.raises(ValueError, match="name"):
            KeySpace(bad, "arm")


def test_transport_and_safety_do_not_import_torch():
    code = ("import sys, robot_parl.transport.messages, robot_parl.transport.chunks, robot_parl.transport.channel, "
            "robot_parl.transport.session, robot_parl.transport.keys, robot_parl.robots.safety, "
            "robot_parl.robots.side, robot_parl.robots.spec, robot_parl.robots.remote; "
            "assert 'torch' not in sys.modules, 'torch'")
    subprocess.run([sys.executable, "-c", code], check=True)
