"""Keyboard teleop from a terminal: motion keys move the end effector, operator keys run episodes.

A terminal sends no key-up events, so each key press (or auto-repeat) is one nudge of ``step`` times
the action bound on its axis; the nudges of one control step add up and are clipped to the bounds.
The space bar toggles the gripper (last action dimension) between its bounds.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import tty

import numpy as np

from robot_parl.teleop.device import OperatorEvent, TeleopInput

# key -> (action index, sign); indices follow the default 7-D layout (xyz, roll/pitch/yaw, gripper)
MOTION_KEYS: dict[str, tuple[int, float]] = {
    "w": (0, 1.0), "s": (0, -1.0), "a": (1, 1.0), "d": (1, -1.0), "r": (2, 1.0), "f": (2, -1.0),
    "u": (3, 1.0), "o": (3, -1.0), "i": (4, 1.0), "k": (4, -1.0), "j": (5, 1.0), "l": (5, -1.0),
}
GRIPPER_KEY = " "
EVENT_KEYS: dict[str, OperatorEvent] = {"\r": "start", "\n": "start", "y": "success", "n": "failure",
                                        "\x7f": "discard", "\x08": "discard", "q": "quit", "p": "pause",
                                        "x": "estop"}
HELP = ("keys: w/s x, a/d y, r/f z, u/o roll, i/k pitch, j/l yaw, space gripper | "
        "Enter start, y success, n failure, Backspace discard, p pause, x e-stop, q quit")


class Keyboard:
    """Reads keys from ``fd`` (default: stdin) without blocking; puts a terminal in cbreak mode until
    :meth:`close`."""

    name = "keyboard"

    def __init__(self, low: np.ndarray, high: np.ndarray, step: float = 0.5, fd: int | None = None):
        self.low = np.asarray(low, np.float32)
        self.high = np.asarray(high, np.float32)
        if not 0 < step <= 1:
            raise ValueError(f"step must be a fraction of the action bound in (0, 1], got {step}")
        self.step = step
        self.fd = sys.stdin.fileno() if fd is None else fd
        self.gripper = float(self.high[-1])
        self._saved = None
        if os.isatty(self.fd):
            self._saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)

    def _keys(self) -> str:
        chunks = []
        while select.select([self.fd], [], [], 0)[0]:
            data = os.read(self.fd, 1024)
            if not data:
                break
            chunks.append(data.decode(errors="ignore"))
        return "".join(chunks)

    def poll(self, stamp_ns: int = 0) -> TeleopInput:
        """The nudges and events typed since the last poll."""
        motion = np.zeros(len(self.low), np.float32)
        moved = False
        events: list[OperatorEvent] = []
        for key in self._keys():
            if key in MOTION_KEYS:
                index, sign = MOTION_KEYS[key]
                if index < len(motion) - 1:  # the last dimension is the gripper
                    motion[index] += sign * self.step * (self.high[index] if sign > 0 else -self.low[index])
                    moved = True
            elif key == GRIPPER_KEY:
                self.gripper = float(self.low[-1] if self.gripper == self.high[-1] else self.high[-1])
                moved = True
            elif key in EVENT_KEYS:
                events.append(EVENT_KEYS[key])
        if not moved:
            return TeleopInput(None, events)
        motion[-1] = self.gripper
        return TeleopInput(np.clip(motion, self.low, self.high), events)

    def close(self) -> None:
        """Give the terminal its settings back."""
        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None
