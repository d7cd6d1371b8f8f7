"""The learner (`robot-parl learner`): owns the episode store, trains continuously, publishes weights.

Steps stream in from any number of actors. An episode is committed to the store once its final step
and every step before it have arrived (never twice: episode ids already in the store are ignored);
one whose steps stopped coming ``partial_after_s`` ago (its actor died) is committed as flagged
partial. Committed episodes reach replay through the store (rl/store_episodes.py). Training makes the
updates the data has earned (rl/schedule.py: critic and distillation updates per environment step), one
at a time between taking in steps, and never runs ahead of the data; new weights go out every K updates
with their version, and a heartbeat reports versions, update-to-data ratios and the recently committed
episode ids, which actors use to clear their journals. Checkpoints are atomic and the learner resumes
from the latest.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robot_parl.data.episode_store import EpisodeStore, KeySpec, StoreError, rl_schema
from robot_parl.limited_log import LimitedLog
from robot_parl.rl.data_parallel import Ranks
from robot_parl.rl.schedule import update_rates
from robot_parl.rl.store_episodes import StoreFeed
from robot_parl.runtime.config import FinetuneConfig, build_agent
from robot_parl.runtime.resume import LearnerState, load_latest, save_checkpoint
from robot_parl.runtime.steps import write_steps
from robot_parl.runtime.weights import WeightPublisher, Weights
from robot_parl.transport.channel import Inbox, Publisher
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.messages import LearnerStatus, Status, Step

HEARTBEAT_S = 0.5
RECENT_IDS = 512  # committed episode ids repeated in each heartbeat


@dataclass
class _OpenEpisode:
    steps: dict[int, Step] = field(default_factory=dict)
    last_seen: float = 0.0


class Learner:
    """Trains one session's agent from the steps its actors send."""

    def __init__(self, cfg: FinetuneConfig, out_dir: str | Path, session, log: Callable[[str], None] = print):
        self.cfg = cfg
        self.out = Path(out_dir)
        self.log = log
        self._warn = LimitedLog(log)
        self.spec = cfg.spec()
        self.agent, actions = build_agent(cfg, self.spec)  # refuses a policy that does not fit, before any write
        obs_keys = {k: KeySpec(*v) for k, v in self.spec.observation_keys().items()}
        self.offline = StoreFeed(EpisodeStore(cfg.learner.offline_store), list(obs_keys), actions,
                                 select=cfg.learner.offline_selection()) if cfg.learner.offline_store else None
        self.out.mkdir(parents=True, exist_ok=True)
        self.instance = uuid.uuid4().hex[:8]
        self.keys = KeySpace(cfg.link.session, "learner")
        store_path = self.out / "episodes"
        store = EpisodeStore(store_path) if (store_path / "zarr.json").is_file() else \
            EpisodeStore.create(store_path, rl_schema(obs_keys, self.spec.action.dim, self.agent.cfg.num_samples),
                                robot_spec=self.spec.stored())
        self.writer = store.writer(f"robot-parl learner {self.instance}")
        self.feed = StoreFeed(store, list(obs_keys), actions)
        self.committed = {e.episode_id for e in store.episodes() if e.episode_id}
        self.recent: deque[str] = deque((e.episode_id for e in store.episodes()[-RECENT_IDS:]), maxlen=RECENT_IDS)
        self.open: dict[str, _OpenEpisode] = {}
        self.outcomes: deque[bool] = deque(maxlen=20)  # the latest committed episodes' outcomes (checkpoint scores)
        self.offline_done = False
        self.counters: Counter[str] = Counter()
        self.published = {"policy": -1, "critic": -1}
        self._republish_requested = False
        self._last_republish = 0.0
        self._last_beat = 0.0
        self.steps = Inbox(Step, maxlen=1 << 20)
        self._subs = [session.declare_subscriber(self.keys.all_robots("step"),
                                                 lambda s: self.steps.feed(s.payload.to_bytes())),
                      session.declare_subscriber(self.keys.all_robots("actor"), self._on_actor_sample)]
        self._actor_status = Inbox(Status, on_message=self._on_actor_status)
        self.weights = WeightPublisher(session, self.keys)
        self._status = Publisher(session, self.keys.status)
        self.resumed = self._resume()
        from torch.utils.tensorboard import SummaryWriter

        self.tensorboard = SummaryWriter(str(self.out / "tensorboard"))
        self._metrics: dict[str, list[float]] = {}

    # messages -----------------------------------------------------------------------------------

    def _on_actor_sample(self, sample) -> None:
        self._actor_status.feed(sample.payload.to_bytes())

    def _on_actor_status(self, msg: Status) -> None:
        episode = self.open.get(msg.episode_id)
        if episode is not None:  # its actor is alive (an operator's pause): the episode is not abandoned
            episode.last_seen = time.monotonic()
        if min(msg.versions.get("policy", -1), msg.versions.get("critic", -1)) < 0:
            self._republish_requested = True  # an actor without weights: send it ours

    def pump(self) -> int:
        """Take the steps that arrived; commit every episode that became complete. Returns steps taken."""
        taken = 0
        now = time.monotonic()
        for step in self.steps.drain():
            taken += 1
            self.counters["steps_received"] += 1
            refusal = self._refusal(step)
            if refusal is not None:
                self.counters["refused_steps"] += 1
                self._warn(f"step {step.index} of episode {step.episode_id!r} from {step.actor!r} refused: {refusal}")
                continue
            if step.episode_id in self.committed:
                self.counters["duplicate_steps"] += 1
                continue
            episode = self.open.setdefault(step.episode_id, _OpenEpisode())
            if step.index == 0:
                episode.steps.clear()  # a resend starts over (what was received live may have gaps)
            episode.steps[step.index] = step
            episode.last_seen = now
            final = next((s for s in episode.steps.values() if s.final), None)
            if final is not None and len(episode.steps) == final.index + 1:
                self._commit(step.episode_id, [episode.steps[i] for i in range(final.index + 1)], partial=False)
        for episode_id, episode in list(self.open.items()):
            if now - episode.last_seen > self.cfg.learner.partial_after_s:
                prefix = []
                while len(prefix) in episode.steps:
                    prefix.append(episode.steps[len(prefix)])
                if len(prefix) >= 2:
                    self._commit(episode_id, prefix, partial=True)
                else:
                    del self.open[episode_id]
        return taken

    def _refusal(self, step: Step) -> str | None:
        """Why ``step`` cannot belong to an episode of this robot (None: it can); checked before it is kept."""
        cameras = {c.name: (c.height, c.width, 3) for c in self.spec.cameras}
        if set(step.images) != set(cameras):
            return f"cameras {sorted(step.images)}, expected {sorted(cameras)}"
        for name, shape in cameras.items():
            image = step.images[name]
            if image.dtype != np.uint8 or image.shape != shape:
                return f"camera {name!r} is {image.dtype} {image.shape}, expected uint8 {shape}"
        wanted = {"proprio": (len(self.spec.proprio),), "action": (self.spec.action.dim,),
                  "candidates": (self.agent.cfg.num_samples, self.spec.action.dim)}
        for key, shape in wanted.items():
            value = getattr(step, key)
            if value is None:
                return f"{key} is missing"
            if value.shape != shape:
                return f"{key} has shape {value.shape}, expected {shape}"
            if not np.isfinite(value).all():
                return f"{key} has non-finite values"
        if not np.isfinite(step.reward):
            return f"reward {step.reward}"
        if step.index < 0 or (step.final and step.index == 0):
            return f"index {step.index}{' is final' if step.final else ''}: an episode needs s_0 and a final s_T"
        return None

    def _commit(self, episode_id: str, steps: list[Step], partial: bool) -> None:
        self.open.pop(episode_id, None)
        self.committed.add(episode_id)  # refused or not, it is acknowledged: its actor stops resending it
        self.recent.append(episode_id)
        try:
            write_steps(self.writer, steps, partial)
        except StoreError as err:  # e.g. stamps that do not increase: the episode is refused, the learner goes on
            self.counters["refused_episodes"] += 1
            self._warn(f"episode {episode_id!r} from {steps[0].actor!r} refused: {err}")
            return
        kind = "partial_episodes" if partial else "episodes"
        self.counters[kind] += 1
        self.counters[f"{kind}/{steps[0].robot or 'unnamed'}"] += 1  # per robot of a fleet
        if not partial:
            self.outcomes.append(bool(steps[-1].success))
        self.log(f"committed {'partial ' if partial else ''}episode {episode_id} of {steps[0].actor} on "
                 f"{steps[0].robot or 'an unnamed robot'}: {len(steps) - 1} steps, "
                 f"{'success' if steps[-1].success and not partial else 'failure'}")

    def ingest(self) -> None:
        """Feed newly committed episodes (and offline ones) to replay."""
        feeds = [self.feed] + ([self.offline] if self.offline is not None else [])
        for feed in feeds:
            for episode, online in feed.new_episodes(self.agent.sample_candidates):
                trusted = self.agent.trusted
                self.agent.add_episode(episode, online)
                if self.agent.trusted != trusted:
                    self._trust_turned()

    def _trust_turned(self) -> None:
        """Say so, and send the critic at once: its trust flag tells the actors how to act (rl/trust.py)."""
        a = self.agent
        if a.trusted:
            self.log(f"critic trusted after {a.counters['online_episodes']} online episodes: its arm beat the "
                     f"policy's by z = {a.trust_z:.2f}")
        else:
            self.log(f"critic back on probation after {a.counters['online_episodes']} online episodes: the policy "
                     f"alone did better in the watch's controls, z = {a.watch_z:.2f} (revoked "
                     f"{a.counters['trust_revoked']} times)")
        self.publish(force=True)

    # training -----------------------------------------------------------------------------------

    def pretrain(self, stop: threading.Event) -> None:
        """The offline phase on the offline store, heartbeats going on (actors wait for the first weights)."""
        steps = self.agent.cfg.schedule.offline_steps
        if self.agent.online or self.offline_done or self.offline is None or len(self.agent.replay) == 0 or steps == 0:
            return
        self.log(f"offline phase: {steps} critic updates on {len(self.agent.replay)} transitions")
        for _ in range(steps):
            if stop.is_set():
                return
            self.agent.critic_update()
            self.heartbeat()
        self.offline_done = True

    def train_once(self) -> bool:
        """One critic and/or one distillation update, if the data so far has earned them; returns whether it
        trained."""
        owed = self.agent.owed()
        if not self.agent.online or not (owed.critic or owed.distill):
            return False
        started = time.perf_counter()
        self._log_metrics(self.agent.train_online(max_updates=1))
        self.counters["train_ms"] += round((time.perf_counter() - started) * 1e3)  # busy time: update cost
        return True

    def _log_metrics(self, metrics: dict[str, float], every: int = 20) -> None:
        """TensorBoard: training metrics averaged over ``every`` updates, and the update-to-data ratios."""
        for k, v in metrics.items():
            self._metrics.setdefault(k, []).append(v)
        step = self.agent.counters["critic_updates"]
        if step % every:
            return
        for k, values in self._metrics.items():
            self.tensorboard.add_scalar(f"learner/{k}", float(np.mean(values)), step)
        for k, v in self.rates().items():
            self.tensorboard.add_scalar(f"learner/{k}", v, step)
        self._metrics.clear()

    # weights, status, checkpoints ---------------------------------------------------------------

    def publish(self, force: bool = False) -> None:
        """Send the policy and/or critic when they moved on by the configured number of updates."""
        a = self.agent
        versions = {"policy": a.counters["policy_version"], "critic": a.counters["critic_updates"]}
        every = {"policy": self.cfg.learner.publish_policy_every, "critic": self.cfg.learner.publish_critic_every}
        if self._republish_requested and time.monotonic() - self._last_republish > 1.0:
            force, self._republish_requested, self._last_republish = True, False, time.monotonic()
        for part, version in versions.items():
            if force or version - self.published[part] >= every[part]:
                state = a.policy.sync_state() if part == "policy" else a.critic.state_dict()
                size = self.weights.publish(Weights(part, self.instance, version, state))
                self.published[part] = version
                self.counters[f"{part}_published"] += 1
                self.counters[f"{part}_bytes"] = size
                self._last_beat = 0.0  # the next heartbeat goes out at once: actors apply what it announces

    def rates(self) -> dict[str, float]:
        return update_rates(self.agent.counters)

    def heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._last_beat < HEARTBEAT_S:
            return
        self._last_beat = now
        counters = dict(self.counters) | {k: int(v) for k, v in self.agent.counters.items()}
        counters["step_overflow"] = self.steps.overflow
        counters["steps_undecodable"] = self.steps.refused
        counters["open_episodes"] = len(self.open)
        counters["open_steps"] = sum(len(e.steps) for e in self.open.values())
        for episode in self.open.values():  # per robot of a fleet: the steps of its episode under way
            robot = next(iter(episode.steps.values())).robot if episode.steps else ""
            key = f"open_steps/{robot or 'unnamed'}"
            counters[key] = counters.get(key, 0) + len(episode.steps)
        self._status.put(LearnerStatus(time.monotonic_ns(), self.instance, dict(self.published), counters,
                                       self.rates(), list(self.recent)))

    def checkpoint(self) -> Path:
        """Atomic checkpoint (agent, replay positions, counters) under checkpoints/; the newest
        ``learner.keep_checkpoints`` and the one after the best recent success rate stay."""
        name = f"update_{self.agent.counters['critic_updates']:08d}"
        score = float(np.mean(self.outcomes)) if self.outcomes else None
        return save_checkpoint(self.out / "checkpoints", name, self.agent, LearnerState(
            store_position=self.feed.position, offline_position=self.offline.position if self.offline else 0,
            offline_done=self.offline_done, counters=dict(self.counters)),
            keep=self.cfg.learner.keep_checkpoints, score=score)

    def _resume(self) -> bool:
        state = load_latest(self.out / "checkpoints", self.agent, LearnerState)
        if state is None:
            return False
        self.feed.refill(self.agent.replay, self.agent.sample_candidates, state.store_position)
        if self.offline is not None:
            self.offline.refill(self.agent.replay, self.agent.sample_candidates, state.offline_position)
        self.counters.update(state.counters)
        self.offline_done = state.offline_done
        self.log(f"resumed from checkpoint at {self.agent.counters['critic_updates']} critic updates; replay "
                 f"rebuilt from {self.feed.position} stored episodes ({len(self.agent.replay)} transitions)")
        return True

    # the loop -----------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Until ``stop``: take steps, commit, train, publish, beat, checkpoint; a final checkpoint at the end."""
        self.ingest()
        self.pretrain(stop)
        if not self.agent.online:
            self.agent.start_online()
        self.publish(force=True)
        last_checkpoint = time.monotonic()
        while not stop.is_set():
            self.pump()
            self.ingest()
            trained = self.train_once()
            self.publish()
            self.heartbeat()
            if time.monotonic() - last_checkpoint > self.cfg.learner.checkpoint_every_s:
                self.checkpoint()
                last_checkpoint = time.monotonic()
            if not trained:
                stop.wait(0.005)
        self.pump()
        self.ingest()
        self.checkpoint()

    def close(self) -> None:
        for sub in self._subs:
            sub.undeclare()
        self.weights.close()
        self._status.close()
        self.writer.close()
        self.tensorboard.close()


def follow_lead(cfg: FinetuneConfig, out_dir: str | Path, ranks: Ranks) -> dict[str, int]:
    """A data-parallel learner's rank other than 0 (rl/data_parallel.py): the session's agent, from the checkpoint
    rank 0 resumes from (the same ``--out``, so the optimizer state matches), making the updates rank 0 announces
    on its rows of rank 0's batches until rank 0 stops; returns the agent's counters. It owns no data, store, link
    or checkpoint."""
    agent, _ = build_agent(cfg, cfg.spec())
    load_latest(Path(out_dir) / "checkpoints", agent, LearnerState)
    agent.join(ranks)
    try:
        agent.follow()
    finally:
        ranks.close()
    return dict(agent.counters)
