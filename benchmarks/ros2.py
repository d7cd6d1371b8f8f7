"""Camera topic -> actor and actor -> command topic latency through the real ROS 2 robot-side node, against a
direct rclpy subscriber of the same camera topic in the same run. Run from the ROS virtualenv:

    .venv-ros/bin/python -m benchmarks.ros2 --json out.json [--seconds 15 --fps 30 --width 640 --height 480]

Processes, all on this host (ROS discovery limited to it, a random ROS domain, zenoh on loopback):

- camera: an rclpy publisher of sensor_msgs/Image (rgb8, width x height) at ``--fps``, sensor-data QoS;
- direct (the baseline): an rclpy subscription to the same topic that only records when each frame arrived;
- node: ``robot_parl_ros.robot_side_node`` (widowx spec, one camera of that size, control clock at ``--rate``
  Hz), which forwards observations over zenoh and publishes TwistStamped commands;
- this process: the actor (a RemoteRobotEnv answering every observation at once) and an rclpy subscription to
  the node's TwistStamped commands.

How an observation's age is measured end to end. The node keeps a camera's newest frame and sends it at its
next control tick; the Observation says when (``stamp_ns``, the tick) and when each image arrived at the node
(``image_stamps_ns``: taken in the node's image callback after decoding), both on the robot side's monotonic
clock, but it does not carry the image's ROS header stamp (that is ROS time, the system clock, and the node
only uses it to drop stale frames, ``max_frame_age_s``). So the camera writes its frame index into the first 8
bytes of the pixels (which the node forwards unchanged: no calibration, no resize) and records
``time.monotonic_ns()`` just before ``publish()``; the actor reads the index back from the observation's image.
CLOCK_MONOTONIC is one clock for every process on a Linux host, so, per frame:

- camera -> actor = actor receive time - publish time (the frame's first delivery to the actor);
- camera -> node = ``image_stamps_ns`` - publish time (one DDS hop into a Python callback, plus decoding);
- wait for the tick = ``stamp_ns`` - ``image_stamps_ns`` (0 to one control period: the node samples at its
  own clock, not at frame arrival; the camera publishes one frame more than ``fps`` x ``seconds`` in the
  measured time, so the phase between the two clocks sweeps one whole period instead of staying wherever it
  happened to start);
- tick -> actor = actor receive time - ``stamp_ns`` (observation encode, zenoh, decode);
- direct = receive time in the baseline subscriber - publish time.

Ratios: camera -> actor over direct (what an actor sees against a plain ROS subscriber), and the same without
the wait for the tick (camera -> node + tick -> actor: the cost of the node's path itself). Across hosts the
same stamps work with RemoteRobotEnv.clock_offset_ns (its estimate of the robot side's clock against the
actor's).

Each measurement runs twice, in fresh processes: ``fastdds_loopback_profile`` (a Fast DDS profile: 8 MiB
shared-memory segments, UDP on 127.0.0.1 only) and ``ros_localhost_default`` (ROS_AUTOMATIC_DISCOVERY_RANGE=
LOCALHOST and Fast DDS's defaults), which loses large frames; see FASTDDS_LOOPBACK_PROFILE.

Command latency: every action carries a code in its x delta (code x 10 um, inside the bounds), which comes
back in the TwistStamped as x / control period; latency = receive time of the twist here - the time just
before RemoteRobotEnv.step sent the action. Twists with x = 0 are holds (the watchdog), counted separately.
"""

from __future__ import annotations

import argparse
import array
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from robot_parl.files import atomic_write

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_SRC = ROOT / "ros2_ws" / "src" / "robot_parl_ros"
IMAGE_TOPIC, TWIST_TOPIC = "bench/image_raw", "bench/cmd_vel"
CODE_M = 1e-5  # the x delta of action code 1, in metres
INDEX_BYTES = 8

