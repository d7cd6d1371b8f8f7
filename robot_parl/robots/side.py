"""The robot side: owns the control clock and is the only place commands reach an adapter (no torch).

Each tick it publishes an Observation with a sequence number, waits for the Action answering that
sequence until the tick's deadline, passes it through the safety filter and applies it; otherwise
it holds and counts a miss. Actions answering an older observation are dropped as stale. Control
messages start and stop episodes, reset to home, label outcomes, mark interventions and latch or
clear the e-stop. In synchronous mode (simulated robots in tests and benchmarks) the robot waits for
each action instead of holding.

One controller at a time: a ``reset`` or ``start`` from a peer takes the robot's lease when it is free or its
holder has been silent for ``lease_timeout_s``; from then on only the holder's actions, start, stop, reset, intervention
and clear_estop are obeyed (others are refused and counted as ``lease_refused``). Anyone may latch the
e-stop or label an episode (operators' tools do); only the holder, or the robot's own operator through
``safety``, clears the e-stop.

Hardware or a simulator plugs in through a :class:`RobotAdapter`. Teleop devices the robot side hosts
(ROS 2 teleop topics, a simulated robot's scripted expert) are forwarded as Teleop messages for data
collection and interventions: an adapter with a ``teleop(frame)`` method is asked once per tick, and
its answer goes out, stamped like the frame, before the observation.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from robot_parl.robots.rectify import rectifiers_for
from robot_parl.robots.safety import Safety, Watchdog
from robot_parl.robots.spec import RobotSpec
from robot_parl.transport.channel import Inbox, Publisher, subscribe
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.messages import Action, Control, Observation, Status, Teleop


@dataclass
class SensorFrame:
    """One reading of the robot's sensors (stamps in ns on the robot side's clock)."""

    stamp_ns: int
    proprio: np.ndarray
    images: dict[str, np.ndarray] = field(default_factory=dict)
    image_stamps_ns: dict[str, int] = field(default_factory=dict)
    ee_pose: np.ndarray | None = None
    success: bool = False
    # cameras whose image is not current (stalled, failed, not seen yet): the robot holds instead of acting on it
    stale_cameras: list[str] = field(default_factory=list)


class RobotAdapter(Protocol):
    """What a robot (hardware driver, simulator, ROS 2 node) provides to the robot side."""

    spec: RobotSpec

    def read(self) -> SensorFrame: ...

    def apply(self, values: np.ndarray) -> None:
        """Command one control step (physical units, already filtered)."""

    def hold(self) -> None:
        """Stop moving: zero velocity, or keep the last pose target."""

    def reset(self) -> None:
        """Go to the home pose."""


class RobotSide:
    """Runs one robot behind the protocol; call :meth:`run` (or :meth:`tick` from your own loop)."""

    def __init__(self, adapter: RobotAdapter, session, keys: KeySpace, synchronous: bool = False,
                 instruction: str = "", status_every: int = 10, sync_timeout_s: float = 60.0,
                 lease_timeout_s: float = 5.0):
        self.adapter = adapter
        self.lease: str | None = None  # the peer whose commands are obeyed
        self.lease_timeout_s = lease_timeout_s
        self._lease_heard = 0.0
        self.spec = adapter.spec
        self.keys = keys
        # Cameras with a calibration file: frames are undistorted, cropped and resized before sending.
        self.rectifiers = rectifiers_for(self.spec.cameras)
        self.synchronous = synchronous
        self.instruction = instruction
        self.status_every = status_every
        self.sync_timeout_s = sync_timeout_s
        self.safety = Safety(self.spec)
        self.watchdog = Watchdog(sync_timeout_s if synchronous else self.spec.period_s * self.spec.deadline_fraction)
        self.actions = Inbox(Action, maxlen=32)
        # an e-stop is never dropped for a flood of other controls
        self.controls = Inbox(Control, maxlen=256, keep=lambda msg: msg.command == "estop")
        self.counters: Counter[str] = Counter()
        self.seq = 0
        self.running = False
        self.episode_id = ""
        self.labels: dict[str, bool] = {}
        self.intervention = False
        self.latency_ms: dict[str, float] = {}
        self.versions: dict[str, int] = {}  # of the last action applied
        self._subs = [subscribe(session, keys.action, self.actions), subscribe(session, keys.control, self.controls)]
        self._obs = Publisher(session, keys.obs, block=synchronous)
        self._status = Publisher(session, keys.status)
        self._teleop = Publisher(session, keys.teleop, block=synchronous)
        space = json.dumps(self.spec.space()).encode()  # actors check it before they act (robots/remote.py)
        self._space = session.declare_queryable(keys.space, lambda query: query.reply(keys.space, space))
        self._stop = threading.Event()

    # control ------------------------------------------------------------------------------------

    def _holds_lease(self, peer: str, take: bool = False) -> bool:
        """Whether ``peer`` may command the arm; ``take``: a reset or start claims a free or lapsed lease."""
        now = time.monotonic()
        lapsed = self.lease is None or now - self._lease_heard > self.lease_timeout_s
        if peer == self.lease or (take and lapsed):
            if peer != self.lease:
                self.counters["lease_taken"] += 1
            self.lease, self._lease_heard = peer, now
            return True
        self.counters["lease_refused"] += 1
        return False

    def _handle(self, msg: Control) -> bool:
        """Obey one control; returns whether it was obeyed (a peer without the lease is refused)."""
        self.counters[f"control_{msg.command}"] += 1
        take = msg.command in ("reset", "start")  # what begins an episode may claim a free lease
        if msg.command not in ("estop", "label") and not self._holds_lease(msg.peer, take):
            return False
        if msg.command == "start":
            self.running = True
            self.episode_id = msg.episode_id or uuid.uuid4().hex[:12]
            self.safety.reset()
        elif msg.command == "stop":
            self.running = False
            self.adapter.hold()
        elif msg.command == "reset":
            self.running = False
            self.safety.reset()
            self.adapter.reset()
        elif msg.command == "label":
            self.labels[msg.episode_id or self.episode_id] = msg.value
        elif msg.command == "intervention":
            self.intervention = msg.value
        elif msg.command == "estop":
            self.safety.estop("operator")
            self.adapter.hold()
        elif msg.command == "clear_estop":
            self.safety.clear_estop()
        return True

    # the clock ----------------------------------------------------------------------------------

    def tick(self) -> None:
        """One control period: controls, observation, the answering action (or a hold), status."""
        started = time.monotonic()
        for msg in self.controls.drain():
            self._handle(msg)
        frame = self.adapter.read()
        self.seq += 1
        hosted = getattr(self.adapter, "teleop", None)
        if hosted is not None and (command := hosted(frame)) is not None:
            self.forward_teleop(command)
        images = {name: self.rectifiers[name](image) if name in self.rectifiers else image
                  for name, image in frame.images.items()}
        self._obs.put(Observation(self.seq, frame.stamp_ns, images, frame.image_stamps_ns,
                                  np.asarray(frame.proprio, np.float32), frame.ee_pose, self.instruction,
                                  self.episode_id, frame.success))
        if self.running and not self.safety.estopped:
            self._act(frame, started)
        else:
            self.adapter.hold()
        if self.seq % self.status_every == 0:
            self.publish_status()

    def _act(self, frame: SensorFrame, started: float) -> None:
        self.watchdog.arm(started)
        while True:
            remaining = self.watchdog.remaining(time.monotonic())
            if remaining <= 0:
                self.safety.hold("missed_deadline")
                self.adapter.hold()
                return
            # A synchronous robot may wait long: it still obeys controls and a stop request meanwhile.
            action = self.actions.get(timeout=min(remaining, 0.05) if self.synchronous else remaining)
            if action is None:
                if self.synchronous:
                    obeyed = [msg for msg in self.controls.drain() if self._handle(msg)]
                    # a stop, reset or new start ends this tick: the next one observes the new state (stop, reset
                    # and start arriving together would otherwise leave it waiting for the old episode's action)
                    changed = any(msg.command in ("stop", "reset", "start", "estop") for msg in obeyed)
                    if changed or self._stop.is_set() or not self.running or self.safety.estopped:
                        self.adapter.hold()
                        return
                continue
            if not self._holds_lease(action.peer):
                continue
            if action.seq != self.seq:
                self.counters["stale_dropped" if action.seq < self.seq else "future_dropped"] += 1
                continue
            self.latency_ms["action"] = (time.monotonic() - started) * 1e3
            self.versions = {"policy": action.policy_version, "critic": action.critic_version}
            verdict = self.safety.check(action.values, None if frame.ee_pose is None else frame.ee_pose[:3],
                                        frame.stale_cameras)
            if verdict.hold:
                self.adapter.hold()
            else:
                self.adapter.apply(verdict.values)
            return

    def forward_teleop(self, msg: Teleop) -> None:
        """Publish a command from a device this robot side hosts (any thread)."""
        self.counters["teleop_forwarded"] += 1
        self._teleop.put(msg)

    def all_counters(self) -> dict[str, int]:
        """Every counter of this robot side: the safety filter's, its own, and the adapter's (if it counts)."""
        counters = dict(self.safety.counters) | dict(self.counters) | dict(getattr(self.adapter, "counters", {}))
        counters["actions_refused"] = self.actions.refused
        counters["controls_refused"] = self.controls.refused
        counters["controls_dropped"] = self.controls.overflow
        return {k: int(v) for k, v in counters.items()}

    def publish_status(self) -> None:
        """Send a Status message: state, counters, latencies and the versions of the last action applied."""
        counters = self.all_counters()
        self._status.put(Status(time.monotonic_ns(), self.seq, self.running, self.safety.estopped, self.episode_id,
                                counters, dict(self.latency_ms), dict(self.versions)))

    def run(self, stop: threading.Event | None = None, max_ticks: int | None = None) -> None:
        """Tick at the spec's control rate (or as fast as actions come, when synchronous) until stopped."""
        stop = self._stop = stop or threading.Event()
        next_tick = time.monotonic()
        ticks = 0
        while not stop.is_set() and (max_ticks is None or ticks < max_ticks):
            self.tick()
            ticks += 1
            if self.synchronous and not self.running:
                stop.wait(0.01)  # idle between episodes without spinning
            elif not self.synchronous:
                next_tick += self.spec.period_s
                delay = next_tick - time.monotonic()
                if delay > 0:
                    stop.wait(delay)
                else:
                    self.counters["overruns"] += 1
                    next_tick = time.monotonic()
        self.publish_status()

    def close(self) -> None:
        """Hold the robot and undeclare everything on the transport."""
        self.adapter.hold()
        for sub in self._subs:
            sub.undeclare()
        self._space.undeclare()
        self._obs.close()
        self._status.close()
        self._teleop.close()
