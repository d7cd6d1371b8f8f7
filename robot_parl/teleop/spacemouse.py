"""3Dconnexion SpaceMouse over HID (the ``hid`` package, hidapi), read without blocking.

Reports: id 1 carries translation (x, y, z as little-endian int16) and, on newer devices, rotation in
the same report (13 bytes); older devices send rotation as id 2; id 3 is the button bitmask. Axis
readings span about +-350; they are scaled to the action bounds after a dead zone. The left button
toggles the gripper (last action dimension). ``axes`` maps device axes onto the robot's: mount
conventions differ, so check the signs on your setup before the first session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from robot_parl.teleop.device import TeleopInput

VENDOR_IDS = (0x046D, 0x256F)  # Logitech-era and 3Dconnexion devices
FULL_SCALE = 350.0


@dataclass
class SpaceMouseState:
    """The latest axis readings (x, y, z, roll, pitch, yaw; raw units) and button bits."""

    axes: np.ndarray = field(default_factory=lambda: np.zeros(6, np.float32))
    buttons: int = 0


def parse_report(report: bytes | list[int], state: SpaceMouseState) -> None:
    """Fold one HID report into ``state``; unknown report ids are ignored."""
    data = bytes(report)
    if len(data) < 7:
        return
    if data[0] == 1:
        state.axes[:3] = np.frombuffer(data[1:7], "<i2")
        if len(data) >= 13:
            state.axes[3:] = np.frombuffer(data[7:13], "<i2")
    elif data[0] == 2:
        state.axes[3:] = np.frombuffer(data[1:7], "<i2")
    elif data[0] == 3:
        state.buttons = data[1]


class SpaceMouse:
    """Motion from a SpaceMouse; pair it with the keyboard for operator events (teleop.device.Paired)."""

    name = "spacemouse"

    def __init__(self, low: np.ndarray, high: np.ndarray, deadzone: float = 0.1,
                 axes: tuple[tuple[int, float], ...] = ((0, 1.0), (1, 1.0), (2, 1.0), (3, 1.0), (4, 1.0), (5, 1.0)),
                 read: Callable[[], list[int]] | None = None):
        self.low = np.asarray(low, np.float32)
        self.high = np.asarray(high, np.float32)
        if len(self.low) < 7:
            raise ValueError(f"the SpaceMouse drives 6 axes and a gripper: the action needs 7 dimensions, "
                             f"got {len(self.low)}")
        self.deadzone = deadzone
        self.axes = axes
        self.state = SpaceMouseState()
        self.gripper = float(self.high[-1])
        self._device = None
        self._read = read or self._open()

    def _open(self) -> Callable[[], list[int]]:
        try:
            import hid
        except ImportError as err:
            raise RuntimeError("the SpaceMouse needs the hid package (pip install hidapi) and its udev rules") from err
        found = [d for d in hid.enumerate() if d["vendor_id"] in VENDOR_IDS]
        if not found:
            raise RuntimeError(f"no SpaceMouse found among HID devices (vendor ids {[hex(v) for v in VENDOR_IDS]})")
        self._device = hid.device()
        self._device.open(found[0]["vendor_id"], found[0]["product_id"])
        self._device.set_nonblocking(True)
        return lambda: self._device.read(64)

    def poll(self, stamp_ns: int = 0) -> TeleopInput:
        """The motion the puck is held at now (None inside the dead zone, gripper unchanged)."""
        toggled = False
        while report := self._read():
            was_pressed = self.state.buttons & 1
            parse_report(report, self.state)
            # a press and release between two polls still counts: edges are seen report by report
            if self.state.buttons & 1 and not was_pressed:
                toggled = not toggled
        if toggled:
            self.gripper = float(self.low[-1] if self.gripper == self.high[-1] else self.high[-1])
        scaled = np.clip(self.state.axes / FULL_SCALE, -1.0, 1.0)
        scaled[np.abs(scaled) < self.deadzone] = 0.0
        if not scaled.any() and not toggled:
            return TeleopInput(None)
        motion = np.zeros(len(self.low), np.float32)
        for robot_axis, (device_axis, sign) in enumerate(self.axes):
            v = sign * scaled[device_axis]
            motion[robot_axis] = v * (self.high[robot_axis] if v > 0 else -self.low[robot_axis])
        motion[-1] = self.gripper
        return TeleopInput(np.clip(motion, self.low, self.high))

    def close(self) -> None:
        if self._device is not None:
            self._device.close()
            self._device = None