# With ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, rmw_fastrtps sets up its own transports: shared memory with
# Fast DDS's default 512 KiB segment, and UDP. A 921.6 KB frame does not fit that segment, and here 25-65% of
# 640x480 rgb8 frames at 30 fps never arrived, best effort (in several runs; at the node and at a plain
# subscriber alike). The same transports with an 8 MiB segment delivered them all (a 512 KiB one again lost
# most). SYSTEM_DEFAULT makes rmw_fastrtps leave transports and discovery to this profile: UDP (discovery) on
# 127.0.0.1 only, no multicast.
FASTDDS_LOOPBACK_PROFILE = """<?xml version="1.0" encoding="UTF-8" ?>
<profiles xmlns="http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles">
  <transport_descriptors>
    <transport_descriptor>
      <transport_id>shm_8mib</transport_id>
      <type>SHM</type>
      <segment_size>8388608</segment_size>
    </transport_descriptor>
    <transport_descriptor>
      <transport_id>udp_loopback</transport_id>
      <type>UDPv4</type>
      <interfaceWhiteList><address>127.0.0.1</address></interfaceWhiteList>
      <maxInitialPeersRange>32</maxInitialPeersRange>
    </transport_descriptor>
  </transport_descriptors>
  <participant profile_name="robot_parl_bench_loopback" is_default_profile="true">
    <rtps>
      <userTransports><transport_id>shm_8mib</transport_id><transport_id>udp_loopback</transport_id></userTransports>
      <useBuiltinTransports>false</useBuiltinTransports>
      <builtin>
        <metatrafficUnicastLocatorList><locator><udpv4><address>127.0.0.1</address></udpv4></locator>
        </metatrafficUnicastLocatorList>
        <initialPeersList><locator><udpv4><address>127.0.0.1</address></udpv4></locator></initialPeersList>
      </builtin>
    </rtps>
  </participant>
</profiles>
"""
TRANSPORTS = ("fastdds_loopback_profile", "ros_localhost_default")


def transport_env(transport: str, workdir: Path) -> dict:
    """The environment for every process of one measurement: discovery on this host only, a random domain."""
    env = {k: v for k, v in os.environ.items() if k not in ("FASTRTPS_DEFAULT_PROFILES_FILE",
                                                            "FASTDDS_DEFAULT_PROFILES_FILE")}
    # domains 101-200 stay clear of the ROS tests' random 1-100
    env.update({"ROS_DOMAIN_ID": str(random.randint(101, 200)),
                "PYTHONPATH": os.pathsep.join([str(PACKAGE_SRC), str(ROOT), os.environ.get("PYTHONPATH", "")])})
    if transport == "fastdds_loopback_profile":
        profile = workdir / "fastdds_loopback.xml"
        profile.write_text(FASTDDS_LOOPBACK_PROFILE)
        env.update({"ROS_AUTOMATIC_DISCOVERY_RANGE": "SYSTEM_DEFAULT", "FASTRTPS_DEFAULT_PROFILES_FILE": str(profile)})
    elif transport == "ros_localhost_default":
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    else:
        raise ValueError(f"unknown transport {transport!r}; one of {TRANSPORTS}")
    return env


def _percentiles(samples_ms) -> dict:
    a = np.asarray(samples_ms, np.float64)
    if a.size == 0:
        return {"p50_ms": None, "p99_ms": None, "mean_ms": None, "n": 0}
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "mean_ms": float(a.mean()), "n": int(a.size)}


def _stdin_closed() -> threading.Event:
    """An event set when our stdin closes (the parent's way of telling a role process to stop)."""
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    return done


# role processes -----------------------------------------------------------------------------------------


def camera(out: str, fps: float, width: int, height: int) -> None:
    """Publish frames (index in the first 8 bytes) until stdin closes; write {index: publish monotonic ns}."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_camera")
    pub = node.create_publisher(Image, IMAGE_TOPIC, qos_profile_sensor_data)
    pixels = bytearray(np.random.default_rng(0).integers(0, 256, height * width * 3, dtype=np.uint8).tobytes())
    stop, published = _stdin_closed(), {}
    period, next_t, index = 1.0 / fps, time.monotonic(), 0
    print("ready", flush=True)
    while not stop.is_set():
        index += 1
        pixels[:INDEX_BYTES] = index.to_bytes(INDEX_BYTES, "little")
        # array.array: rclpy takes it as one buffer (a bytes object would be checked element by element)
        msg = Image(height=height, width=width, encoding="rgb8", step=width * 3, data=array.array("B", pixels))
        msg.header.stamp, msg.header.frame_id = node.get_clock().now().to_msg(), "camera"
        published[index] = time.monotonic_ns()
        pub.publish(msg)
        next_t += period
        stop.wait(max(0.0, next_t - time.monotonic()))
    node.destroy_node()
    rclpy.shutdown()
    Path(out).write_text(json.dumps(published))


def direct(out: str) -> None:
    """The baseline: subscribe to the camera topic, record [index, receive monotonic ns] until stdin closes."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_direct")
    received = []

    def on_image(msg) -> None:
        t = time.monotonic_ns()
        received.append((int.from_bytes(msg.data[:INDEX_BYTES].tobytes(), "little"), t))
        if len(received) == 1:
            print("receiving", flush=True)

    node.create_subscription(Image, IMAGE_TOPIC, on_image, qos_profile_sensor_data)
    stop = _stdin_closed()
    while not stop.is_set():
        rclpy.spin_once(node, timeout_sec=0.05)
    node.destroy_node()
    rclpy.shutdown()
    Path(out).write_text(json.dumps(received))


