"""Robot-side protocol round trip on loopback, against bare zenoh with the same bytes, in one run.

Process A (robot side, synchronous, kinematic arm with two 640x480 RGB cameras + proprio) publishes an
Observation each tick; process B (this one, an actor stand-in) answers with an Action; we time the
round trip at a paced rate (30 Hz) as p50/p99. The baseline: a bare zenoh put of a payload of the
same size answered by a bare put of the action's size, between the same two kinds of processes. Then
the time to move a 209 MB payload (a 7B VLA's LoRA adapter in bf16) as sha256-checked chunks.

    python -m benchmarks.protocol --json out.json [--ticks 300]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

from robot_parl.files import atomic_write
from robot_parl.robots.spec import load_spec
from robot_parl.transport.channel import Publisher
from robot_parl.transport.chunks import Reassembler, split_payload
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.messages import Action, encode
from robot_parl.transport.session import TransportConfig, free_loopback_endpoint, open_session

CAMERAS = "cameras=[{name: front, width: 640, height: 480}, {name: wrist, width: 640, height: 480}]"
KEYS = KeySpace("bench", "arm")

# The bare baseline's far end: echo a reply of `reply_bytes` for every payload on bench/ping.
ECHO = """
import sys, zenoh
from robot_parl.transport.session import TransportConfig, open_session
s = open_session(TransportConfig(listen=[sys.argv[1]], connect=[]))
reply = b"r" * int(sys.argv[2])
pub = s.declare_publisher("bench/pong", congestion_control=zenoh.CongestionControl.BLOCK)
sub = s.declare_subscriber("bench/ping", lambda sample: pub.put(reply))
print("ready", flush=True)
sys.stdin.readline()
s.close()
"""


def _percentiles(samples_ms: list[float]) -> dict:
    a = np.asarray(samples_ms)
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "mean_ms": float(a.mean()), "n": len(a)}


def _measure(once, rate_hz: float, ticks: int) -> dict:
    """Percentiles of ``once()`` (ms) called at ``rate_hz``, after 10 warm-up calls."""
    for _ in range(10):
        once()
    return _percentiles(_paced(rate_hz, ticks, once))


def _paced(rate_hz: float, ticks: int, once) -> list[float]:
    period = 1.0 / rate_hz
    times = []
    next_t = time.monotonic()
    for _ in range(ticks):
        times.append(once())
        next_t += period
        time.sleep(max(0.0, next_t - time.monotonic()))
    return times


def bare_zenoh(obs_bytes: int, action_bytes: int, ticks: int, rate_hz: float) -> dict:
    endpoint = free_loopback_endpoint()
    echo = subprocess.Popen([sys.executable, "-c", ECHO, endpoint, str(action_bytes)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert echo.stdout.readline().strip() == "ready"
    session = open_session(TransportConfig(connect=[endpoint]))
    import zenoh

    got = threading.Event()
    sub = session.declare_subscriber("bench/pong", lambda sample: (sample.payload.to_bytes(), got.set()))
    pub = session.declare_publisher("bench/ping", congestion_control=zenoh.CongestionControl.BLOCK)
    payload = os.urandom(obs_bytes)
    time.sleep(0.5)

    def once() -> float:
        got.clear()
        t = time.perf_counter()
        pub.put(payload)
        if not got.wait(5):
            raise TimeoutError("bare zenoh echo did not answer")
        return (time.perf_counter() - t) * 1e3

    result = _measure(once, rate_hz, ticks)
    sub.undeclare()
    session.close()
    echo.communicate("\n", timeout=10)
    return result


def protocol(ticks: int, rate_hz: float) -> tuple[dict, int, int]:
    """Round trip through a real robot side process; timed from our receipt of an Observation to the next."""
    endpoint = free_loopback_endpoint()
    robot = subprocess.Popen([sys.executable, "-m", "robot_parl.cli", "robot", "--listen", endpoint, "--sync",
                              "--session", KEYS.session, "--robot", KEYS.robot, CAMERAS],
                             stdout=subprocess.PIPE, text=True)
    assert "robot side" in robot.stdout.readline()
    session = open_session(TransportConfig(connect=[endpoint]))
    spec = load_spec("widowx", [CAMERAS])
    from robot_parl.robots.remote import RemoteRobotEnv

    env = RemoteRobotEnv(session, KEYS, spec, timeout_s=10)
    env.reset()
    action = np.zeros(7, np.float32)
    obs_bytes = len(encode(env.last))
    action_bytes = len(encode(Action(0, action)))

    def once() -> float:
        t = time.perf_counter()
        env.step(action)
        return (time.perf_counter() - t) * 1e3

    result = _measure(once, rate_hz, ticks)
    env.close()
    session.close()
    robot.terminate()
    robot.communicate(timeout=10)
    return result, obs_bytes, action_bytes


def big_payload(megabytes: int) -> dict:
    endpoint = free_loopback_endpoint()
    a = open_session(TransportConfig(listen=[endpoint], connect=[]))
    b = open_session(TransportConfig(connect=[endpoint]))
    key = KEYS.weights("policy")
    done = threading.Event()
    reassembler = Reassembler()
    received = {}

    def on_sample(sample):
        out = reassembler.add(sample.payload.to_bytes())
        if out is not None:
            received["bytes"] = len(out[1])
            done.set()

    sub = b.declare_subscriber(key, on_sample)
    pub = Publisher(a, key, block=True)
    data = np.random.default_rng(0).bytes(megabytes * 1_000_000)
    time.sleep(0.5)
    t = time.perf_counter()
    for chunk in split_payload(data, "bench"):
        pub.put_bytes(chunk)
    if not done.wait(300):
        raise TimeoutError("payload did not arrive")
    seconds = time.perf_counter() - t
    sub.undeclare()
    b.close()
    a.close()
    return {"megabytes": megabytes, "seconds": seconds, "mb_per_s": megabytes / seconds,
            "intact_bytes": received["bytes"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", required=True)
    parser.add_argument("--ticks", type=int, default=300)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--payload-mb", type=int, default=209)
    args = parser.parse_args()
    proto, obs_bytes, action_bytes = protocol(args.ticks, args.rate)
    bare = bare_zenoh(obs_bytes, action_bytes, args.ticks, args.rate)
    out = {"benchmark": "protocol", "rate_hz": args.rate, "observation_bytes": obs_bytes,
           "action_bytes": action_bytes, "protocol_round_trip": proto, "bare_zenoh_round_trip": bare,
           "p50_ratio_protocol_over_bare": proto["p50_ms"] / bare["p50_ms"],
           "p99_ratio_protocol_over_bare": proto["p99_ms"] / bare["p99_ms"],
           "payload": big_payload(args.payload_mb)}
    atomic_write(args.json, lambda f: f.write(json.dumps(out, indent=1)), mode="w")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
