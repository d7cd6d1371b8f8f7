"""Faults a session must survive, counted: kills, floods, garbage and pauses against the real parts.

- Writer kills: a process commits episodes (deterministic contents) to an episode store and is SIGKILLed at a
  random moment, again and again; every episode it reported committed must be there, bit for bit.
- A robot side (real-time, in this process, a kinematic arm) serves a controller process that acts through the
  robot-side protocol; the controller is SIGKILLed mid-episode, and the time from the kill to the robot side's
  first hold is measured (goal: within 2 control periods).
- Garbage and floods on the robot side's action and control keys while the controller acts (random bytes,
  truncated and bit-flipped real messages, 1,000-deep nested headers), and e-stops followed within one tick by
  300 other controls: every e-stop must latch.
- A learner process gets garbage and well-formed but wrong steps on its step key, and an episode paused longer
  than its partial timeout while its actor keeps reporting it; it must live on and commit that episode whole.

    python -m benchmarks.faults --json benchmarks/results/faults.json [--kills 20] [--garbage 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgspec
import numpy as np

from robot_parl.data.episode_store import EpisodeStore
from robot_parl.files import atomic_write
from robot_parl.robots.side import RobotSide
from robot_parl.robots.sim.kinematic_arm import KinematicArm
from robot_parl.robots.spec import load_spec
from robot_parl.transport.channel import Inbox, Publisher, subscribe
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.messages import (
    MAGIC,
    SCHEMA_VERSION,
    Action,
    Control,
    LearnerStatus,
    Status,
    Step,
    encode,
)
from robot_parl.transport.session import TransportConfig, free_loopback_endpoint, open_session

ENTRY = "import sys; from robot_parl import cli; sys.exit(cli.main(sys.argv[1:]))"
CAMERA = "cameras=[{name: front, width: 32, height: 32}]"
RATE_HZ = 20

# Commits episodes of 5 frames whose proprio is the episode's number; prints each number once committed.
WRITER = """
import sys, numpy as np
from pathlib import Path
from robot_parl.data.episode_store import EpisodeStore, KeySpec
path = Path(sys.argv[1])
store = EpisodeStore(path) if (path / "zarr.json").is_file() else EpisodeStore.create(path, {
    "timestamp": KeySpec("float64", ()), "proprio": KeySpec("float32", (3,))})
w = store.writer("fault writer")
n = w.episodes
while True:
    w.begin("sim")
    for t in range(5):
        w.add({"timestamp": float(t), "proprio": np.full(3, n, np.float32)})
    w.end(True)
    print(n, flush=True)
    n += 1
"""

# Acts on the robot side through RemoteRobotEnv (as an actor does) until killed; says when it acts.
CONTROLLER = """
import sys, numpy as np
from robot_parl.robots.remote import RemoteRobotEnv
from robot_parl.robots.spec import load_spec
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.session import TransportConfig, open_session
spec = load_spec("widowx", [sys.argv[2], "control_rate_hz=" + sys.argv[3]])
session = open_session(TransportConfig(connect=[sys.argv[1]]))  # kept: a dropped session closes
env = RemoteRobotEnv(session, KeySpace("faults", "arm"), spec, timeout_s=30)
env.reset()
print("acting", flush=True)
while True:
    env.step(np.zeros(spec.action.dim, np.float32))
