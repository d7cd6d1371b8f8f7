"""Robot specs: what a robot side exposes and what its commands may do, loaded from YAML and validated.

A spec is data (robot_parl/robots/specs/<name>.yaml or any path): cameras, proprio layout, action
space in physical units, control rate, command mode, workspace box, per-step limits, home pose.
It never imports torch: the ROS 2 node and the robot side read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from robot_parl import typed_config
from robot_parl.models.action_space import GripperConvention
from robot_parl.typed_config import require

SPECS_DIR = Path(__file__).parent / "specs"


@dataclass
class CameraSpec:
    name: str = "front"
    width: int = 640
    height: int = 480
    encoding: Literal["rgb8", "bgr8", "mono8", "16UC1"] = "rgb8"
    rate_hz: float = 30.0
    # Calibration file (calibration/<rig>/<camera>.yaml; relative to the working directory or the
    # repository). When set, the adapter delivers raw frames at the calibrated size and the robot side
    # undistorts, crops and resizes them to width x height before sending (robot_parl.robots.rectify).
    calibration: str | None = None

    def validate(self) -> None:
        require(bool(self.name) and "/" not in self.name, "name", "a non-empty camera name without '/'", self.name)
        require(self.width > 0 and self.height > 0, "width", "positive width and height",
                (self.width, self.height))
        require(self.rate_hz > 0, "rate_hz", "a positive rate", self.rate_hz)
        require(self.calibration is None or self.calibration.endswith((".yaml", ".yml")), "calibration",
                "a path to a calibration YAML file", self.calibration)


@dataclass
class ActionSpec:
    """The command each step, in physical units; ``max_change`` bounds the change between two steps."""

    names: list[str] = field(default_factory=lambda: ["x", "y", "z", "roll", "pitch", "yaw", "gripper"])
    units: list[str] = field(default_factory=lambda: ["m", "m", "m", "rad", "rad", "rad", "1"])
    low: list[float] = field(default_factory=lambda: [-0.02] * 3 + [-0.1] * 3 + [0.0])
    high: list[float] = field(default_factory=lambda: [0.02] * 3 + [0.1] * 3 + [1.0])
    max_change: list[float] = field(default_factory=lambda: [0.02] * 3 + [0.1] * 3 + [1.0])
    # What the 'gripper' command's values mean (which closes, which opens). Required to run a VLA whose
    # training data had its own gripper convention (policy.vla.gripper); teleop toggles between the bounds.
    gripper: GripperConvention | None = None

    @property
    def dim(self) -> int:
        return len(self.names)

    def validate(self) -> None:
        n = len(self.names)
        require(n >= 1, "names", "at least one action dimension", self.names)
        for key in ("units", "low", "high", "max_change"):
            require(len(getattr(self, key)) == n, key, f"{n} entries (one per action name)", getattr(self, key))
        for key in ("low", "high", "max_change"):
            values = getattr(self, key)
            require(all(math.isfinite(v) for v in values), key, "finite numbers", values)
        bad = [name for name, lo, hi in zip(self.names, self.low, self.high) if not lo < hi]
        require(not bad, "low", f"low < high in every dimension (not so for {bad})", self.low)
        require(all(m > 0 for m in self.max_change), "max_change", "positive limits", self.max_change)
        if self.gripper is not None:
            require("gripper" in self.names, "gripper", "an action dimension named 'gripper'", self.names)
            i = self.names.index("gripper")
            values = (self.gripper.closed, self.gripper.open)
            require(all(self.low[i] <= v <= self.high[i] for v in values), "gripper",
                    f"closed and open within the gripper's bounds [{self.low[i]}, {self.high[i]}]",
                    {"closed": values[0], "open": values[1]})


@dataclass
class WorkspaceSpec:
    """Box the end effector must stay in (metres, robot base frame); empty lists disable the check."""

    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return bool(self.low)

    def validate(self) -> None:
        if not self.low and not self.high:
            return
        require(len(self.low) == 3 and len(self.high) == 3, "low", "xyz lists of 3 for low and high",
                (self.low, self.high))
        require(all(lo < hi for lo, hi in zip(self.low, self.high)), "high", "high > low on every axis", self.high)


@dataclass
class RobotSpec:
    name: str = "robot"
    control_rate_hz: float = 5.0
    # Fraction of the control period an action may take to arrive before the robot holds.
    deadline_fraction: float = 0.9
    # velocity: xyz/rpy deltas become a twist (delta / period); pose: deltas compose with the current pose.
    command_mode: Literal["velocity", "pose"] = "velocity"
    cameras: list[CameraSpec] = field(default_factory=list)
    proprio: list[str] = field(default_factory=list)
    action: ActionSpec = field(default_factory=ActionSpec)
    workspace: WorkspaceSpec = field(default_factory=WorkspaceSpec)
    # xyz + quaternion xyzw of the end effector at home
    home_pose: list[float] = field(default_factory=lambda: [0.3, 0.0, 0.2, 0.0, 0.0, 0.0, 1.0])

    @property
    def period_s(self) -> float:
        return 1.0 / self.control_rate_hz

    def stored(self) -> dict:
        """What an episode store records about the robot: its name and the names and units of its actions."""
        return {"name": self.name, "action": {"names": list(self.action.names), "units": list(self.action.units)}}

    def observation_keys(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """Flat observation keys (as stored and as policies read them) -> (dtype, per-step shape)."""
        keys = {f"images/{c.name}": ("uint8", (c.height, c.width, 3)) for c in self.cameras}
        keys["proprio"] = ("float32", (len(self.proprio),))
        return keys

    def space(self) -> dict:
        """What a policy trained on one robot needs of another to act on it (a fleet's robots must agree on it):
        camera names and sizes, proprio layout, and the action's names and bounds. JSON-able."""
        return {"cameras": {c.name: [c.height, c.width] for c in self.cameras}, "proprio": list(self.proprio),
                "action": {"names": list(self.action.names), "low": list(self.action.low),
                           "high": list(self.action.high)}}

    def validate(self) -> None:
        require(0 < self.control_rate_hz < math.inf, "control_rate_hz", "a positive finite rate", self.control_rate_hz)
        require(all(math.isfinite(v) for v in self.home_pose), "home_pose", "finite numbers", self.home_pose)
        require(0 < self.deadline_fraction <= 1, "deadline_fraction", "a number in (0, 1]", self.deadline_fraction)
        names = [c.name for c in self.cameras]
        require(len(set(names)) == len(names), "cameras", "distinct camera names", names)
        require(len(self.home_pose) == 7, "home_pose", "xyz + quaternion xyzw (7 numbers)", self.home_pose)
        if self.workspace.enabled:
            inside = all(lo <= x <= hi for lo, x, hi in zip(self.workspace.low, self.home_pose, self.workspace.high))
            require(inside, "home_pose", f"a position inside the workspace box {self.workspace.low}.."
                    f"{self.workspace.high}", self.home_pose[:3])


def load_spec(name_or_path: str | Path, overrides: list[str] | None = None) -> RobotSpec:
    """A spec by name (robot_parl/robots/specs/<name>.yaml) or by path, with dotted overrides."""
    return typed_config.load_named(RobotSpec, name_or_path, SPECS_DIR, "robot spec", overrides or ())


def space_differences(own: dict, other: dict, other_name: str = "the robot") -> list[str]:
    """How ``other``'s :meth:`RobotSpec.space` differs from ``own``'s, one line each (empty: they match)."""
    found = []
    mine, theirs = own["cameras"], other.get("cameras", {})
    for name in sorted(set(mine) | set(theirs)):
        if name not in theirs:
            found.append(f"camera {name!r} is missing on {other_name}")
        elif name not in mine:
            found.append(f"{other_name} has camera {name!r}, which this session does not")
        elif list(mine[name]) != list(theirs[name]):
            found.append(f"camera {name!r} is {_size(mine[name])} here, {_size(theirs[name])} on {other_name}")
    if own["proprio"] != other.get("proprio"):
        found.append(f"proprio is {own['proprio']} here, {other.get('proprio')} on {other_name}")
    for key in ("names", "low", "high"):
        here, there = own["action"][key], other.get("action", {}).get(key)
        if here != there:
            found.append(f"action {key} are {here} here, {there} on {other_name}")
    return found


def _size(hw: list[int]) -> str:
    return f"{hw[1]}x{hw[0]}"
