"""An independent ROS 2 wire peer for tests: plain Cyclone DDS (PyPI ``cyclonedds``), no rclpy, no ROS.

ROS 2 messages on the wire are DDS samples of a type named ``<pkg>::msg::dds_::<Msg>_`` on topic
``rt/<name>``, plain XCDR1 (CDR) encoded; the IDL structs below declare exactly those layouts, so this
peer reads and writes the same bytes as rclpy without sharing any code with it.

The peer runs as its own process (``python dds_peer.py ...``, started by :class:`DdsPeer`) so that its
Cyclone configuration is set only there, through ``CYCLONEDDS_URI``, and a crash in either DDS stack
cannot take the test process with it. It publishes camera images (rgb8, content from :func:`peer_image`)
and prints every TwistStamped it receives as a JSON line on stdout; it exits when stdin closes.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.annotations import final
from cyclonedds.idl.types import float64, int32, sequence, uint8, uint32

# Cyclone on loopback only: no multicast at all, discovery by unicast to 127.0.0.1 (it probes the SPDP ports
# of participant indices 0..20 there: 7410 + 250 * domain + 2 * index). This meets rclpy without any Fast DDS
# profile when the ROS side runs with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST: rmw_fastrtps then clears its
# multicast locators and announces itself by unicast to 127.0.0.1 for participant indices 0..31, which
# includes this peer's port. Fast DDS advertises its host's interface addresses (not 127.0.0.1) as its own
# locators, so Cyclone answers to e.g. 192.0.2.2: an address of this host, which Linux delivers through
# `lo` (its local routing table); nothing goes out on a wire.
CYCLONE_LOOPBACK_CONFIG = """<CycloneDDS><Domain id="any">
  <General>
    <Interfaces><NetworkInterface name="lo" multicast="false"/></Interfaces>
    <AllowMulticast>false</AllowMulticast>
  </General>
  <Discovery>
    <Peers><Peer address="127.0.0.1"/></Peers>
    <ParticipantIndex>auto</ParticipantIndex>
    <MaxAutoParticipantIndex>20</MaxAutoParticipantIndex>
  </Discovery>
</Domain></CycloneDDS>"""


def peer_image(seed: int, height: int, width: int) -> np.ndarray:
    """The peer's camera frame for ``seed``: distinct, known uint8 RGB content (HxWx3)."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# The ROS message layouts as Cyclone IDL structs (module level: Cyclone resolves nested types by module name).
@dataclass
@final
class Time_(IdlStruct, typename="builtin_interfaces::msg::dds_::Time_"):
    sec: int32 = 0
    nanosec: uint32 = 0


@dataclass
@final
class Header_(IdlStruct, typename="std_msgs::msg::dds_::Header_"):
    stamp: Time_ = field(default_factory=Time_)
    frame_id: str = ""


@dataclass
@final
class Image_(IdlStruct, typename="sensor_msgs::msg::dds_::Image_"):
    header: Header_ = field(default_factory=Header_)
    height: uint32 = 0
    width: uint32 = 0
    encoding: str = ""
    is_bigendian: uint8 = 0
    step: uint32 = 0
    data: sequence[uint8] = b""  # written from bytes (Cyclone iterates it element by element: keep images small)


@dataclass
@final
class Vector3_(IdlStruct, typename="geometry_msgs::msg::dds_::Vector3_"):
    x: float64 = 0.0
    y: float64 = 0.0
    z: float64 = 0.0


@dataclass
@final
class Twist_(IdlStruct, typename="geometry_msgs::msg::dds_::Twist_"):
    linear: Vector3_ = field(default_factory=Vector3_)
    angular: Vector3_ = field(default_factory=Vector3_)


@dataclass
@final
class TwistStamped_(IdlStruct, typename="geometry_msgs::msg::dds_::TwistStamped_"):
    header: Header_ = field(default_factory=Header_)
    twist: Twist_ = field(default_factory=Twist_)


def _run(args: argparse.Namespace) -> None:
    from cyclonedds.core import Policy, Qos
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.pub import DataWriter
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic
    from cyclonedds.util import duration

    participant = DomainParticipant(args.domain)
    # XCDR1 (plain CDR) is what rclpy on Fast DDS speaks in Jazzy: asked for explicitly rather than left to
    # Cyclone's choice for the type
    xcdr1 = Policy.DataRepresentation(use_cdrv0_representation=True)
    image_writer = DataWriter(participant, Topic(participant, f"rt/{args.camera_topic}", Image_),
                              qos=Qos(Policy.Reliability.BestEffort, Policy.History.KeepLast(1), xcdr1))
    twist_reader = DataReader(participant, Topic(participant, f"rt/{args.twist_topic}", TwistStamped_),
                              qos=Qos(Policy.Reliability.Reliable(duration(seconds=1)), Policy.History.KeepLast(100),
                                      xcdr1))
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    pixels = peer_image(args.seed, args.height, args.width)
    period = 1.0 / args.rate_hz
    next_frame = time.monotonic()
    while not stop.is_set():
        now = time.monotonic()
        if now >= next_frame:
            t = time.time_ns()  # ROS time is the system clock: the node drops frames stamped too long ago
            image_writer.write(Image_(Header_(Time_(t // 1_000_000_000, t % 1_000_000_000), args.frame_id),
                                      args.height, args.width, "rgb8", 0, args.width * 3, pixels.tobytes()))
            next_frame = max(next_frame + period, now)
        for sample in twist_reader.take(N=100):
            lin, ang = sample.twist.linear, sample.twist.angular
            print(json.dumps({"linear": [lin.x, lin.y, lin.z], "angular": [ang.x, ang.y, ang.z],
                              "frame_id": sample.header.frame_id}), flush=True)
        stop.wait(0.005)


class DdsPeer:
    """The peer process seen from a test: ``twists`` fills with every TwistStamped it received (dicts with
    ``linear``, ``angular``, ``frame_id``); :meth:`close` stops it within a bounded time."""

    def __init__(self, domain_id: int, camera_topic: str, twist_topic: str, seed: int, height: int, width: int,
                 rate_hz: float = 20.0, frame_id: str = "camera", log: Path | None = None):
        env = dict(os.environ, CYCLONEDDS_URI=CYCLONE_LOOPBACK_CONFIG)
        self._log = open(log, "w") if log is not None else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--domain", str(domain_id), "--camera-topic", camera_topic,
             "--twist-topic", twist_topic, "--seed", str(seed), "--height", str(height), "--width", str(width),
             "--rate-hz", str(rate_hz), "--frame-id", frame_id],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True)
        self.twists: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.twists.append(json.loads(line))

    def close(self, timeout: float = 10.0) -> int:
        """Close stdin (the peer's signal to stop), kill it if it has not exited after ``timeout``; the exit code."""
        try:
            self.process.stdin.close()
        except BrokenPipeError:
            pass
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(timeout=5)
        if self._log is not subprocess.DEVNULL:
            self._log.close()
        return code


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="a Cyclone DDS camera + twist peer (see the module docstring)")
    parser.add_argument("--domain", type=int, required=True)
    parser.add_argument("--camera-topic", required=True)
    parser.add_argument("--twist-topic", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--height", type=int, default=48)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--rate-hz", type=float, default=20.0)
    parser.add_argument("--frame-id", default="camera")
    _run(parser.parse_args())
