"""The actor (`robot-parl actor`): acts on a robot side at its control rate and never waits for the learner.

Each step: the newest weights are swapped in if any arrived, the policy proposes N candidates, the
critic scores and refines them (rl.action_opt), the chosen action goes to the robot side, and the step
(s_t, a_t, r_t, the N candidates, policy and critic versions) goes to the learner and to the local
journal. Between episodes (never during one) the actor resends episodes the learner has not
acknowledged, waits a bounded time for the learner to reach its minimum update-to-data ratio, and,
when configured to, holds while the learner is unreachable. Per-step latencies are measured:
obs_wait (the robot's clock), sample, encode, optimize (scoring and refinement), send, journal (and
journal_commit at an episode's end), swap.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from robot_parl.data.episode_store import KeySpec
from robot_parl.models.base import copy_state
from robot_parl.models.encoders import unflatten_obs
from robot_parl.rl.action_opt import optimize_actions
from robot_parl.robots.remote import RemoteRobotEnv
from robot_parl.runtime.config import FinetuneConfig, build_agent, to_physical
from robot_parl.runtime.journal import Journal
from robot_parl.runtime.weights import WeightInbox
from robot_parl.transport.channel import Inbox, Publisher, subscribe
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.messages import LearnerStatus, Status, Step


class LearnerWatch:
    """The learner's latest heartbeat and when it came."""

    def __init__(self, session, keys: KeySpace):
        self.latest: LearnerStatus | None = None
        self.received = 0.0
        self._sub = subscribe(session, keys.status, Inbox(LearnerStatus, on_message=self._on))

    def _on(self, msg: LearnerStatus) -> None:
        self.latest, self.received = msg, time.monotonic()

    def alive(self, timeout_s: float) -> bool:
        return self.latest is not None and time.monotonic() - self.received < timeout_s

    def close(self) -> None:
        self._sub.undeclare()


