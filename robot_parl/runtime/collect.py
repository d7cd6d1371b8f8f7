"""`robot-parl collect`: demonstrations from any robot side, driven by a teleop device, into an episode store.

The collector holds the store's writer lock, talks to the robot side only through the protocol
(RemoteRobotEnv), and records episodes in the RL convention of rl/store_episodes.py: T + 1 frames,
frame t = (s_t, a_t, r_t), the last frame s_T; r = -1 per step and 0 on the step that succeeded.
An episode ends when the operator labels it (success or failure), when the robot side reports success
(simulators), or at the horizon (failure). ``discard`` drops it; ``quit`` drops the one being
recorded and stops. Only ended episodes are committed: a crash loses at most the current episode.
When the device is not being moved the robot holds (zero motion, gripper kept).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from robot_parl.data.episode_store import EpisodeStore, EpisodeWriter, KeySpec, Outcome, Source, StoreError, rl_schema
from robot_parl.robots.remote import RemoteRobotEnv
from robot_parl.robots.spec import RobotSpec
from robot_parl.teleop.device import TeleopDevice, hold_action

ENDING_EVENTS = ("success", "failure", "discard", "quit")


def open_store_for(path, spec: RobotSpec) -> EpisodeStore:
    """The store at ``path`` (created for this robot if missing); one made for another robot is refused."""
    wanted = rl_schema({k: KeySpec(*v) for k, v in spec.observation_keys().items()}, spec.action.dim)
    if not (Path(path) / "zarr.json").is_file():
        return EpisodeStore.create(path, wanted, robot_spec=asdict(spec))
    store = EpisodeStore(path)
    differ = sorted(k for k, s in wanted.items() if store.schema.get(k) != s)
    if differ:
        raise StoreError(f"{path} was made for another robot: keys {differ} are "
                         f"{[store.schema.get(k) for k in differ]} there, this robot ({spec.name}) needs "
                         f"{[wanted[k] for k in differ]}")
    return store


@dataclass
class CollectReport:
    committed: int = 0
    successes: int = 0
    discarded: int = 0
    frames: int = 0
    quit: bool = False


class Collector:
    """Runs episodes on ``env`` with ``device`` and records them through ``writer``."""

    def __init__(self, env: RemoteRobotEnv, writer: EpisodeWriter, device: TeleopDevice, source: Source = "teleop",
                 horizon: int = 300, auto_start: bool = False, status: Callable[[str], None] | None = None):
        if horizon < 1:
            raise ValueError(f"horizon must be at least 1 step, got {horizon}")
        self.env = env
        self.writer = writer
        self.device = device
        self.source = source
        self.horizon = horizon
        self.auto_start = auto_start
        self.status = status or (lambda line: None)
        self.low = np.asarray(env.spec.action.low, np.float32)
        self.high = np.asarray(env.spec.action.high, np.float32)
        self.report = CollectReport()

    def run(self, episodes: int | None = None) -> CollectReport:
        """Record until ``episodes`` are committed (None: until the operator quits)."""
        while not self.report.quit and (episodes is None or self.report.committed < episodes):
            if self.auto_start or self._wait_for_start():
                self._episode()
        return self.report

    def _wait_for_start(self) -> bool:
        self.status(f"waiting for start | kept {self.report.committed} discarded {self.report.discarded}")
        while True:
            events = self.device.poll(0).events
            if "quit" in events:
                self.report.quit = True
                return False
            if "start" in events:
                return True
            time.sleep(0.05)

    def _frame(self, obs: dict, action: np.ndarray, reward: float) -> dict:
        frame = {f"images/{name}": image for name, image in obs.get("images", {}).items()}
        frame.update(proprio=obs["proprio"], action=action, reward=np.float32(reward),
                     timestamp=self.env.last.stamp_ns * 1e-9)
        return frame

    def _episode(self) -> None:
        obs, info = self.env.reset()
        self.writer.begin(self.source, instruction=obs["instruction"])
        gripper, pending, outcome, steps, given_by = None, None, None, 0, "operator"
        started = last_status = time.monotonic()
        while outcome is None:
            polled = self.device.poll(self.env.last.stamp_ns)
            outcome = next((e for e in ENDING_EVENTS if e in polled.events), None)
            if outcome is not None:
                break
            action = polled.values if polled.values is not None else hold_action(self.low, self.high, gripper)
            gripper = float(action[-1])
            frame = self._frame(obs, action, -1.0)  # its reward is settled once the next state is known
            obs, _, terminated, _, info = self.env.step(action)
            steps += 1
            if pending is not None:
                self.writer.add(pending)
            pending = frame
            if terminated:
                outcome = "success"
                given_by = "operator" if info.get("labelled") else "sim"
            elif steps >= self.horizon:
                outcome, given_by = "failure", "horizon"
            if time.monotonic() - last_status > 0.5:
                last_status = time.monotonic()
                self.status(self._status_line(steps, steps / (last_status - started)))
        self.env.hold()
        self._finish(outcome, pending, obs, steps, given_by)

    def _finish(self, outcome: str, pending: dict | None, obs: dict, steps: int, given_by: str) -> None:
        if outcome == "quit":
            self.report.quit = True
        if outcome in ("discard", "quit") or pending is None:
            self.writer.discard()
            self.report.discarded += 1
            self.status(f"episode discarded after {steps} steps")
            return
        success = outcome == "success"
        pending["reward"] = np.float32(0.0 if success else -1.0)
        self.writer.add(pending)
        self.writer.add(self._frame(obs, np.zeros_like(pending["action"]), 0.0))
        info = self.writer.end(success, outcome=Outcome(given_by))
        self.report.committed += 1
        self.report.successes += int(success)
        self.report.frames += len(info)
        self.status(f"episode {info.index} kept: {steps} steps, {outcome}")

    def _status_line(self, steps: int, fps: float) -> str:
        counters = self.env.robot_status.counters if self.env.robot_status else {}
        drops = counters.get("stale_dropped", 0) + counters.get("future_dropped", 0) + self.env.observations.overflow
        return (f"episode {self.writer.episodes} | step {steps}/{self.horizon} | {fps:.1f} fps | "
                f"misses {counters.get('missed_deadline', 0)} drops {drops} | kept {self.report.committed} "
                f"discarded {self.report.discarded}")
