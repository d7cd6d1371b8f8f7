"""A robot side seen over the transport, as a gymnasium.Env for actors, evaluation and tests.

connect() hears the robot side and refuses one whose observation and action space differ from the spec's (a fleet's
robots must agree on them); reset() asks the robot side to go home and start an episode, then returns its first
observation; step(action) answers the newest observation's sequence number and returns the next one. Success comes
from the robot side (simulators) or from an operator's label on the control key. The offset between the robot side's
clock and ours is estimated from observation stamps (see clock_offset_ns).
"""

from __future__ import annotations

import json
import time
import uuid

import gymnasium as gym
import numpy as np

from robot_parl.robots.spec import RobotSpec, space_differences
from robot_parl.transport.channel import Inbox, Publisher, subscribe
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.messages import Action, Control, Observation, Status

BEGIN_RETRY_S = 2.0  # an episode's reset and start are sent again this often until the robot side obeys them


class RobotTimeout(TimeoutError):
    """The robot side sent nothing for too long."""


class SpecMismatch(ValueError):
    """The robot side's cameras, proprio or actions are not the ones this process's spec says."""


class RemoteRobotEnv(gym.Env):
    """obs = {"images": {name: uint8 HxWx3}, "proprio": float32[P], "instruction": str}; actions in physical units."""

    metadata = {"render_modes": []}

    def __init__(self, session, keys: KeySpace, spec: RobotSpec, timeout_s: float = 10.0, horizon: int | None = None,
                 action_source: str = "policy"):
        self.spec = spec
        self._session = session
        self.action_source = action_source  # what the robot side logs the actions as: policy | teleop
        self.keys = keys
        self.timeout_s = timeout_s
        self.horizon = horizon
        self.action_space = gym.spaces.Box(np.asarray(spec.action.low, np.float32),
                                           np.asarray(spec.action.high, np.float32))
        spaces = {"proprio": gym.spaces.Box(-np.inf, np.inf, (len(spec.proprio),), np.float32),
                  "instruction": gym.spaces.Text(1000)}
        if spec.cameras:
            spaces["images"] = gym.spaces.Dict({c.name: gym.spaces.Box(0, 255, (c.height, c.width, 3), np.uint8)
                                                for c in spec.cameras})
        self.observation_space = gym.spaces.Dict(spaces)
        self.observations = Inbox(Observation, maxlen=4)
        self.labels = Inbox(Control, maxlen=64)
        self.robot_status: Status | None = None  # the robot side's latest counters and versions
        status = Inbox(Status, on_message=lambda msg: setattr(self, "robot_status", msg))
        self._subs = [subscribe(session, keys.obs, self.observations), subscribe(session, keys.control, self.labels),
                      subscribe(session, keys.status, status)]
        self._action = Publisher(session, keys.action)
        self._control = Publisher(session, keys.control, block=True)
        self.peer = uuid.uuid4().hex[:12]  # this controller's id: the robot side's lease names it
        self.episode_id = ""
        self.last: Observation | None = None
        self.steps = 0
        self.clock_offset_ns: int | None = None

    def _next_observation(self, after_seq: int, episode_id: str, timeout_s: float | None = None) -> Observation:
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while (remaining := deadline - time.monotonic()) > 0:
            obs = self.observations.get(timeout=remaining)
            if obs is None:
                break
            # local receive time minus robot stamp = offset + one-way delay; the minimum bounds the offset
            delay = time.monotonic_ns() - obs.stamp_ns
            self.clock_offset_ns = delay if self.clock_offset_ns is None else min(self.clock_offset_ns, delay)
            if obs.seq > after_seq and obs.episode_id == episode_id:
                self.last = obs
                return obs
        raise RobotTimeout(f"no observation from {self.keys.obs} for episode {episode_id!r} "
                           f"within {self.timeout_s} s: is the robot side running?")

    def _obs(self, o: Observation) -> dict:
        out = {"proprio": np.asarray(o.proprio, np.float32), "instruction": o.instruction}
        if self.spec.cameras:
            out["images"] = dict(o.images)
        return out

    def _label(self) -> bool | None:
        label = None
        for c in self.labels.drain():
            if c.command == "label" and c.episode_id in ("", self.episode_id):
                label = c.value
        return label

    def connect(self) -> None:
        """Hear the robot side once (a control sent before the link has exchanged its declarations would be lost)
        and refuse it, naming each difference, unless its cameras, proprio and actions are this spec's."""
        if self.last is not None:
            return
        first = self.observations.get(timeout=self.timeout_s)
        if first is None:
            raise RobotTimeout(f"no observation from {self.keys.obs} within {self.timeout_s} s: "
                               "is the robot side running?")
        replies = [r.ok for r in self._session.get(self.keys.space, timeout=self.timeout_s) if r.ok is not None]
        if not replies:
            raise RobotTimeout(f"the robot side did not answer {self.keys.space} within {self.timeout_s} s")
        robot = f"robot {self.keys.robot!r}"
        try:
            theirs = json.loads(replies[0].payload.to_bytes())
            found = space_differences(self.spec.space(), theirs, robot)
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise SpecMismatch(f"{robot} sent an unreadable space at {self.keys.space}: {err}") from None
        if found:
            raise SpecMismatch(f"{robot} does not fit this session's robot spec {self.spec.name!r}: "
                               + "; ".join(found))
        self.last = first

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.episode_id = (options or {}).get("episode_id") or uuid.uuid4().hex[:12]
        self.connect()
        self.labels.drain()
        self.steps = 0
        deadline = time.monotonic() + self.timeout_s
        while True:
            # while another controller's lease holds (a previous actor that just died), the robot side refuses
            # these; asked again they take the lease once it lapses
            self._control.put(Control("reset", peer=self.peer))
            self._control.put(Control("start", episode_id=self.episode_id, peer=self.peer))
            try:
                obs = self._next_observation(self.last.seq, self.episode_id,
                                             min(BEGIN_RETRY_S, max(deadline - time.monotonic(), 0.0)))
                break
            except RobotTimeout:
                if time.monotonic() >= deadline:
                    raise
        return self._obs(obs), {"seq": obs.seq, "episode_id": self.episode_id}

    def step(self, action):
        if self.last is None:
            raise RuntimeError("step() before reset()")
        values = np.asarray(action, np.float32)
        if values.shape != self.action_space.shape:
            raise ValueError(f"action must have shape {self.action_space.shape} ({self.spec.action.names}), "
                             f"got {values.shape}")
        self._action.put(Action(self.last.seq, values, self.action_source, sent_ns=time.monotonic_ns(),
                                peer=self.peer))
        obs = self._next_observation(self.last.seq, self.episode_id)
        self.steps += 1
        label = self._label()
        success = obs.success if label is None else label
        truncated = self.horizon is not None and self.steps >= self.horizon and not success
        info = {"seq": obs.seq, "success": success, "episode_id": self.episode_id, "labelled": label is not None}
        return self._obs(obs), float(success), bool(success), bool(truncated), info

    def hold(self) -> None:
        """End (or pause) the robot side's episode: it holds until resume() or the next reset()."""
        self._control.put(Control("stop", peer=self.peer))

    def resume(self) -> dict:
        """Continue the current episode after hold(); returns the newest observation."""
        self._control.put(Control("start", episode_id=self.episode_id, peer=self.peer))
        self.observations.drain()
        return self._obs(self._next_observation(self.last.seq if self.last else 0, self.episode_id))

    def estop(self) -> None:
        """Latch the robot side's e-stop (cleared there, by an operator's clear_estop)."""
        self._control.put(Control("estop", peer=self.peer))

    def close(self):
        if self._subs:
            self._control.put(Control("stop", peer=self.peer))
            for sub in self._subs:
                sub.undeclare()
            self._subs = []
            self._action.close()
            self._control.close()