"""


def writer_kills(kills: int, rng: random.Random, workdir: Path) -> dict:
    """SIGKILL a committing writer ``kills`` times; committed episodes lost or altered (goal 0 and 0)."""
    path = workdir / "store"
    reported: set[int] = set()
    for _ in range(kills):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.8, 1.6))  # about half of that is the interpreter starting
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        reported |= {int(line) for line in out.split()}
    store = EpisodeStore(path)
    found = {}
    for i in range(len(store)):
        proprio = store.episode(i, ["proprio"])["proprio"]
        found[i] = bool(len(proprio) == 5 and (proprio == i).all())
    return {"kills": kills, "episodes_reported_committed": len(reported), "episodes_in_store": len(store),
            "episodes_lost": len(reported - set(found)), "episodes_altered": sum(not ok for ok in found.values())}


def _garbage(rng: random.Random, valid: list[bytes]) -> bytes:
    """One bad payload: random bytes, a truncated or bit-flipped real message, or a deeply nested header."""
    kind = rng.randrange(4)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 512))
    base = rng.choice(valid)
    if kind == 1:
        return base[: rng.randrange(len(base))]
    if kind == 2:
        flipped = bytearray(base)
        for _ in range(rng.randrange(1, 8)):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        return bytes(flipped)
    enc = msgspec.msgpack.Encoder()
    nested = b"\x91" * 1000 + b"\x90"
    header = b"".join([b"\x84", enc.encode("v"), enc.encode(SCHEMA_VERSION), enc.encode("type"),
                       enc.encode("action"), enc.encode("fields"), nested, enc.encode("arrays"), enc.encode([])])
    return struct.pack("<4sI", MAGIC, len(header)) + header


class _Robot:
    """A real-time robot side in this process, recording when it holds the arm."""

    def __init__(self, endpoint: str):
        self.session = open_session(TransportConfig(listen=[endpoint], connect=[]))
        self.spec = load_spec("widowx", [CAMERA, f"control_rate_hz={RATE_HZ}"])
        arm = KinematicArm(self.spec, seed=0)
        self.holds: list[float] = []
        hold = arm.hold

        def recorded_hold() -> None:
            self.holds.append(time.monotonic())
            hold()

        arm.hold = recorded_hold
        self.side = RobotSide(arm, self.session, KeySpace("faults", "arm"), lease_timeout_s=1.0)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.side.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.side.close()
        self.session.close()


def _start_controller(endpoint: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", CONTROLLER, endpoint, CAMERA, str(RATE_HZ)], stdout=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline()
    if "acting" not in line:
        raise RuntimeError(f"the controller did not start: {line!r}")
    return proc


def robot_side_faults(kills: int, garbage: int, estops: int, rng: random.Random) -> dict:
    """Death-to-hold times, garbage and e-stop floods against a live robot side."""
    endpoint = free_loopback_endpoint()
    robot = _Robot(endpoint)
    period_ms = 1e3 / RATE_HZ
    hold_ms = []
    out: dict = {}
    try:
        for _ in range(kills):
            proc = _start_controller(endpoint)
            time.sleep(rng.uniform(0.3, 1.0))  # mid-episode: it acts every tick
            killed = time.monotonic()
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            deadline = killed + 5.0
            while time.monotonic() < deadline and not any(t >= killed for t in robot.holds):
                time.sleep(0.001)
            first = min((t for t in robot.holds if t >= killed), default=float("inf"))
            hold_ms.append((first - killed) * 1e3)
            time.sleep(1.2)  # the dead controller's lease lapses (1 s here) before the next one starts
        out["death_to_hold_ms"] = {"kills": kills, "max": round(max(hold_ms), 1),
                                   "p50": round(float(np.median(hold_ms)), 1), "control_period_ms": period_ms,
                                   "max_in_periods": round(max(hold_ms) / period_ms, 2)}

        controller = _start_controller(endpoint)
        sender = open_session(TransportConfig(connect=[endpoint]))
        keys = KeySpace("faults", "arm")
        valid = [encode(Action(1, np.zeros(7, np.float32))), encode(Control("label", True)),
                 encode(Status(1, 2, True, False, "e"))]
        try:
            ticks_before = robot.side.seq
            pubs = {k: Publisher(sender, k, block=True) for k in (keys.action, keys.control)}
            for pub in pubs.values():
                pub.matched(10)
            for i in range(garbage):
                pubs[keys.action if i % 2 else keys.control].put_bytes(_garbage(rng, valid))
            time.sleep(1.0)
            counters = robot.side.all_counters()
            out["robot_side_garbage"] = {
                "payloads": garbage, "robot_side_alive": robot.thread.is_alive(),
                "controller_alive": controller.poll() is None, "ticks_during": robot.side.seq - ticks_before,
                "refused": counters.get("actions_refused", 0) + counters.get("controls_refused", 0),
                "note": "a payload not refused decoded as a valid message (a flipped bit in its numbers); the "
                        "lease, sequence numbers and the safety filter still stood between it and the arm"}
            dropped = 0
            control = pubs[keys.control]
            for _ in range(estops):
                robot.side.safety.clear_estop()
                control.put(Control("estop", peer="operator"))
                for _ in range(300):
                    control.put(Control("label", True, peer="operator"))
                deadline = time.monotonic() + 2.0
                while not robot.side.safety.estopped and time.monotonic() < deadline:
                    time.sleep(0.005)
                dropped += not robot.side.safety.estopped
            robot.side.safety.clear_estop()
            out["estops"] = {"sent": estops, "each_followed_by": 300, "dropped": dropped,
                             "controls_dropped": robot.side.all_counters().get("controls_dropped", 0)}
        finally:
            controller.send_signal(signal.SIGKILL)
            controller.wait()
            sender.close()
    finally:
        robot.close()
    return out


def _step(episode: str, index: int, n: int, **changes) -> Step:
    fields = dict(actor="faults", episode_id=episode, index=index, stamp_ns=1_000_000 * (index + 1),
                  images={"front": np.zeros((32, 32, 3), np.uint8)}, proprio=np.zeros(4, np.float32),
                  action=np.zeros(7, np.float32), candidates=np.zeros((n, 7), np.float32), reward=-1.0)
    return Step(**(fields | changes))


def learner_faults(garbage: int, rng: random.Random, workdir: Path) -> dict:
    """Garbage and wrong steps to a learner process, and a paused episode; is it alive, is the episode whole?"""
    endpoint, n = free_loopback_endpoint(), 4
    log = workdir / "learner.log"
    learner = subprocess.Popen([sys.executable, "-c", ENTRY, "learner", "--config", "configs/finetune-tiny-vla.yaml",
                                "--out", str(workdir / "learner"), f"robot_overrides=['{CAMERA}']",
                                "policy.kind=gaussian", "policy.gaussian.hidden_dims=[16]", f"parl.num_samples={n}",
                                "parl.top_k=2", "link.session=faults", f"link.learner_endpoint={endpoint}",
                                "learner.partial_after_s=1.0"], stdout=open(log, "w"), stderr=subprocess.STDOUT)
    session = open_session(TransportConfig(connect=[endpoint]))
    try:
        deadline = time.monotonic() + 120
        while "learner " not in log.read_text():
            if learner.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the learner did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        status = Inbox(LearnerStatus, maxlen=1000)
        sub = subscribe(session, KeySpace("faults", "learner").status, status)
        steps = Publisher(session, KeySpace("faults", "robot0").step, block=True)
        actor = Publisher(session, KeySpace("faults", "robot0").actor)
        steps.matched(30)
        valid = [encode(_step("v", 0, n))]
        wrong = [_step("w1", 0, n, final=True), _step("w2", 0, n, action=np.full(7, np.nan, np.float32)),
                 _step("w3", 0, n, images={}), _step("w4", 0, n, candidates=np.zeros((n + 1, 7), np.float32))]
        for i in range(garbage):
            if i % 50 == 0:
                steps.put(wrong[(i // 50) % len(wrong)])
            else:
                steps.put_bytes(_garbage(rng, valid))
        # an operator's pause of 3 partial timeouts in the middle of an episode, its actor reporting it meanwhile
        for i in range(2):
            steps.put(_step("paused", i, n))
        paused_until = time.monotonic() + 3.0
        while time.monotonic() < paused_until:
            actor.put(Status(time.monotonic_ns(), 0, True, False, "paused"))
            time.sleep(0.2)
        steps.put(_step("paused", 2, n))
        steps.put(_step("paused", 3, n, final=True, success=True, reward=0.0))
        beat = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            got = status.get(timeout=1.0)
            if got is not None:
                beat = got
                if "paused" in got.committed:
                    break
        sub.undeclare()
        steps.close()
        actor.close()
    finally:
        session.close()
        alive = learner.poll() is None
        learner.send_signal(signal.SIGTERM)
        code = learner.wait(timeout=60)
    store = EpisodeStore(workdir / "learner" / "episodes")
    paused = [e for e in store.episodes() if e.episode_id == "paused"]
    counters = beat.counters if beat is not None else {}
    return {"payloads": garbage, "learner_alive": alive, "learner_exit_code": code,
            "refused_steps": counters.get("refused_steps", 0), "undecodable": counters.get("steps_undecodable", 0),
            "note": "the rest decoded as valid steps (a flipped bit in a step's pixels): sound data for the learner",
            "paused_episode": {"committed": bool(paused), "frames": len(paused[0]) if paused else 0,
                               "partial": bool(paused and paused[0].partial), "expected_frames": 4}}


def run(kills: int, garbage: int, estops: int, seed: int = 0) -> dict:
    """Every fault above, with the counts of what went wrong (``summary``; every goal is 0 but the hold time)."""
    rng = random.Random(seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        result = {"writer": writer_kills(kills, rng, workdir)}
        print(json.dumps(result["writer"]), flush=True)
        result |= robot_side_faults(min(kills, 10), garbage, estops, rng)
        print(json.dumps({k: result[k] for k in ("death_to_hold_ms", "robot_side_garbage", "estops")}), flush=True)
        result["learner"] = learner_faults(garbage // 4, rng, workdir)
        print(json.dumps(result["learner"]), flush=True)
    robot, learner = result["robot_side_garbage"], result["learner"]
    lost = [not robot["robot_side_alive"], not robot["controller_alive"], not learner["learner_alive"],
            learner["learner_exit_code"] != 0]
    paused = learner["paused_episode"]
    result["summary"] = {
        "messages_tried": garbage + learner["payloads"] + estops * 301,
        "processes_lost": sum(lost),
        "episodes_lost": result["writer"]["episodes_lost"] + (not paused["committed"] or paused["partial"]),
        "episodes_altered": result["writer"]["episodes_altered"] + (paused["frames"] != paused["expected_frames"]),
        "estops_dropped": result["estops"]["dropped"],
        "longest_death_to_hold_periods": result["death_to_hold_ms"]["max_in_periods"],
        "goals": "processes_lost 0, episodes_lost 0, episodes_altered 0, estops_dropped 0, death to hold <= 2 periods",
    }
    result["seconds"] = round(time.monotonic() - started, 1)
    result["machine"] = {"cpus": os.cpu_count()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", required=True)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--garbage", type=int, default=20_000)
    parser.add_argument("--estops", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = run(args.kills, args.garbage, args.estops, args.seed)
    atomic_write(args.json, lambda f: f.write(json.dumps(result, indent=2)), mode="w")
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    main()
