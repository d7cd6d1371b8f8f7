"""Teleop messages a robot side forwards (ROS 2 Twist/Joy topics, a simulated robot's scripted expert).

Buttons named after operator events (``start``, ``success``, ``failure``, ``discard``, ``quit``) fire
that event when they go down. A command older than ``max_age_s`` counts as none (the device went
quiet: hold rather than repeat its last motion). A device computed from the observation being answered (the scripted
expert) is stamped with that observation's stamp: ``wait_s`` > 0 waits for the matching message.
"""

from __future__ import annotations

import time

from robot_parl.teleop.device import OPERATOR_EVENTS, OperatorEvent, TeleopInput
from robot_parl.transport.channel import Inbox, subscribe
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.messages import Teleop


class RobotForwarded:
    """Follows the newest Teleop message on the robot's ``teleop`` key."""

    def __init__(self, session, keys: KeySpace, wait_s: float = 0.0, max_age_s: float = 0.5):
        self.name = "robot"
        self.wait_s = wait_s
        self.max_age_s = max_age_s
        self._received = 0.0
        self.inbox = Inbox(Teleop, maxlen=64)
        self.latest: Teleop | None = None
        self._pressed: set[str] = set()
        self._sub = subscribe(session, keys.teleop, self.inbox)

    def poll(self, stamp_ns: int = 0) -> TeleopInput:
        """The newest command (None when disengaged or none came) and the buttons pressed since last poll."""
        events: list[OperatorEvent] = []
        messages = self.inbox.drain()
        deadline = time.monotonic() + self.wait_s
        while self.wait_s > 0 and not any(m.stamp_ns >= stamp_ns for m in messages):
            msg = self.inbox.get(timeout=max(deadline - time.monotonic(), 0.0))
            if msg is None:
                break
            messages.append(msg)
        for msg in messages:
            down = {b for b, v in msg.buttons.items() if v}
            events += [e for e in OPERATOR_EVENTS if e in down - self._pressed]
            self._pressed = down
            self.latest = msg
            self._received = time.monotonic()
        fresh = time.monotonic() - self._received <= self.max_age_s
        if self.latest is None or not self.latest.engaged or not fresh:
            return TeleopInput(None, events)
        return TeleopInput(self.latest.values.copy(), events)

    def close(self) -> None:
        self._sub.undeclare()
