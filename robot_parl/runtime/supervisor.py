"""`robot-parl finetune`: one command for a session. Starts the learner, the actor and (for ``sim``) a
simulated robot side as separate processes with one config, restarts a learner that dies (it resumes
from its checkpoint while the actor keeps acting), shows a live console line from the processes'
status messages, and stops everything in order when the actor is done: actor, learner (which writes a
final checkpoint), robot side. With ``attach`` it starts nothing and only watches a running session.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from robot_parl.runtime.config import FinetuneConfig
from robot_parl.transport.channel import Inbox, subscribe
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.messages import LearnerStatus, Status
from robot_parl.transport.session import open_session

ENTRY = "import sys; from robot_parl import cli; sys.exit(cli.main(sys.argv[1:]))"
MAX_LEARNER_RESTARTS = 5


class Watch:
    """The newest status of the actor, the learner and the robot side, for the console line."""

    def __init__(self, session, cfg: FinetuneConfig):
        robot, learner = KeySpace(cfg.link.session, cfg.link.robot), KeySpace(cfg.link.session, "learner")
        self.latest: dict[str, object] = {}
        self._subs = [subscribe(session, key, Inbox(kind, on_message=lambda m, n=name: self.latest.__setitem__(n, m)))
                      for name, key, kind in (("actor", robot.actor, Status), ("robot", robot.status, Status),
                                              ("learner", learner.status, LearnerStatus))]
        self._last_updates: tuple[float, int] | None = None

    def line(self) -> str:
        actor, learner, robot = (self.latest.get(k) for k in ("actor", "learner", "robot"))
        parts = []
        if actor is not None:
            c, lat = actor.counters, actor.latency_ms
            parts.append(f"episode {c.get('episodes', 0)} (success {c.get('successes', 0)}, recent "
                         f"{lat.get('success_recent', 0.0):.0%}) | actor policy v{actor.versions.get('policy')} "
                         f"critic v{actor.versions.get('critic')} | sample {lat.get('sample', 0):.0f} ms "
                         f"optimize {lat.get('optimize', 0):.0f} ms obs {lat.get('obs_wait', 0):.0f} ms")
        if learner is not None:
            updates = learner.counters.get("critic_updates", 0)
            now = time.monotonic()
            rate = 0.0
            if self._last_updates is not None and now > self._last_updates[0]:
                rate = (updates - self._last_updates[1]) / (now - self._last_updates[0])
            self._last_updates = (now, updates)
            parts.append(f"learner {learner.instance}: {updates} updates ({rate:.1f}/s), critic UTD "
                         f"{learner.rates.get('critic_utd', 0.0):.2f}, {learner.counters.get('episodes', 0)} episodes "
                         "stored")
        if robot is not None:
            parts.append(f"robot misses {robot.counters.get('missed_deadline', 0)}")
        return " | ".join(parts) or "waiting for the session's processes"

    def close(self) -> None:
        for sub in self._subs:
            sub.undeclare()


class Supervisor:
    """Runs or watches one session; :meth:`run` returns the exit code."""

    def __init__(self, cfg: FinetuneConfig, out: str | Path, threads: int = 1, attach: bool = False,
                 print_every_s: float = 2.0):
        self.cfg = cfg
        self.out = Path(out)
        self.threads = threads
        self.attach = attach
        self.print_every_s = print_every_s
        self.procs: dict[str, subprocess.Popen] = {}
        self.learner_restarts = 0

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.out / f"{name}.log", "a")  # noqa: SIM115 (the child writes to it)
        proc = subprocess.Popen([sys.executable, "-c", ENTRY, *args], stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def _start_learner(self) -> None:
        self._spawn("learner", ["learner", "--config", str(self.out / "config.yaml"),
                                "--out", str(self.out / "learner"), "--threads", str(self.threads)])

    def start(self) -> None:
        cfg, link = self.cfg, self.cfg.link
        if cfg.sim:
            self._spawn("robot", ["robot", "--sim", cfg.sim, "--spec", cfg.robot_spec, "--listen", link.robot_endpoint,
                                  "--session", link.session, "--robot", link.robot, "--sync", "--seed", str(cfg.seed),
                                  "--certificates", link.certificates, *(["--insecure"] if link.insecure else []),
                                  *cfg.robot_overrides])
        self._start_learner()
        self._spawn("actor", ["actor", "--config", str(self.out / "config.yaml"), "--out", str(self.out / "actor"),
                              "--threads", str(self.threads)])

    def run(self, stop: threading.Event) -> int:
        link = self.cfg.link
        session = open_session(link.transport("actor", [], [link.robot_endpoint, link.learner_endpoint]))
        watch = Watch(session, self.cfg)
        if not self.attach:
            self.start()
        code, live_view = 0, self.out / "actor" / "live_view.url"
        try:
            while not stop.wait(self.print_every_s):
                print(watch.line(), flush=True)
                if self.attach:
                    continue
                if live_view is not None and live_view.exists():
                    print(f"live view: {live_view.read_text().strip()}", flush=True)
                    live_view = None
                actor = self.procs["actor"]
                if actor.poll() is not None:
                    code = actor.returncode
                    break
                learner = self.procs["learner"]
                if learner.poll() is not None:
                    if self.learner_restarts >= MAX_LEARNER_RESTARTS:
                        print(f"the learner exited ({learner.returncode}) {self.learner_restarts} times; stopping",
                              flush=True)
                        code = 1
                        break
                    self.learner_restarts += 1
                    print(f"the learner exited ({learner.returncode}); restarting it from its checkpoint", flush=True)
                    self._start_learner()
        finally:
            self.stop()
            watch.close()
            session.close()
        self._summary(code)
        return code

    def stop(self) -> None:
        """Actor first (it stops acting), then the learner (final checkpoint), then the robot side."""
        for name in ("actor", "learner", "robot"):
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def _summary(self, code: int) -> None:
        summary = {"exit_code": code, "learner_restarts": self.learner_restarts}
        for name in self.procs:
            lines = (self.out / f"{name}.log").read_text().strip().splitlines()
            try:
                summary[name] = json.loads(lines[-1]) if lines else None
            except json.JSONDecodeError:
                summary[name] = {"last_line": lines[-1]}
        (self.out / "summary.json").write_text(json.dumps(summary, indent=1))
        print(json.dumps(summary), flush=True)
