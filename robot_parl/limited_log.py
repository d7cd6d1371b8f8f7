"""A log that speaks at most once per interval: bad input arriving in a flood (garbage on the wire, a broken
actor resending) is counted and summarized instead of filling the log or slowing the loop that reads it."""

from __future__ import annotations

import time
from collections.abc import Callable


class LimitedLog:
    """``log(line)`` at most every ``every_s`` seconds; lines in between are counted and the next one says how
    many were held back."""

    def __init__(self, log: Callable[[str], None], every_s: float = 5.0):
        self._log = log
        self.every_s = every_s
        self._last = -float("inf")
        self._held = 0

    def __call__(self, line: str) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s:
            self._held += 1
            return
        held, self._held, self._last = self._held, 0, now
        self._log(line + (f" (and {held} more since the last report)" if held else ""))
