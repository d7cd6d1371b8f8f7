"""Typed publish/subscribe over a zenoh session: encode on put, decode and count on receive."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from robot_parl.transport.messages import MessageError, decode, encode


class Inbox:
    """Receives payloads of one message type; malformed ones are counted and dropped, never raised.

    Messages queue up to ``maxlen`` (oldest dropped first, counted in ``overflow``); messages for which
    ``keep`` is true (an e-stop) are never dropped for others: a full queue drops its oldest other message.
    ``on_message``, when given, is called in the receiving thread instead of queueing.
    """

    def __init__(self, expected: type, maxlen: int = 64, on_message: Callable[[Any], None] | None = None,
                 keep: Callable[[Any], bool] | None = None):
        self.expected = expected
        self.on_message = on_message
        self.keep = keep
        self.received = 0
        self.refused = 0
        self.overflow = 0
        self.last_error = ""
        self._queue: deque = deque(maxlen=maxlen)
        self._cond = threading.Condition()

    def feed(self, payload: bytes | memoryview) -> None:
        """Decode one payload (called from the transport's thread)."""
        try:
            msg = decode(payload, self.expected)
        except MessageError as err:
            with self._cond:
                self.refused += 1
                self.last_error = str(err)
            return
        if self.on_message is not None:
            with self._cond:
                self.received += 1
            self.on_message(msg)
            return
        with self._cond:
            self.received += 1
            if len(self._queue) == self._queue.maxlen:
                self.overflow += 1
                if self.keep is not None:
                    droppable = next((m for m in self._queue if not self.keep(m)), None)
                    if droppable is not None:
                        self._queue.remove(droppable)
            self._queue.append(msg)
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> Any | None:
        """The oldest queued message, waiting up to ``timeout`` seconds; None if none came."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._queue, timeout):
                return None
            return self._queue.popleft()

    def pending(self) -> int:
        """How many messages are queued."""
        with self._cond:
            return len(self._queue)

    def drain(self) -> list[Any]:
        """Every queued message, oldest first, without waiting."""
        with self._cond:
            items = list(self._queue)
            self._queue.clear()
            return items


def subscribe(session, key: str, inbox: Inbox):
    """Feed ``inbox`` from ``key``; keep the returned subscriber alive (undeclare it to stop)."""
    return session.declare_subscriber(key, lambda sample: inbox.feed(sample.payload.to_bytes()))


class Publisher:
    """Puts messages on one key.

    ``block=False`` (observations, actions, status) drops a message when the link is congested, so a
    slow receiver never delays the control loop; ``block=True`` (steps, weight chunks) waits instead,
    so nothing is lost.
    """

    def __init__(self, session, key: str, block: bool = False):
        import zenoh

        self.key = key
        congestion = zenoh.CongestionControl.BLOCK if block else zenoh.CongestionControl.DROP
        self._pub = session.declare_publisher(key, congestion_control=congestion)

    def matched(self, timeout_s: float) -> bool:
        """Wait until a subscriber on this key is known to zenoh (a message put now reaches it); False after
        ``timeout_s`` without one."""
        deadline = time.monotonic() + timeout_s
        while not self._pub.matching_status.matching:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def put(self, msg: Any) -> None:
        self._pub.put(encode(msg))

    def put_bytes(self, payload: bytes) -> None:
        """Put an already encoded payload (chunks of a large transfer)."""
        self._pub.put(payload)

    def close(self) -> None:
        self._pub.undeclare()