# the run --------------------------------------------------------------------------------------------------


def _role(role: str, out: Path, *args: str, env: dict, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.ros2", "--role", role, "--role-out", str(out), *args],
                            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=open(log, "w"), text=True)
    return proc


def _wait_line(proc: subprocess.Popen, expected: str, timeout: float, log: Path) -> None:
    got = []
    reader = threading.Thread(target=lambda: got.append(proc.stdout.readline().strip()), daemon=True)
    reader.start()
    reader.join(timeout)
    if got != [expected]:
        raise RuntimeError(f"{proc.args[4]} did not say {expected!r} within {timeout} s: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    try:
        proc.stdin.close()
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def measure(seconds: float, fps: float, width: int, height: int, rate_hz: float, warmup_timeout: float = 60.0) -> dict:
    """One measurement in this process's ROS environment (see transport_env), for ``seconds`` once every process
    is connected; the results as a dict (see the module doc)."""
    env = os.environ.copy()
    import rclpy
    from geometry_msgs.msg import TwistStamped
    from rclpy.executors import SingleThreadedExecutor

    from robot_parl.robots.remote import RemoteRobotEnv
    from robot_parl.robots.spec import load_spec
    from robot_parl.transport.keys import KeySpace
    from robot_parl.transport.session import TransportConfig, free_loopback_endpoint, open_session

    # no end-effector pose source here: without a workspace box the node needs none to command the arm
    overrides = [f"cameras=[{{name: front, width: {width}, height: {height}}}]", f"control_rate_hz={rate_hz}",
                 "workspace={low: [], high: []}"]
    spec = load_spec("widowx", overrides)
    period_s = spec.period_s
    keys = KeySpace("bench_ros2", "robot0")
    endpoint = free_loopback_endpoint()
    tmp = Path(os.environ.get("BENCH_ROS2_WORKDIR") or tempfile.mkdtemp(prefix="bench_ros2_"))
    node_log = tmp / "node.log"
    node = subprocess.Popen([sys.executable, "-m", "robot_parl_ros.robot_side_node", "--ros-args",
                             "-p", "spec:=widowx", "-p", f"spec_overrides:={json.dumps(overrides)}",
                             "-p", f"listen:=['{endpoint}']", "-p", f"session:={keys.session}",
                             "-p", f"cameras:=['front={IMAGE_TOPIC}']", "-p", f"twist_topic:={TWIST_TOPIC}"],
                            cwd=ROOT, env=env, stdout=open(node_log, "w"), stderr=subprocess.STDOUT)
    baseline = _role("direct", tmp / "direct.json", env=env, log=tmp / "direct.log")
    # Two free-running 30 Hz clocks keep whatever phase they started with, and the wait for the tick (0 to one
    # period) with it: the camera runs one frame fast over the measured time, so every phase is sampled once
    frames = max(int(fps * seconds), 2)
    camera_fps = fps * frames / (frames - 1)
    cam = _role("camera", tmp / "camera.json", "--fps", str(camera_fps), "--width", str(width),
                "--height", str(height), env=env, log=tmp / "camera.log")
    rclpy.init()
    ros = rclpy.create_node("bench_commands")
    twists: list[tuple[int, int]] = []  # (code, receive monotonic ns)

    def on_twist(msg) -> None:
        twists.append((round(msg.twist.linear.x * period_s / CODE_M), time.monotonic_ns()))

    ros.create_subscription(TwistStamped, TWIST_TOPIC, on_twist, 100)
    executor = SingleThreadedExecutor()
    executor.add_node(ros)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    session = open_session(TransportConfig(connect=[endpoint]))
    actor = RemoteRobotEnv(session, keys, spec, timeout_s=30)
    try:
        _wait_line(cam, "ready", warmup_timeout, tmp / "camera.log")
        obs, _ = actor.reset()
        sent: dict[int, int] = {}
        code = 0

        def step() -> tuple[dict, int, int]:
            nonlocal code
            code = code % 1000 + 1  # 1..1000: x = 0.01 mm .. 10 mm, inside widowx's 2 cm bound
            action = np.zeros(7, np.float32)
            action[0], action[6] = code * CODE_M, 1.0
            sent[code] = time.monotonic_ns()
            obs, *_ = actor.step(action)
            return obs, time.monotonic_ns(), code

        def index(obs: dict) -> int:
            return int.from_bytes(obs["images"]["front"].reshape(-1)[:INDEX_BYTES].tobytes(), "little")

        # warm up until every path carries data: frames at the actor, at the baseline, twists back here
        deadline = time.monotonic() + warmup_timeout
        _wait_line(baseline, "receiving", warmup_timeout, tmp / "direct.log")
        while not (index(step()[0]) > 0 and any(c > 0 for c, _ in twists)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no frames or commands through the node: {node_log.read_text()[-2000:]}")
        for _ in range(int(fps)):  # one more second for discovery and caches to settle
            step()
        twists.clear()
        records, sends = [], []
        end = time.monotonic() + seconds
        start_ns = time.monotonic_ns()
        while time.monotonic() < end:
            obs, received_ns, c = step()
            last = actor.last
            records.append((index(obs), received_ns, last.stamp_ns, last.image_stamps_ns["front"]))
            sends.append((c, sent[c]))
        end_ns = time.monotonic_ns()
        time.sleep(0.2)  # the last twists
        counters = dict(actor.robot_status.counters) if actor.robot_status else {}
    finally:
        actor.close()
        session.close()
        _stop(cam)
        _stop(baseline)
        executor.shutdown(timeout_sec=5.0)
        spinner.join(timeout=5.0)
        ros.destroy_node()
        rclpy.try_shutdown()
        node.send_signal(signal.SIGINT)
        try:
            node.wait(timeout=20)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()
    published = {int(k): v for k, v in json.loads((tmp / "camera.json").read_text()).items()}
    direct_rx = json.loads((tmp / "direct.json").read_text())
    measured = {i for i, t in published.items() if start_ns <= t and t + 0.2e9 <= end_ns}

    # the actor: each frame's first delivery (a frame may be sent again at a tick with no newer frame)
    first: dict[int, tuple] = {}
    for rec in records:
        if rec[0] in measured and rec[0] not in first:
            first[rec[0]] = rec
    e2e = [(rx - published[i]) / 1e6 for i, (_, rx, _, _) in first.items()]
    to_node = [(arrived - published[i]) / 1e6 for i, (_, _, _, arrived) in first.items()]
    wait_tick = [(tick - arrived) / 1e6 for _, (_, _, tick, arrived) in first.items()]
    tick_to_actor = [(rx - tick) / 1e6 for _, (_, rx, tick, _) in first.items()]
    transport = [a + b for a, b in zip(to_node, tick_to_actor)]
    baseline_ms = [(t - published[i]) / 1e6 for i, t in direct_rx if i in measured]

    # commands: the twist carrying each code sent in the window (codes repeat after 1000 steps: match in order)
    arrivals: dict[int, list[int]] = {}
    for c, t in twists:
        arrivals.setdefault(c, []).append(t)
    command_ms = []
    for c, t_sent in sends:
        later = [t for t in arrivals.get(c, []) if t >= t_sent]
        if later:
            command_ms.append((later[0] - t_sent) / 1e6)
            arrivals[c].remove(later[0])

    node_path, direct_path = _percentiles(e2e), _percentiles(baseline_ms)
    node_transport = _percentiles(transport)

    def ratio(a: dict, b: dict, key: str) -> float | None:
        return a[key] / b[key] if a[key] and b[key] else None

    return {
        "ros_automatic_discovery_range": env.get("ROS_AUTOMATIC_DISCOVERY_RANGE"),
        "fastdds_profile": bool(env.get("FASTRTPS_DEFAULT_PROFILES_FILE")),
        "camera_fps": camera_fps,
        "camera_to_actor": node_path,
        "camera_to_node": _percentiles(to_node),
        "node_wait_for_tick": _percentiles(wait_tick),
        "tick_to_actor": _percentiles(tick_to_actor),
        "camera_to_actor_without_tick_wait": node_transport,
        "direct_rclpy": direct_path,
        "p50_ratio_node_over_direct": ratio(node_path, direct_path, "p50_ms"),
        "p99_ratio_node_over_direct": ratio(node_path, direct_path, "p99_ms"),
        "p50_ratio_node_without_tick_wait_over_direct": ratio(node_transport, direct_path, "p50_ms"),
        "p99_ratio_node_without_tick_wait_over_direct": ratio(node_transport, direct_path, "p99_ms"),
        "command_action_to_twist": _percentiles(command_ms),
        "frames": {"published": len(measured), "to_actor": len(first),
                   "to_direct": len({i for i, _ in direct_rx if i in measured}), "observations": len(records),
                   "repeated_in_observations": len(records) - len({r[0] for r in records})},
        "commands": {"sent": len(sends), "received": len(command_ms),
                     "holds": sum(1 for c, t in twists if c == 0 and start_ns <= t <= end_ns)},
        "robot_side_counters": {k: counters[k] for k in sorted(counters)},
    }


def run(seconds: float, fps: float, width: int, height: int, rate_hz: float,
        transports: tuple[str, ...] = TRANSPORTS) -> dict:
    """One measurement per Fast DDS set-up, each in a fresh process (Fast DDS reads its profile once per
    process); the combined results."""
    results = {"benchmark": "ros2", "seconds": seconds, "fps": fps, "width": width, "height": height,
               "encoding": "rgb8", "image_bytes": width * height * 3, "control_rate_hz": rate_hz,
               "rmw": "rmw_fastrtps_cpp (ROS 2 Jazzy wheels)", "cpus": os.cpu_count(),
               "load_average_1min_before": os.getloadavg()[0], "runs": {}}
    for transport in transports:
        with tempfile.TemporaryDirectory(prefix=f"bench_ros2_{transport}_") as tmp:
            work = Path(tmp)
            env = transport_env(transport, work) | {"BENCH_ROS2_WORKDIR": str(work)}
            out = work / "result.json"
            proc = subprocess.run([sys.executable, "-m", "benchmarks.ros2", "--role", "measure", "--role-out", str(out),
                                   "--seconds", str(seconds), "--fps", str(fps), "--width", str(width),
                                   "--height", str(height), "--rate", str(rate_hz)],
                                  cwd=ROOT, env=env, capture_output=True, text=True, timeout=seconds + 240)
            if proc.returncode != 0:
                logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(work.glob("*.log")))
                raise RuntimeError(f"{transport} measurement failed ({proc.returncode}):\n"
                                   f"{proc.stderr[-3000:]}\n{logs}")
            results["runs"][transport] = json.loads(out.read_text())
    # a shared machine: how busy it was tells how far to trust the tails
    results["load_average_1min_after"] = os.getloadavg()[0]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured time per Fast DDS set-up")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--rate", type=float, default=30.0, help="the node's control rate (Hz)")
    parser.add_argument("--transports", default=",".join(TRANSPORTS),
                        help=f"comma-separated Fast DDS set-ups to measure, of {', '.join(TRANSPORTS)}")
    parser.add_argument("--role", choices=["camera", "direct", "measure"], help=argparse.SUPPRESS)
    parser.add_argument("--role-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "camera":
        return camera(args.role_out, args.fps, args.width, args.height)
    if args.role == "direct":
        return direct(args.role_out)
    if args.role == "measure":
        result = measure(args.seconds, args.fps, args.width, args.height, args.rate)
        return Path(args.role_out).write_text(json.dumps(result))
    if not args.json:
        parser.error("--json is required")
    transports = tuple(t for t in args.transports.split(",") if t)
    unknown = sorted(set(transports) - set(TRANSPORTS))
    if unknown:
        parser.error(f"unknown transports {unknown}; choose from {', '.join(TRANSPORTS)}")
    out = run(args.seconds, args.fps, args.width, args.height, args.rate, transports)
    atomic_write(args.json, lambda f: f.write(json.dumps(out, indent=1)), mode="w")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
