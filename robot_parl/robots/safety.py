"""The one command filter, watchdog and e-stop latch every robot side uses (no torch).

Every action passes :meth:`Safety.check` before it reaches hardware or a simulator:
NaN/inf -> rejected (hold); outside the bounds -> clipped; more change than ``max_change`` from the
previous command (from rest, zero motion, at an episode's start and after any hold) -> limited; a
translation that would leave the workspace box -> shortened to stay inside; with a workspace box but no
end-effector pose (a pose topic or TF chain not yet heard or gone stale) -> held, since the box cannot be
checked; while a camera's image is stale (stalled, failed or not seen yet) -> held, since the action
answers an image of the past. The watchdog asks for a hold when no valid action answered before the
tick's deadline. The e-stop latch holds until an explicit clear. Every
intervention is counted; the counts go into Status messages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from robot_parl.robots.spec import RobotSpec


@dataclass
class Verdict:
    """What to do this tick: apply ``values`` or hold (``values`` is None), and why."""

    values: np.ndarray | None
    reasons: tuple[str, ...] = ()

    @property
    def hold(self) -> bool:
        return self.values is None


class Safety:
    """Command filter + e-stop latch + watchdog bookkeeping for one robot."""

    def __init__(self, spec: RobotSpec):
        spec.validate()
        self.spec = spec
        self.low = np.asarray(spec.action.low, dtype=np.float64)
        self.high = np.asarray(spec.action.high, dtype=np.float64)
        self.max_change = np.asarray(spec.action.max_change, dtype=np.float64)
        self.counters: Counter[str] = Counter()
        self.estop_reason = ""
        # At rest the arm's deltas are zero; a gripper's command is a position, so its first one is free (NaN).
        self._rest = np.array([np.nan if "gripper" in name else 0.0 for name in spec.action.names])
        self._previous = self._rest.copy()

    # e-stop -------------------------------------------------------------------------------------

    @property
    def estopped(self) -> bool:
        return bool(self.estop_reason)

    def estop(self, reason: str = "operator") -> None:
        """Latch the e-stop: every check holds until :meth:`clear_estop`."""
        if not self.estopped:
            self.counters["estops"] += 1
        self.estop_reason = reason or "operator"

    def clear_estop(self) -> None:
        """The only way out of an e-stop. The rate limiter restarts from rest."""
        self.estop_reason = ""
        self._previous = self._rest.copy()

    # commands -----------------------------------------------------------------------------------

    def hold(self, reason: str) -> Verdict:
        """Record a hold (watchdog miss, stale action, no action) without a command to check. The arm stops,
        so the next command is rate-limited from rest."""
        self._previous = self._rest.copy()
        self.counters[reason] += 1
        self.counters["holds"] += 1
        return Verdict(None, (reason,))

    def reset(self) -> None:
        """Forget the previous command: a new episode starts from rest."""
        self._previous = self._rest.copy()

    def check(self, action: np.ndarray, ee_position: np.ndarray | None = None,
              stale_cameras: Sequence[str] = ()) -> Verdict:
        """Filter one action in physical units; ``ee_position`` (xyz) is needed when the spec has a workspace.

        ``stale_cameras`` names the cameras whose images the action was computed from that are not current;
        any makes it a hold (``camera_stale_holds``).
        """
        if self.estopped:
            return self.hold("estop_holds")
        a = np.asarray(action, dtype=np.float64)
        if a.shape != self.low.shape:
            return self.hold("malformed_rejected")
        if not np.isfinite(a).all():
            return self.hold("nonfinite_rejected")
        if self.spec.workspace.enabled and ee_position is None:
            return self.hold("pose_unknown_holds")
        if stale_cameras:
            return self.hold("camera_stale_holds")
        reasons = []
        clipped = np.clip(a, self.low, self.high)
        if not np.array_equal(clipped, a):
            reasons.append("clipped")
        prev = self._previous
        limited = np.where(np.isnan(prev), clipped, np.clip(clipped, prev - self.max_change, prev + self.max_change))
        if not np.array_equal(limited, clipped):
            reasons.append("rate_limited")
        clipped = limited
        ws = self.spec.workspace
        if ws.enabled:
            target = np.asarray(ee_position[:3], dtype=np.float64) + clipped[:3]
            inside = np.clip(target, ws.low, ws.high)
            if not np.array_equal(inside, target):
                reasons.append("workspace_limited")
                # never push further out; an arm already outside may only move back in
                clipped[:3] = inside - np.asarray(ee_position[:3], dtype=np.float64)
                clipped[:3] = np.clip(clipped[:3], self.low[:3], self.high[:3])
        for r in reasons:
            self.counters[r] += 1
        self.counters["applied"] += 1
        self._previous = clipped
        return Verdict(clipped.astype(np.float32), tuple(reasons))


class Watchdog:
    """A deadline: armed at the start of a tick, expired when no valid action came in time."""

    def __init__(self, timeout_s: float):
        if not timeout_s > 0:
            raise ValueError(f"watchdog timeout must be > 0 s, got {timeout_s}")
        self.timeout_s = timeout_s
        self.deadline = float("inf")

    def arm(self, now: float) -> None:
        self.deadline = now + self.timeout_s

    def remaining(self, now: float) -> float:
        """Seconds left before the robot must hold (<= 0: expired)."""
        return self.deadline - now
