"""The actor (`robot-parl actor`): acts on a robot side at its control rate and never waits for the learner.

Each step: the newest weights are swapped in if any arrived, the policy proposes N candidates, the
critic scores and refines them (rl.action_opt), the chosen action goes to the robot side, and the step
(s_t, a_t, r_t, the N candidates, policy and critic versions) goes to the learner and to the local
journal. Between episodes (never during one) the actor resends episodes the learner has not
acknowledged, waits a bounded time for the learner to reach its minimum update-to-data ratio, and,
when configured to, holds while the learner is unreachable. An operator device (teleop/) may label an
episode's outcome (success, failure), take over (its motion replaces the policy's action; those steps
are recorded as interventions), pause (the robot holds until pause again), e-stop (latched on the
robot side; the actor stops) and quit. Steps go out one control period late, so that a label given
after a step still settles that step's reward. Per-step latencies are measured:
obs_wait (the robot's clock), sample, encode, optimize (scoring and refinement), send, journal (and
journal_commit at an episode's end), swap. A live web page (eval/live.py, ``actor.live_view``) shows
the frames, the candidates with their Q-values, the chosen action, outcomes, versions and latencies.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from robot_parl.data.episode_store import KeySpec, Outcome
from robot_parl.eval.live import LiveView, parse_address
from robot_parl.models.base import copy_state
from robot_parl.models.encoders import robot_obs
from robot_parl.models.success import SuccessClassifier, SuccessWatch
from robot_parl.rl.action_opt import mean_trust
from robot_parl.robots.remote import RemoteRobotEnv
from robot_parl.runtime.config import FinetuneConfig, build_agent
from robot_parl.runtime.journal import Journal
from robot_parl.runtime.weights import WeightInbox, Weights
from robot_parl.teleop.device import TeleopDevice
from robot_parl.transport.channel import Inbox, Publisher, subscribe
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.messages import LearnerStatus, Status, Step
from robot_parl.typed_config import ConfigError

# Weights are applied once the learner's heartbeat announces them (its instance, a version it published);
# weights never announced within this long are refused, and at most MAX_HELD wait at once.
ANNOUNCE_WAIT_S = 10.0
MAX_HELD = 4
STATUS_WHILE_PAUSED_S = 0.5  # an operator's pause reports the open episode this often
# the learner's counters the live view shows (its rates are shown too)
LEARNER_SHOWN = ("critic_updates", "distill_updates", "online_episodes", "online_env_steps", "steps_received")


class LearnerWatch:
    """The learner's latest heartbeat, when it came, and when each part's newest version was first announced."""

    def __init__(self, session, keys: KeySpace):
        self.latest: LearnerStatus | None = None
        self.received = 0.0
        self.announced: dict[str, tuple[str, int, float]] = {}  # part -> (instance, version, first heard)
        self._sub = subscribe(session, keys.status, Inbox(LearnerStatus, on_message=self._on))

    def _on(self, msg: LearnerStatus) -> None:
        self.latest, self.received = msg, time.monotonic()
        for part, version in msg.versions.items():
            if self.announced.get(part, ("", -1, 0.0))[:2] != (msg.instance, version):
                self.announced[part] = (msg.instance, version, self.received)

    def alive(self, timeout_s: float) -> bool:
        return self.latest is not None and time.monotonic() - self.received < timeout_s

    def close(self) -> None:
        self._sub.undeclare()


class Actor:
    """One robot's actor; :meth:`run` plays episodes until done or stopped."""

    def __init__(self, cfg: FinetuneConfig, out_dir: str | Path, session, name: str = "actor0",
                 log: Callable[[str], None] = print, operator: TeleopDevice | None = None):
        self.cfg = cfg
        self.name = name
        self.log = log
        self.spec = cfg.spec()
        self.agent, self.actions = build_agent(cfg, self.spec, "actor")
        self.classifier = self._load_classifier()  # refused here, before anything is written
        link = cfg.link
        self.keys = KeySpace(link.session, link.robot)
        learner_keys = KeySpace(link.session, "learner")
        self.env = RemoteRobotEnv(session, self.keys, self.spec, timeout_s=30.0, horizon=cfg.actor.horizon)
        # A robot that does not fit this session is refused before anything is written; a journal already here is
        # opened (and a damaged one refused) first, without waiting for the robot.
        if not (Path(out_dir) / "journal").exists():
            self.env.connect()
        self.weights = WeightInbox(session, learner_keys)
        self.learner = LearnerWatch(session, learner_keys)
        self._steps = Publisher(session, self.keys.step, block=True)
        self._status = Publisher(session, self.keys.actor)
        obs_keys = {k: KeySpec(*v) for k, v in self.spec.observation_keys().items()}
        self.journal = Journal(Path(out_dir) / "journal", obs_keys, self.spec.action.dim,
                               self.agent.cfg.num_samples, holder=f"robot-parl actor {name}")
        self.env.connect()
        self.versions = {"policy": -1, "critic": -1}
        self.instances = {"policy": "", "critic": ""}
        self._held: dict[tuple[str, str, int], tuple[Weights, float]] = {}  # (part, instance, version) -> since
        self.counters: Counter[str] = Counter()
        self.latency_ms: dict[str, float] = {}
        self.successes: list[bool] = []
        self.episode_id = ""
        self.critic_acts = False
        self.operator = operator
        self.quit = False
        self._waited = 0.0  # seconds the current pause between episodes has spent waiting for the learner
        # per step: std of the critic's score over the N candidates, and OptimizedActions.trust()
        self._spread: list[float] = []
        self._trust: list[dict[str, float]] = []
        self._q: tuple[np.ndarray, float] = (np.zeros(0), 0.0)  # the last decision: candidates' Q, chosen Q
        self.live = self._open_live_view(Path(out_dir))
        from torch.utils.tensorboard import SummaryWriter

        self.tensorboard = SummaryWriter(str(Path(out_dir) / "tensorboard"))

    def _load_classifier(self) -> SuccessClassifier | None:
        if self.cfg.actor.reward == "operator":
            return None
        try:
            classifier = SuccessClassifier.load(self.cfg.actor.classifier)
            classifier.check_fits(self.spec.observation_keys())
        except ValueError as err:
            raise ConfigError("actor.classifier", str(err)) from None
        return classifier.to(self.agent.device)  # beside the critic: each frame is scored where it is encoded

    def _open_live_view(self, out_dir: Path) -> LiveView | None:
        address = self.cfg.actor.live_view
        if address is None:
            return None
        title = f"robot-parl {self.cfg.link.session}/{self.cfg.link.robot} ({self.name})"
        try:
            live = LiveView(address, title)
        except OSError as err:
            host, _ = parse_address(address)
            self.log(f"{err}: using a free port instead")
            live = LiveView(f"{host}:0", title)
        self.log(f"live view: {live.url}")
        (out_dir / "live_view.url").write_text(live.url + "\n")
        return live

    # weights ------------------------------------------------------------------------------------

    def apply_weights(self) -> bool:
        """Swap in the newest weights the learner announced since the last step; returns whether anything changed.

        Weights wait until the heartbeat of the learner the actor hears names their instance and a published
        version at least theirs: a payload under the learner's name with a version it never published (2**62)
        is refused after ANNOUNCE_WAIT_S instead of being applied and blocking every later version.
        """
        now = time.monotonic()
        for w in self.weights.take():
            self._held[(w.part, w.instance, w.version)] = (w, now)
        while len(self._held) > MAX_HELD:  # the highest claimed version goes first: real ones are the learner's count
            w, _ = self._held.pop(max(self._held, key=lambda key: key[2]))
            self.weights.refuse(f"{w.part} v{w.version} from {w.instance}: more than {MAX_HELD} weights unannounced")
        heard = self.learner.latest
        newest: dict[str, Weights] = {}
        for key, (w, since) in list(self._held.items()):
            if heard is not None and w.instance == heard.instance and w.version <= heard.versions.get(w.part, -1):
                del self._held[key]
                if w.part not in newest or w.version > newest[w.part].version:
                    newest[w.part] = w
            elif now - since > ANNOUNCE_WAIT_S:
                del self._held[key]
                said = f"{heard.instance} published v{heard.versions.get(w.part, -1)}" if heard else "no heartbeat"
                self.weights.refuse(f"{w.part} v{w.version} from {w.instance}: never announced by the learner "
                                    f"({said})")
        return any([self._swap(w) for w in newest.values()])

    def _swap(self, w: Weights) -> bool:
        if w.instance == self.instances[w.part] and w.version <= self.versions[w.part]:
            return False  # an older version of the same learner, delivered late
        started = time.perf_counter()
        bad = sorted(name for name, t in w.state.items() if t.is_floating_point() and not bool(t.isfinite().all()))
        if bad:  # applied, they would make the next decision fail (and the robot hold)
            self.weights.refuse(f"{w.part} v{w.version} from {w.instance}: non-finite values in {bad[:3]} "
                                f"({len(bad)} tensors)")
            return False
        try:
            if w.part == "policy":
                self.agent.policy.load_sync_state(w.state)
            else:
                copy_state(self.agent.critic.state_dict(), w.state, "the critic")
        except (ValueError, RuntimeError, KeyError) as err:
            self.weights.refuse(f"{w.part} v{w.version} from {w.instance}: {err}")
            return False
        self.versions[w.part], self.instances[w.part] = w.version, w.instance
        self.latency_ms["swap"] = (time.perf_counter() - started) * 1e3
        instance, version, heard = self.learner.announced.get(w.part, ("", -1, 0.0))
        if (instance, version) == (w.instance, w.version):  # from the learner's announcement to acting with it
            self.latency_ms["weight_sync"] = (time.monotonic() - heard) * 1e3
        self.counters[f"{w.part}_swaps"] += 1
        return True

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

    def decide(self, obs: dict) -> tuple[np.ndarray, np.ndarray]:
        """(action [A], candidates [N, A]) in robot units for one observation."""
        decision = self.agent.act(robot_obs(obs), critic=self.critic_acts)
        self.latency_ms.update(decision.latency_ms)
        q = decision.optimized.candidate_q[0]
        self._spread.append(q.std().item())
        self._trust.append(decision.optimized.trust())
        self._q = (q.cpu().numpy(), decision.optimized.q[0].item())
        return self.actions.to_robot(decision.actions[0].numpy()), self.actions.to_robot(decision.candidates[0].numpy())

    def _send(self, step: Step) -> None:
        started = time.perf_counter()
        self._steps.put(step)
        sent = time.perf_counter()
        self.journal.record(step)  # the final step commits the episode to disk: its own figure
        self.latency_ms["send"] = (sent - started) * 1e3
        self.latency_ms["journal_commit" if step.final else "journal"] = (time.perf_counter() - sent) * 1e3
        self.counters["steps_sent"] += 1

    def _show_decision(self, obs: dict, t: int, action: np.ndarray, candidates: np.ndarray,
                       watch: SuccessWatch | None) -> None:
        if self.live is None:
            return
        success = None if watch is None else {"trace": watch.trace, "threshold": self.classifier.threshold}
        self.live.decision(obs.get("images", {}), candidates, self._q[0], action, self._q[1], t, self.episode_id,
                           self.spec.action.names, success)
        self._show_session()

    def _show_session(self) -> None:
        if self.live is None:
            return
        learner = None
        if self.learner.latest is not None:
            heard = self.learner.latest
            learner = {k: heard.counters[k] for k in LEARNER_SHOWN if k in heard.counters} | heard.rates
            learner["heard_s_ago"] = round(time.monotonic() - self.learner.received, 1)
        self.live.session(self.successes, self.versions, self.latency_ms, dict(self.counters), learner)

    def _step_message(self, index: int, stamp_ns: int, obs: dict, action: np.ndarray, candidates: np.ndarray,
                      reward: float, watch: SuccessWatch | None, source: str = "rollout", final: bool = False,
                      success: bool = False, outcome: Outcome | None = None) -> Step:
        outcome = outcome or Outcome()
        scored = watch is not None and index < len(watch.trace)  # a label can end an episode before its last frame
        return Step(actor=self.name, episode_id=self.episode_id, index=index, stamp_ns=stamp_ns,
                    images=dict(obs.get("images", {})), proprio=np.asarray(obs["proprio"], np.float32),
                    action=action.astype(np.float32), candidates=candidates.astype(np.float32), reward=reward,
                    source=source, policy_version=self.versions["policy"], critic_version=self.versions["critic"],
                    instruction=obs["instruction"], final=final, success=success, outcome_source=outcome.source,
                    classifier_version=outcome.classifier_version, classifier_success=outcome.classifier_success,
                    success_probability=watch.trace[index] if scored else -1.0, robot=self.cfg.link.robot)

    def _observe(self, obs: dict, instruction: str) -> dict:
        return {**obs, "instruction": instruction}

    def _operator(self) -> tuple[np.ndarray | None, str | None, dict | None]:
        """(takeover motion, outcome label or None, a fresh observation after a pause or None)."""
        if self.operator is None:
            return None, None, None
        polled = self.operator.poll(self.env.last.stamp_ns)
        resumed = None
        for event in polled.events:
            if event in ("success", "failure"):
                return None, event, None
            if event in ("quit", "estop"):
                self.quit = True
                if event == "estop":
                    self.env.estop()
                    self.counters["estops"] += 1
                return None, "failure", None
            if event == "pause":
                resumed = self._pause_for_operator()
                if self.quit:
                    return None, "failure", None
        return polled.values, None, resumed

    def _pause_for_operator(self) -> dict:
        self.env.hold()
        self.counters["pauses"] += 1
        heard = 0.0
        while True:
            if time.monotonic() - heard > STATUS_WHILE_PAUSED_S:  # the learner keeps the paused episode open
                self.publish_status()
                heard = time.monotonic()
            events = self.operator.poll(0).events
            if "quit" in events or "estop" in events:
                self.quit = True
                if "estop" in events:
                    self.env.estop()
                return {}
            if "pause" in events:
                return self.env.resume()
            time.sleep(0.05)

    def episode(self) -> bool:
        """One episode on the robot; returns its success."""
        obs, info = self.env.reset()
        self.episode_id = info["episode_id"]
        self.critic_acts = self.agent.critic_acts(self.episode_id)  # fixed for the episode (rl/trust.py)
        instruction = self.cfg.actor.instruction_for(self.counters["episodes"], obs.get("instruction", ""))
        if not instruction and self.cfg.policy.kind == "vla" and not self.cfg.policy.vla.instruction:
            self.env.hold()
            raise ConfigError("actor.instructions", "the robot side sends no instruction and the VLA card sets none; "
                                                    "give a task list (actor.instructions), the robot side's "
                                                    "--instruction, or policy.vla.instruction")
        obs = self._observe(obs, instruction)
        watch = None if self.classifier is None else SuccessWatch(self.classifier)
        label, pending, robot_success, labelled = None, None, False, False
        for t in range(self.cfg.actor.horizon):
            self.apply_weights()
            takeover, label, resumed = self._operator()
            if label is not None and not self.quit and self.cfg.actor.reward == "classifier":
                self.counters["labels_ignored"] += 1  # the classifier gives outcomes; quit and e-stop still end
                label = None
            if label is not None:
                break
            obs = self._observe(resumed, instruction) if resumed else obs
            if watch is not None and self._watch(watch, obs):
                break
            action, candidates = self.decide(obs)
            self._show_decision(obs, t, action, candidates, watch)
            source = "rollout"
            if takeover is not None:  # the operator's motion, already in robot units
                action, source = np.asarray(takeover, np.float32), "intervention"
                self.counters["intervention_steps"] += 1
            stamp, started = self.env.last.stamp_ns, time.perf_counter()
            next_obs, _, terminated, truncated, info = self.env.step(action)
            self.latency_ms["obs_wait"] = (time.perf_counter() - started) * 1e3
            robot_success, labelled = robot_success or terminated, bool(info["labelled"])
            ended = (terminated and watch is None) or truncated  # a watched episode ends when the classifier says
            if pending is not None:
                self._send(pending)
            pending = self._step_message(t, stamp, obs, action, candidates, -1.0, watch, source)  # settled at the end
            obs = self._observe(next_obs, instruction)
            if ended:
                break
        self.env.hold()
        if pending is None:  # labelled before the first step: nothing to record
            self.counters["empty_episodes"] += 1
            return False
        if watch is not None and label is None and not watch.decided:
            self._watch(watch, obs)  # the last frame counts too
        success, outcome = self._outcome(label or self._override(watch), watch, robot_success, labelled)
        pending.reward = 0.0 if success else -1.0
        self._send(pending)
        final_candidates = self.decide(obs)[1]  # TD targets at s_T need candidates too
        self._send(self._step_message(pending.index + 1, self.env.last.stamp_ns, obs,
                                      np.zeros(self.spec.action.dim, np.float32), final_candidates, 0.0, watch,
                                      final=True, success=success, outcome=outcome))
        self.successes.append(success)
        self.counters["episodes"] += 1
        self._log_episode(pending.index + 1)
        return success

    def _watch(self, watch: SuccessWatch, obs: dict) -> bool:
        started = time.perf_counter()
        decided = watch.see(robot_obs(obs))
        self.latency_ms["success"] = (time.perf_counter() - started) * 1e3
        return decided

    def _override(self, watch: SuccessWatch | None) -> str | None:
        """reward=both: an operator's label within override_s after the classifier ended the episode."""
        if watch is None or self.operator is None or self.cfg.actor.reward != "both":
            return None
        self.counters["override_windows"] += 1
        deadline = time.monotonic() + self.cfg.actor.override_s
        while time.monotonic() < deadline and not self.quit:
            for event in self.operator.poll(0).events:
                if event in ("success", "failure"):
                    return event
                if event in ("quit", "estop"):
                    self.quit = True
                    if event == "estop":
                        self.env.estop()
                        self.counters["estops"] += 1
            time.sleep(0.05)
        return None

    def _outcome(self, label: str | None, watch: SuccessWatch | None, robot_success: bool,
                 labelled: bool) -> tuple[bool, Outcome]:
        """The episode's success and who gave it (see ActorConfig.reward); disagreements are counted."""
        said = -1 if watch is None else int(watch.decided)
        version = 0 if watch is None else self.classifier.version
        if label is not None:
            success, source = label == "success", "operator"
        elif watch is not None:
            success, source = watch.decided, "classifier"
        else:
            success, source = robot_success, "operator" if labelled else "sim" if robot_success else "horizon"
        if said >= 0 and said != success:
            self.counters["classifier_overridden"] += 1
        if watch is not None and robot_success != success:
            self.counters["robot_side_disagreed"] += 1  # a simulator (or a robot side's label) saw it otherwise
        return success, Outcome(source, version, said)

    def _log_episode(self, steps: int) -> None:
        """TensorBoard, per episode: outcome, length, versions, candidate Q spread, OptimizedActions.trust() (README:
        is the critic trusted too early?), latencies."""
        n = self.counters["episodes"]
        scalars = {"success": float(self.successes[-1]), "steps": steps, "candidate_q_spread": np.mean(self._spread),
                   "critic_acted": float(self.critic_acts),
                   **mean_trust(self._trust),
                   **{f"version_{k}": v for k, v in self.versions.items()},
                   **{f"latency_ms/{k}": v for k, v in self.latency_ms.items()}}
        for k, v in scalars.items():
            self.tensorboard.add_scalar(f"actor/{k}", float(v), n)
        self._spread.clear()
        self._trust.clear()

    # between episodes ---------------------------------------------------------------------------

    def between_episodes(self, stop: threading.Event) -> None:
        """Acknowledgements, resends, the minimum update-to-data ratio, holding while the learner is lost."""
        cfg = self.cfg.actor
        started = time.monotonic()
        deadline = started + cfg.max_pause_s
        try:
            self._between_episodes(stop, deadline)
        finally:
            self.counters["waited_for_learner_ms"] += int(self._waited * 1e3)
            self.counters["between_episodes_ms"] += int((time.monotonic() - started) * 1e3)

    def _between_episodes(self, stop: threading.Event, deadline: float) -> None:
        cfg = self.cfg.actor
        self._waited = 0.0
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
                self._pause(stop, 0.2)
                continue
            utd = self.learner.latest.rates.get("critic_utd", 0.0) if alive else float("inf")
            if utd >= self.agent.cfg.schedule.min_critic_utd or time.monotonic() > deadline:
                return
            self._pause(stop, 0.05)

    def _pause(self, stop: threading.Event, seconds: float) -> None:
        started = time.monotonic()
        stop.wait(seconds)
        self._waited += time.monotonic() - started

    def publish_status(self) -> None:
        self._show_session()
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
        while not stop.is_set() and not self.quit and (target == 0 or self.counters["episodes"] < target):
            recorded = self.counters["episodes"]
            self.episode()
            self.publish_status()
            if self.counters["episodes"] > recorded:
                self.log(f"episode {recorded + 1}: {'success' if self.successes[-1] else 'failure'}, "
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
        if self.live is not None:
            self.live.close()
        for part in (self.weights, self.learner, self.journal, self.tensorboard):
            part.close()
        if self.operator is not None:
            self.operator.close()
        self.env.close()
        self._steps.close()
        self._status.close()
