"""`robot-parl finetune`: one command for a session. Starts the learner, the actor and (for ``sim``) a
simulated robot side as separate processes with one config, restarts a learner that dies (it resumes
from its checkpoint while the actor keeps acting), shows a live console line from the processes'
status messages, and stops everything in order when the actor is done: actor, learner (which writes a
final checkpoint), robot side. With ``attach`` it starts nothing and only watches a running session.

A fleet (``link.fleet``) gets one actor per robot (and a simulated robot side each, with ``sim``) and one learner;
the session goes on while any actor acts, and one page (fleet.html) links every actor's live view. With
``learner.ranks`` > 1 the learner runs as that many data-parallel ranks under torchrun (rl/data_parallel.py).
"""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from robot_parl.runtime.config import FinetuneConfig, FleetRobot
from robot_parl.transport.channel import Inbox, subscribe
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.messages import LearnerStatus, Status
from robot_parl.transport.session import free_loopback_endpoint, open_session

ENTRY = "import sys; from robot_parl import cli; sys.exit(cli.main(sys.argv[1:]))"
MAX_LEARNER_RESTARTS = 5
SIM_SEED_STRIDE = 100_000  # a fleet's simulated robot i numbers its layouts from seed + i * this


class Watch:
    """The newest status of each robot's actor and robot side and of the learner, for the console line."""

    def __init__(self, session, cfg: FinetuneConfig):
        self.robots = [r.name for r in cfg.link.robots()]
        learner = KeySpace(cfg.link.session, "learner")
        self.latest: dict[str, object] = {}
        watched = [("learner", learner.status, LearnerStatus)]
        for robot in self.robots:
            keys = KeySpace(cfg.link.session, robot)
            watched += [(f"actor/{robot}", keys.actor, Status), (f"robot/{robot}", keys.status, Status)]
        self._subs = [subscribe(session, key, Inbox(kind, on_message=lambda m, n=name: self.latest.__setitem__(n, m)))
                      for name, key, kind in watched]
        self._last_updates: tuple[float, int] | None = None

    def line(self) -> str:
        parts = []
        for robot in self.robots:
            actor, side = self.latest.get(f"actor/{robot}"), self.latest.get(f"robot/{robot}")
            if actor is not None:
                c, lat = actor.counters, actor.latency_ms
                prefix = f"{robot}: " if len(self.robots) > 1 else ""
                parts.append(f"{prefix}episode {c.get('episodes', 0)} (success {c.get('successes', 0)}, recent "
                             f"{lat.get('success_recent', 0.0):.0%}) | actor policy v{actor.versions.get('policy')} "
                             f"critic v{actor.versions.get('critic')} | sample {lat.get('sample', 0):.0f} ms "
                             f"optimize {lat.get('optimize', 0):.0f} ms obs {lat.get('obs_wait', 0):.0f} ms")
            if side is not None:
                parts.append(f"robot misses {side.counters.get('missed_deadline', 0)}")
        learner = self.latest.get("learner")
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
        # one robot: processes "robot" and "actor"; a fleet: "robot-<name>" and "actor-<name>" per robot
        self.robots = cfg.link.robots()
        self.fleet = bool(cfg.link.fleet)
        self._announced: dict[str, str] = {}  # actor -> its live view's URL

    def _name(self, role: str, robot: FleetRobot) -> str:
        return f"{role}-{robot.name}" if self.fleet else role

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.out / f"{name}.log", "a")  # noqa: SIM115 (the child writes to it)
        proc = subprocess.Popen([sys.executable, "-c", ENTRY, *args], stdout=log, stderr=subprocess.STDOUT,
                                env=None if env is None else {**os.environ, **env})
        self.procs[name] = proc
        return proc

    def _learners(self) -> list[str]:
        """The learner's processes: rank 0 ("learner"), then its other data-parallel ranks."""
        return ["learner"] + [f"learner-rank{r}" for r in range(1, self.cfg.learner.ranks)]

    def _start_learner(self) -> None:
        ranks = self.cfg.learner.ranks
        # Several ranks are started as torchrun starts them on one machine (RANK, LOCAL_RANK, WORLD_SIZE and a
        # rendezvous on a free loopback port), but as the supervisor's own children: rank 0 is stopped first,
        # checkpoints and stops the others, where torchrun would signal every rank at once.
        port = free_loopback_endpoint().rsplit(":", 1)[1]
        for rank, name in enumerate(self._learners()):
            env = {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(ranks), "LOCAL_WORLD_SIZE": str(ranks),
                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port} if ranks > 1 else None
            self._spawn(name, ["learner", "--config", str(self.out / "config.yaml"),
                               "--out", str(self.out / "learner"), "--threads", str(self.threads)], env)

    def start(self) -> None:
        cfg, link = self.cfg, self.cfg.link
        for i, robot in enumerate(self.robots):
            if cfg.sim:  # each simulated robot numbers its layouts from a seed of its own
                self._spawn(self._name("robot", robot), [
                    "robot", "--sim", cfg.sim, "--spec", cfg.robot_spec, "--listen", robot.endpoint, "--session",
                    link.session, "--robot", robot.name, *([] if cfg.sim_realtime else ["--sync"]), "--seed",
                    str(cfg.seed + SIM_SEED_STRIDE * i),
                    "--certificates", link.certificates, *(["--insecure"] if link.insecure else []),
                    *cfg.robot_overrides])
        self._start_learner()
        for robot in self.robots:
            name = self._name("actor", robot)
            self._spawn(name, ["actor", "--config", str(self.out / "config.yaml"), "--out", str(self.out / name),
                               "--name", name if self.fleet else "actor0", "--threads", str(self.threads),
                               f"link.robot={robot.name}", f"link.robot_endpoint={robot.endpoint}"])

    def run(self, stop: threading.Event) -> int:
        link = self.cfg.link
        session = open_session(link.transport("actor", [], [r.endpoint for r in self.robots] +
                                              [link.learner_endpoint]))
        watch = Watch(session, self.cfg)
        if not self.attach:
            self.start()
        code = 0
        views = {self._name("actor", r): self.out / self._name("actor", r) / "live_view.url" for r in self.robots}
        try:
            while not stop.wait(self.print_every_s):
                print(watch.line(), flush=True)
                if self.attach:
                    continue
                self._live_views(views)
                actors = [self.procs[self._name("actor", r)] for r in self.robots]
                if all(a.poll() is not None for a in actors):  # a fleet goes on while any of its actors acts
                    code = next((a.returncode for a in actors if a.returncode), 0)
                    break
                dead = next((self.procs[n] for n in self._learners() if self.procs[n].poll() is not None), None)
                if dead is not None:
                    if self.learner_restarts >= MAX_LEARNER_RESTARTS:
                        print(f"the learner exited ({dead.returncode}) {self.learner_restarts} times; stopping",
                              flush=True)
                        code = 1
                        break
                    self.learner_restarts += 1
                    print(f"the learner exited ({dead.returncode}); restarting it from its checkpoint", flush=True)
                    self._stop(self._learners())  # a rank alone cannot go on: all of them start over
                    self._start_learner()
        finally:
            self.stop()
            watch.close()
            session.close()
        self._summary(code)
        return code

    def _live_views(self, views: dict[str, Path]) -> None:
        """Say each actor's live view once it is up; for a fleet, also write one page linking them all."""
        new = [name for name, path in views.items() if path.exists() and name not in self._announced]
        for name in new:
            url = views[name].read_text().strip()
            self._announced[name] = url
            print(f"live view{' of ' + name if self.fleet else ''}: {url}", flush=True)
        if new and self.fleet:
            rows = "".join(f'<li><a href="{html.escape(url)}">{html.escape(name)}</a></li>'
                           for name, url in sorted(self._announced.items()))
            page = self.out / "fleet.html"
            page.write_text(f"<!doctype html><title>robot-parl {html.escape(self.cfg.link.session)}</title>"
                            f"<h1>session {html.escape(self.cfg.link.session)}: {len(self.robots)} robots</h1>"
                            f"<ul>{rows}</ul>\n")
            if len(self._announced) == 1:
                print(f"fleet view: {page.resolve().as_uri()}", flush=True)

    def stop(self) -> None:
        """Actors first (they stop acting), then the learner (final checkpoint; rank 0 stops its other ranks), then
        the robot sides."""
        self._stop([self._name("actor", r) for r in self.robots] + self._learners() +
                   [self._name("robot", r) for r in self.robots])

    def _stop(self, names: list[str]) -> None:
        for name in names:
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
