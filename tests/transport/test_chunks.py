import hashlib

import numpy as np
import pytest

from robot_parl.transport.channel import Publisher
from robot_parl.transport.chunks import PayloadError, Reassembler, split_payload
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.messages import MessageError


def test_200_megabytes_arrive_intact_over_zenoh(zenoh_pair, wait_for):
    a, b = zenoh_pair
    key = KeySpace("test", "arm").weights("policy")
    data = np.random.default_rng(0).bytes(200 * 1024 * 1024)
    got, errors = [], []
    reassembler = Reassembler()

    def on_sample(sample):
        try:
            done = reassembler.add(sample.payload.to_bytes())
        except MessageError as err:
            errors.append(err)
            return
        if done is not None:
            got.append(done)

    sub = b.declare_subscriber(key, on_sample)
    pub = Publisher(a, key, block=True)
    wait_for(lambda: False, 0.3)
    for chunk in split_payload(data, "v1"):
        pub.put_bytes(chunk)
    assert wait_for(lambda: got or errors, 120)
    assert not errors
    assert got[0][0] == "v1" and hashlib.sha256(got[0][1]).digest() == hashlib.sha256(data).digest()
    pub.close()
    sub.undeclare()


def _chunks(data: bytes, tid: str = "t") -> list[bytes]:
    return list(split_payload(data, tid, chunk_bytes=1000))


def test_corrupted_payload_is_refused_whole():
    data = bytes(range(256)) * 20
    chunks = _chunks(data)
    assert len(chunks) == 6
    r = Reassembler()
    flipped = bytearray(chunks[3])
    flipped[-10] ^= 0xFF  # in the data: still a well-formed chunk, but the whole no longer matches its sha256
    for c in chunks[:3] + [bytes(flipped)] + chunks[4:-1]:
        assert r.add(c) is None
    with pytest.raises(PayloadError, match="sha256 mismatch"):
        r.add(chunks[-1])
    assert r.refused == 1
    # a clean resend of the same transfer then arrives
    results = [r.add(c) for c in chunks]
    assert results[-1] == ("t", data) and all(x is None for x in results[:-1])


def test_missing_inconsistent_and_oversized_transfers_are_refused():
    data = b"x" * 5000
    r = Reassembler(max_bytes=10_000, timeout_s=5.0)
    chunks = _chunks(data)
    for c in chunks[:-1]:
        r.add(c, now=0.0)
    assert r.expire(now=3.0) == []
    assert r.expire(now=6.0) == ["t"]  # the last chunk never came
    assert r.refused == 1
    other = _chunks(b"y" * 5000)
    r.add(chunks[0], now=10.0)
    with pytest.raises(PayloadError, match="disagrees"):
        r.add(other[1], now=10.0)
    with pytest.raises(PayloadError, match="out of range or repeated"):
        r.add(chunks[0], now=10.0)
        r.add(chunks[0], now=10.0)
    with pytest.raises(PayloadError, match="more than the limit"):
        r.add(_chunks(b"z" * 20_000, "big")[0])
    with pytest.raises(MessageError):
        r.add(b"not a chunk")
    assert r.refused == 5
