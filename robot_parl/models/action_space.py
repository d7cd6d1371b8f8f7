"""Action spaces: the one map, both ways, between what a policy emits and what the robot takes.

Every policy acts in its own normalized space [-1, 1]^A; the robot, the episode store, teleop devices and
importers speak robot units (the robot spec's physical units). Each session builds one
:class:`ActionSpace` for its policy and robot and converts at two boundaries only: ``to_robot`` when an
action is sent, ``from_robot`` when stored data reaches the policy or the critic (replay, behaviour
cloning). The safety filter applies after ``to_robot``, in robot units.

- :class:`LinearActionSpace` (diffusion, autoregressive, Gaussian policies): linear over the spec's bounds.
- :class:`VLAActionSpace` (OpenVLA checkpoints): the checkpoint's q01/q99 statistics for ``unnorm_key``
  where its mask is set (OpenVLA's own un-normalization), then an explicit gripper mapping from the
  dataset's convention (Bridge: 0 = closed, 1 = open) to the robot's, declared on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from robot_parl.typed_config import ConfigError, require


class ActionSpace(Protocol):
    """Both directions between policy space [-1, 1]^A and robot units; arrays [..., A], float32 out."""

    dim: int

    def to_robot(self, actions: np.ndarray) -> np.ndarray:
        """Policy actions -> robot units."""

    def from_robot(self, actions: np.ndarray) -> np.ndarray:
        """Robot units -> policy actions (clipped to [-1, 1])."""


class LinearActionSpace:
    """[-1, 1] <-> [low, high] per dimension."""

    def __init__(self, low, high):
        self.low = np.asarray(low, np.float32)
        self.high = np.asarray(high, np.float32)
        self.dim = self.low.shape[0]

    def to_robot(self, actions: np.ndarray) -> np.ndarray:
        a = np.clip(np.asarray(actions, np.float32), -1.0, 1.0)
        return (self.low + (a + 1.0) * 0.5 * (self.high - self.low)).astype(np.float32)

    def from_robot(self, actions: np.ndarray) -> np.ndarray:
        a = 2.0 * (np.asarray(actions, np.float32) - self.low) / (self.high - self.low) - 1.0
        return np.clip(a, -1.0, 1.0).astype(np.float32)


@dataclass
class GripperConvention:
    """What gripper values mean on one side: the value for closed and the value for open.

    On a policy card it describes the training dataset (Bridge and most OpenX data: closed 0, open 1); on a
    robot spec, the robot's gripper command. Values in between map linearly.
    """

    closed: float = 0.0
    open: float = 1.0

    def validate(self) -> None:
        require(self.closed != self.open, "open", f"a value other than closed ({self.closed})", self.open)


class VLAActionSpace:
    """OpenVLA's un-normalization (q01/q99 where the mask is set), then the gripper from the dataset's
    convention to the robot's. ``gripper`` = (index, dataset convention, robot convention) or None."""

    def __init__(self, q01, q99, mask, gripper: tuple[int, GripperConvention, GripperConvention] | None):
        self.q01, self.q99 = np.asarray(q01, np.float64), np.asarray(q99, np.float64)
        self.mask = np.asarray(mask, bool)
        self.dim = self.q01.shape[0]
        self.gripper = gripper

    def to_robot(self, actions: np.ndarray) -> np.ndarray:
        a = np.clip(np.asarray(actions, np.float64), -1.0, 1.0)
        out = np.where(self.mask, 0.5 * (a + 1.0) * (self.q99 - self.q01) + self.q01, a)
        if self.gripper is not None:
            i, data, robot = self.gripper
            out[..., i] = _remap(out[..., i], data, robot)
        return out.astype(np.float32)

    def from_robot(self, actions: np.ndarray) -> np.ndarray:
        a = np.array(actions, np.float64)
        if self.gripper is not None:
            i, data, robot = self.gripper
            a[..., i] = _remap(a[..., i], robot, data)
        span = np.where(self.q99 > self.q01, self.q99 - self.q01, 1.0)
        out = np.where(self.mask, 2.0 * (a - self.q01) / span - 1.0, a)
        return np.clip(out, -1.0, 1.0).astype(np.float32)


def _remap(values: np.ndarray, source: GripperConvention, target: GripperConvention) -> np.ndarray:
    """Linear from one convention to the other, clipped to the target's closed..open range."""
    fraction = np.clip((values - source.closed) / (source.open - source.closed), 0.0, 1.0)
    return target.closed + fraction * (target.open - target.closed)


def vla_action_space(stats: dict, unnorm_key: str, dataset_gripper: GripperConvention | None,
                     action_names: list[str], robot_gripper: GripperConvention | None) -> VLAActionSpace:
    """A VLA checkpoint's action space on a robot, refusing a missing or contradictory gripper mapping.

    ``stats`` is ``norm_stats[unnorm_key]["action"]``. The gripper is the robot's dimension named "gripper";
    the card must say what the dataset's values mean there (``policy.vla.gripper``) and the robot spec what
    the robot's mean (``action.gripper``), or neither may exist.
    """
    q01, q99 = stats["q01"], stats["q99"]
    mask = stats.get("mask", [True] * len(q01))
    if len(q01) != len(action_names):
        raise ConfigError("policy.vla.unnorm_key", f"the statistics for {unnorm_key!r} have {len(q01)} action "
                                                   f"dimensions, the robot {len(action_names)} ({action_names})")
    has_gripper = "gripper" in action_names
    if has_gripper and robot_gripper is None:
        raise ConfigError("robot_spec action.gripper", "the robot has a 'gripper' action but its spec does not say "
                                                       "which values close and open it: set action.gripper: "
                                                       "{closed: ..., open: ...}")
    if has_gripper and dataset_gripper is None:
        i = action_names.index("gripper")
        raise ConfigError("policy.vla.gripper", f"missing: the robot has a gripper (dimension {i}; closed "
                                                f"{robot_gripper.closed}, open {robot_gripper.open}) and the "
                                                f"checkpoint's {unnorm_key!r} statistics "
                                                f"{'leave it un-normalized' if not mask[i] else 'normalize it'}; say "
                                                "what the dataset's gripper values mean, e.g. {closed: 0.0, open: 1.0} "
                                                "for Bridge/OpenX data")
    if not has_gripper and dataset_gripper is not None:
        raise ConfigError("policy.vla.gripper", f"set, but the robot's actions {action_names} have no 'gripper'")
    if not has_gripper:
        return VLAActionSpace(q01, q99, mask, None)
    i = action_names.index("gripper")
    low, high = stats.get("min"), stats.get("max")
    if low is not None and high is not None:
        inside = all(low[i] - 1e-6 <= v <= high[i] + 1e-6 for v in (dataset_gripper.closed, dataset_gripper.open))
        require(inside, "policy.vla.gripper", f"closed and open within the {unnorm_key!r} data's gripper range "
                f"[{low[i]}, {high[i]}]", {"closed": dataset_gripper.closed, "open": dataset_gripper.open})
    return VLAActionSpace(q01, q99, mask, (i, dataset_gripper, robot_gripper))