class Actor:
    """One robot's actor; :meth:`run` plays episodes until done or stopped."""

    def __init__(self, cfg: FinetuneConfig, out_dir: str | Path, session, name: str = "actor0",
                 log: Callable[[str], None] = print):
        self.cfg = cfg
        self.name = name
        self.log = log
        self.spec = cfg.spec()
        self.agent = build_agent(cfg, self.spec)
        link = cfg.link
        self.keys = KeySpace(link.session, link.robot)
        learner_keys = KeySpace(link.session, "learner")
        self.env = RemoteRobotEnv(session, self.keys, self.spec, timeout_s=30.0, horizon=cfg.actor.horizon)
        self.weights = WeightInbox(session, learner_keys)
        self.learner = LearnerWatch(session, learner_keys)
        self._steps = Publisher(session, self.keys.step, block=True)
        self._status = Publisher(session, self.keys.actor)
        obs_keys = {k: KeySpec(*v) for k, v in self.spec.observation_keys().items()}
        self.journal = Journal(Path(out_dir) / "journal", obs_keys, self.spec.action.dim,
                               self.agent.cfg.num_samples, holder=f"robot-parl actor {name}")
        self.versions = {"policy": -1, "critic": -1}
        self.instances = {"policy": "", "critic": ""}
        self.counters: Counter[str] = Counter()
        self.latency_ms: dict[str, float] = {}
        self.successes: list[bool] = []
        self.episode_id = ""
        self.low, self.high = self.agent.low, self.agent.high

    # weights ------------------------------------------------------------------------------------

    def apply_weights(self) -> bool:
        """Swap in weights that arrived since the last step; returns whether anything changed."""
        changed = False
        for w in self.weights.take():
            if w.instance == self.instances[w.part] and w.version <= self.versions[w.part]:
                continue  # an older version of the same learner, delivered late
            started = time.perf_counter()
            try:
                if w.part == "policy":
                    self.agent.policy.load_sync_state(w.state)
                else:
                    copy_state(self.agent.critic.state_dict(), w.state, "the critic")
            except (ValueError, RuntimeError, KeyError) as err:
                self.weights.refuse(f"{w.part} v{w.version} from {w.instance}: {err}")
                continue
            self.versions[w.part], self.instances[w.part] = w.version, w.instance
            self.latency_ms["swap"] = (time.perf_counter() - started) * 1e3
            self.counters[f"{w.part}_swaps"] += 1
            changed = True
        return changed

    def wait_for_weights(self, stop: threading.Event) -> None:
        """Block until both the policy and the critic came from a learner (the critic starts random here)."""
        deadline = time.monotonic() + self.cfg.actor.first_weights_timeout_s
        while min(self.versions.values()) < 0:
            if stop.is_set():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"no weights from a learner on {self.cfg.link.learner_endpoint} within "
                                   f"{self.cfg.actor.first_weights_timeout_s} s (session {self.cfg.link.session!r})")
            self.publish_status()  # version -1 asks the learner for its current weights
            self.apply_weights()
            stop.wait(0.2)

    # acting -------------------------------------------------------------------------------------

    @torch.no_grad()
    def decide(self, obs: dict) -> tuple[np.ndarray, np.ndarray]:
        """(action [A], candidates [N, A]) in policy space for one observation."""
        tobs = unflatten_obs({f"images/{k}": torch.as_tensor(v)[None] for k, v in obs.get("images", {}).items()}
                             | {"proprio": torch.as_tensor(obs["proprio"])[None]})
        t0 = time.perf_counter()
        candidates = self.agent.sample_candidates(tobs)
        t1 = time.perf_counter()
        z = self.agent.critic.encode(tobs)
        t2 = time.perf_counter()
        opt = optimize_actions(self.agent.critic, z, candidates, self.agent.cfg, self.low, self.high)
        t3 = time.perf_counter()
        self.latency_ms.update(sample=(t1 - t0) * 1e3, encode=(t2 - t1) * 1e3, optimize=(t3 - t2) * 1e3)
        return opt.actions[0].numpy(), candidates[0].numpy()

    def _send(self, step: Step) -> None:
        started = time.perf_counter()
        self._steps.put(step)
        sent = time.perf_counter()
        self.journal.record(step)  # the final step commits the episode to disk: its own figure
        self.latency_ms["send"] = (sent - started) * 1e3
        self.latency_ms["journal_commit" if step.final else "journal"] = (time.perf_counter() - sent) * 1e3
        self.counters["steps_sent"] += 1

    def _step_message(self, index: int, stamp_ns: int, obs: dict, action: np.ndarray, candidates: np.ndarray,
                      reward: float, final: bool = False, success: bool = False) -> Step:
        return Step(self.name, self.episode_id, index, stamp_ns, dict(obs.get("images", {})),
                    np.asarray(obs["proprio"], np.float32), action.astype(np.float32), candidates.astype(np.float32),
                    reward, "rollout", self.versions["policy"], self.versions["critic"], obs["instruction"],
                    final, success)

    def episode(self) -> bool:
        """One episode on the robot; returns its success."""
        obs, info = self.env.reset()
        self.episode_id = info["episode_id"]
        terminated = False
        for t in range(self.cfg.actor.horizon):
            self.apply_weights()
            action, candidates = self.decide(obs)
            stamp, started = self.env.last.stamp_ns, time.perf_counter()
            next_obs, _, terminated, truncated, _ = self.env.step(to_physical(self.spec, action))
            self.latency_ms["obs_wait"] = (time.perf_counter() - started) * 1e3
            self._send(self._step_message(t, stamp, obs, action, candidates, 0.0 if terminated else -1.0))
            obs = next_obs
            if terminated or truncated:
                break
        self.env.hold()
        final_candidates = self.decide(obs)[1]  # TD targets at s_T need candidates too
        self._send(self._step_message(t + 1, self.env.last.stamp_ns, obs, np.zeros(self.spec.action.dim, np.float32),
                                      final_candidates, 0.0, final=True, success=terminated))
        self.successes.append(bool(terminated))
        self.counters["episodes"] += 1
        return bool(terminated)

    # between episodes ---------------------------------------------------------------------------

    def between_episodes(self, stop: threading.Event) -> None:
        """Acknowledgements, resends, the minimum update-to-data ratio, holding while the learner is lost."""
        cfg = self.cfg.actor
        deadline = time.monotonic() + cfg.max_pause_s
        while not stop.is_set():
            alive = self.learner.alive(cfg.learner_timeout_s)
            if alive:
                self.journal.acknowledge(self.learner.latest.committed)
                for info in self.journal.unacknowledged(cfg.resend_after_s):
                    for step in self.journal.steps(info, self.name):
                        self._steps.put(step)
                    self.counters["episodes_resent"] += 1
            self.apply_weights()
            self.publish_status()
            if not alive and cfg.on_learner_lost == "hold":
                self.counters["held_for_learner"] += 1
                stop.wait(0.2)
                continue
            utd = self.learner.latest.rates.get("critic_utd", 0.0) if alive else float("inf")
            if utd >= cfg.min_critic_utd or time.monotonic() > deadline:
                return
            stop.wait(0.05)

    def publish_status(self) -> None:
        recent = self.successes[-20:]
        counters = dict(self.counters) | {"weights_refused": self.weights.refused,
                                          "successes": sum(self.successes)}
        self._status.put(Status(time.monotonic_ns(), self.counters["steps_sent"], True, False, self.episode_id,
                                {k: int(v) for k, v in counters.items()},
                                dict(self.latency_ms) | {"success_recent": float(np.mean(recent)) if recent else 0.0},
                                dict(self.versions)))

    def run(self, stop: threading.Event | None = None) -> dict:
        """Episodes until ``actor.episodes`` are done (0: until stopped); returns a summary."""
        stop = stop or threading.Event()
        self.wait_for_weights(stop)
        target = self.cfg.actor.episodes
        while not stop.is_set() and (target == 0 or self.counters["episodes"] < target):
            self.episode()
            self.publish_status()
            self.log(f"episode {self.counters['episodes']}: {'success' if self.successes[-1] else 'failure'}, "
                     f"policy v{self.versions['policy']} critic v{self.versions['critic']}, "
                     + ", ".join(f"{k} {v:.1f} ms" for k, v in self.latency_ms.items()))
            self.between_episodes(stop)
        end = time.monotonic() + self.cfg.actor.max_pause_s  # give the learner a chance to acknowledge the last
        while not stop.is_set() and time.monotonic() < end and self.journal.unacknowledged(0.0):
            self.between_episodes(stop)
            stop.wait(0.2)
        return {"episodes": self.counters["episodes"], "successes": sum(self.successes),
                "versions": dict(self.versions), "counters": dict(self.counters),
                "unacknowledged": len(self.journal.unacknowledged(0.0)), "latency_ms": dict(self.latency_ms)}

    def close(self) -> None:
        for part in (self.weights, self.learner, self.journal):
            part.close()
        self.env.close()
        self._steps.close()
        self._status.close()
