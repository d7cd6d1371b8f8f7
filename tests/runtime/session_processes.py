"""The session's commands as real processes, for the tests that run, watch and kill them."""

import signal
import subprocess
import sys
import time
from pathlib import Path

from robot_parl.runtime.supervisor import ENTRY
from robot_parl.transport.channel import Inbox, subscribe
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.messages import LearnerStatus
from robot_parl.transport.session import TransportConfig, open_session


class Proc:
    """One robot-parl command, its output in ``out/name.log``; ``launcher`` runs the command module in its stead
    (torchrun)."""

    def __init__(self, name: str, args: list[str], out: Path, launcher: list[str] | None = None):
        self.log = out / f"{name}.log"
        command = [*launcher, "-m", "robot_parl.cli"] if launcher else [sys.executable, "-c", ENTRY]
        self.proc = subprocess.Popen([*command, *args], stdout=open(self.log, "w"), stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.log.read_text()

    def wait_for(self, condition, timeout: float = 120.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not condition(self.text()):
            assert self.proc.poll() is None or condition(self.text()), f"exited: {self.text()[-3000:]}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.text()[-3000:]}"
            time.sleep(0.1)

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=60)


class LearnerHeartbeat:
    """A session's learner's heartbeats, heard by connecting to its endpoint."""

    def __init__(self, endpoint: str, session: str):
        self.session = open_session(TransportConfig(connect=[endpoint]))
        self.latest = None
        self._sub = subscribe(self.session, KeySpace(session, "learner").status,
                              Inbox(LearnerStatus, on_message=lambda m: setattr(self, "latest", m)))

    def counter(self, name: str) -> int:
        """The newest heartbeat's counter ``name`` (0 if it has none; -1 before any heartbeat)."""
        return -1 if self.latest is None else self.latest.counters.get(name, 0)

    def close(self) -> None:
        self._sub.undeclare()
        self.session.close()
