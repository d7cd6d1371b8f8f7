"""The one interface every teleop device has, and the operator's episode commands.

A device is polled once per control step. It returns the motion it wants now (physical units, the
robot's action layout) or None when the operator is not moving it, plus the operator events that
arrived since the last poll. Devices that cannot send events (a SpaceMouse) are paired with one that
can (the keyboard) by :class:`Paired`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

OperatorEvent = Literal["start", "success", "failure", "discard", "quit", "pause", "estop"]
OPERATOR_EVENTS: tuple[OperatorEvent, ...] = ("start", "success", "failure", "discard", "quit", "pause", "estop")


@dataclass
class TeleopInput:
    """What a device says at one poll: a motion (or None: the operator is not moving it) and events."""

    values: np.ndarray | None = None
    events: list[OperatorEvent] = field(default_factory=list)


class TeleopDevice(Protocol):
    """A teleop device: ``poll(stamp_ns)`` once per control step; ``close()`` releases it.

    ``stamp_ns`` is the stamp of the observation being answered: devices whose commands are computed
    from that observation (a robot side's scripted expert) wait for the matching one.
    """

    name: str

    def poll(self, stamp_ns: int) -> TeleopInput: ...

    def close(self) -> None: ...


class Paired:
    """Motion from one device, events from both (a SpaceMouse for motion, the keyboard for episodes)."""

    def __init__(self, motion: TeleopDevice, operator: TeleopDevice):
        self.motion = motion
        self.operator = operator
        self.name = f"{motion.name}+{operator.name}"

    def poll(self, stamp_ns: int) -> TeleopInput:
        moved = self.motion.poll(stamp_ns)
        keys = self.operator.poll(stamp_ns)
        return TeleopInput(moved.values, moved.events + keys.events)

    def close(self) -> None:
        self.motion.close()
        self.operator.close()


def hold_action(low: np.ndarray, high: np.ndarray, gripper: float | None) -> np.ndarray:
    """No motion; the gripper (last dimension) kept where it was, or at its upper bound (open)."""
    values = np.zeros(len(low), np.float32)
    values[-1] = high[-1] if gripper is None else gripper
    return np.clip(values, low, high)
