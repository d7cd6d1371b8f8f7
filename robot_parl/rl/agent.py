"""The PA-RL agent: acting, the offline phase and the online phase, and its checkpoint.

Offline: only the critic trains; acting = the frozen base policy's candidates + action optimization.
Online: the critic and distillation train at their configured update-to-data ratios once the warm-up
episodes are in (rl/schedule.py), and the critic's optimizer is reset at the switch (its moments belong
to offline data). Everything is pure torch; environments and processes live in runtime/.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from robot_parl.models.base import BasePolicy
from robot_parl.models.encoders import Obs, obs_to
from robot_parl.rl.action_opt import OptimizedActions, optimize_actions
from robot_parl.rl.calql import critic_loss
from robot_parl.rl.config import ParlConfig
from robot_parl.rl.critic import QEnsemble
from robot_parl.rl.data_parallel import Ranks
from robot_parl.rl.distill import distill_step
from robot_parl.rl.replay import Episode, Replay
from robot_parl.rl.schedule import Owed, owed_updates
from robot_parl.rl.trust import gain_z, probation_arm, revoke_z, watch_control
from robot_parl.tensor_tree import load_tree, rng_state, save_tree, set_rng_state

REPLAY_FILE = "replay.safetensors"


@dataclass
class Decision:
    """What the agent chose for a batch of states, the candidates it chose from, and how long each part took."""

    actions: torch.Tensor  # [B, A] in host memory
    critic_acted: torch.Tensor  # [B] bool: the critic's choice was acted on (else the policy's first sample)
    candidates: torch.Tensor  # [B, N, A] the base policy's samples, in host memory
    optimized: OptimizedActions  # candidate_q [B, N], the refined top-k and their Q, the chosen Q (on the device)
    latency_ms: dict[str, float] = field(default_factory=dict)  # sample, encode, optimize


class ParlAgent:
    """Base policy + Q-ensemble + replay, trained by PA-RL."""

    def __init__(self, policy: BasePolicy, critic: QEnsemble, cfg: ParlConfig, low: torch.Tensor,
                 high: torch.Tensor, seed: int = 0, device: torch.device | str = "cpu"):
        # the critic, its batches and the actions live on ``device``; the policy is placed by its builder (a VLA
        # on its card's device, which build_agent checks is this one); replay stays in host memory
        self.device = torch.device(device)
        self.policy = policy
        self.critic = critic.to(self.device)
        self.target = self.critic.make_target()
        self.cfg = cfg
        self.low = low.float().to(self.device)
        self.high = high.float().to(self.device)
        self.replay = Replay(cfg.critic.gamma, cfg.critic.n_step, cfg.schedule.online_capacity)
        # one CPU generator for every draw, moved where it is used (models/noise.py): the same numbers on any device
        self.generator = torch.Generator().manual_seed(seed)
        self.critic_optimizer = self._new_critic_optimizer()
        self.online = False
        # distill_waived: distillation updates the data earned while the critic was not trusted, never made;
        # trust_revoked: how often the watch took a trusted critic back to probation
        self.counters = {"critic_updates": 0, "online_critic_updates": 0, "distill_updates": 0, "distill_waived": 0,
                         "online_env_steps": 0, "online_episodes": 0, "policy_version": 0, "trust_revoked": 0}
        # (critic acted, success, return) of online rollouts (rl/trust.py): while the critic is on probation, the
        # trust test's evidence; once trusted, the watch's (its controls and critic arm), with each test's last z
        self.trial: deque[tuple[bool, bool, float]] = deque(maxlen=cfg.trust_window)
        self.trust_z = 0.0
        self._watch()
        self.watch_z = 0.0
        self.ranks: Ranks | None = None  # a data-parallel learner's (join)

    @property
    def trusted(self) -> bool:
        """Whether the critic acts and is distilled (rl/trust.py; always with trust_min_z = 0)."""
        return self.cfg.trust_min_z == 0 or bool(self.critic.trusted.item())

    def _new_critic_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.critic.parameters(), lr=self.cfg.critic.lr)

    # acting -------------------------------------------------------------------------------------

    @torch.no_grad()
    def sample_candidates(self, obs: Obs) -> torch.Tensor:
        """N base-policy candidates per state: [B, N, A], on the agent's device."""
        return self._sample(obs, self.cfg.num_samples)

    @torch.no_grad()
    def policy_actions(self, obs: Obs) -> torch.Tensor:
        """The policy alone (no critic): one sample per state, [B, A] in host memory."""
        return self._sample(obs, 1)[:, 0].cpu()

    def critic_acts(self, episode_id: str) -> bool:
        """Whether the critic's choice is acted on in this episode: once it is trusted, in every episode but the
        watch's controls; before, in the probation arm (half the episodes; rl/trust.py)."""
        if self.trusted:
            return self.cfg.trust_min_z == 0 or not watch_control(episode_id, self.cfg.watch_share)
        return probation_arm(episode_id)

    def act(self, obs: Obs, candidates: torch.Tensor | None = None,
            critic: bool | torch.Tensor | None = None) -> Decision:
        """The acting step of every runner (actor, evaluation, in-process sessions): candidates from the policy
        (or given), scored, refined and selected by the critic (argmax), in policy space. ``critic`` says where
        the critic's choice is acted on (one flag, or one per state; by default where it is trusted, rl/trust.py);
        elsewhere the policy's first sample is."""
        t0 = time.perf_counter()
        obs = obs_to(obs, self.device)
        candidates = self.sample_candidates(obs) if candidates is None else candidates.to(self.device)
        t1 = time.perf_counter()
        with torch.no_grad():
            z = self.critic.encode(obs)
        t2 = time.perf_counter()
        opt = optimize_actions(self.critic, z, candidates, self.cfg, self.low, self.high)
        chosen = torch.as_tensor(self.trusted if critic is None else critic, dtype=torch.bool,
                                 device=self.device).expand(candidates.shape[0])
        actions = torch.where(chosen[:, None], opt.actions, candidates[:, 0])
        t3 = time.perf_counter()
        return Decision(actions.cpu(), chosen.cpu(), candidates.cpu(), opt,
                        {"sample": (t1 - t0) * 1e3, "encode": (t2 - t1) * 1e3, "optimize": (t3 - t2) * 1e3})

    # data ---------------------------------------------------------------------------------------

    def add_episode(self, episode: Episode, online: bool) -> None:
        """Commit an episode to replay; online episodes count towards warm-up and, while the critic is on
        probation, rollouts (not interventions) with an episode id are evidence for the trust test."""
        self.replay.add_episode(episode, online)
        if online:
            self.counters["online_env_steps"] += episode.actions.shape[0]
            self.counters["online_episodes"] += 1
            if episode.source == "rollout" and episode.episode_id and self.cfg.trust_min_z > 0:
                self._evidence(episode.episode_id, episode.terminated, float(episode.rewards.sum()))

    def _evidence(self, episode_id: str, success: bool, ret: float) -> None:
        # only slots that act alike on either side of the trust flag's turn count for the watch (rl/trust.py)
        acted = probation_arm(episode_id)
        if not self.trusted:
            self.trial.append((acted, success, ret))
            self.check_trust()
        elif acted or watch_control(episode_id, self.cfg.watch_share):
            (self.watch_critic if acted else self.watch_controls).append((acted, success, ret))
            self.check_watch()

    def check_trust(self) -> bool:
        """Run the trust test on the evidence so far; trust the critic from the first pass on (rl/trust.py), which
        can come once a whole window of probation rollouts is in."""
        if not self.trusted and self.trial:
            self.trust_z = gain_z(list(self.trial))
            if self.trust_z >= self.cfg.trust_min_z and len(self.trial) == self.cfg.trust_window:
                self.critic.trusted.fill_(1.0)
                self._watch()
                self.watch_z = 0.0
        return self.trusted

    def check_watch(self) -> bool:
        """Run the watch on a trusted critic (rl/trust.py): revoke the trust when its controls did better by
        z >= trust_min_z, from a quarter window of controls on. Returns whether the critic is still trusted."""
        if len(self.watch_controls) >= max(1, self.cfg.trust_window // 4) and self.watch_critic:
            self.watch_z = revoke_z(list(self.watch_controls) + list(self.watch_critic))
            if self.watch_z >= self.cfg.trust_min_z:
                self.critic.trusted.fill_(0.0)
                self.counters["trust_revoked"] += 1
                self.trial.clear()
                self.trust_z = 0.0
        return self.trusted

    def _watch(self, rows: Sequence[tuple[bool, bool, float]] = ()) -> None:
        """The watch's evidence, split into its arms: the newest trust_window / 2 controls, and as many critic-arm
        episodes as come in beside them, so both arms span the same stretch."""
        controls = self.cfg.trust_window // 2
        share = self.cfg.watch_share
        self.watch_controls = deque((t for t in rows if not t[0]), maxlen=controls)
        self.watch_critic = deque((t for t in rows if t[0]),
                                  maxlen=controls * max(1, round(0.5 / share)) if share else 1)

    def _batch(self, size: int = 0):
        batch = None
        if self.ranks is None or self.ranks.lead:
            batch = self.replay.sample(size or self.cfg.critic.batch_size, self.cfg.schedule.offline_fraction,
                                       self.generator, resample=self._sample, version=self.counters["policy_version"],
                                       max_age=self.cfg.schedule.candidate_max_age)
        if self.ranks is not None:  # rank 0's batch, this rank's rows of it
            batch = self.ranks.share(batch)
        return batch.to(self.device)

    def _sample(self, obs: Obs, n: int) -> torch.Tensor:
        return self.policy.sample(obs_to(obs, self.device), n, generator=self.generator)

    # training -----------------------------------------------------------------------------------

    def critic_update(self) -> dict[str, float]:
        """One Cal-QL step on a replay batch, then a Polyak update of the target."""
        self._announce("critic")
        loss, metrics = critic_loss(self.critic, self.target, self._batch(), self.cfg, self.low, self.high,
                                    self.generator)
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.ranks is not None:
            self.ranks.average_gradients(self.critic.parameters())
        self.critic_optimizer.step()
        self.critic.polyak_update(self.target, self.cfg.critic.polyak)
        self.counters["critic_updates"] += 1
        self.counters["online_critic_updates"] += self.online
        return metrics

    def distill_update(self) -> dict[str, float]:
        """One distillation step; the policy version advances."""
        self._announce("distill")
        metrics = distill_step(self.policy, self.critic, self._batch(self.cfg.distill_batch_size), self.cfg, self.low,
                               self.high, self.generator, self.ranks.average_gradients if self.ranks else None)
        self.counters["distill_updates"] += 1
        self.counters["policy_version"] += 1
        return metrics

    def train_offline(self, steps: int | None = None,
                      progress: Callable[[int, dict[str, float]], None] | None = None) -> list[dict[str, float]]:
        """The offline phase: critic updates only, on the offline data; ``progress`` gets each update's number
        (from 1) and metrics."""
        if self.online:
            raise RuntimeError("train_offline after the switch to online; the offline phase comes first")
        history = []
        for step in range(1, (self.cfg.schedule.offline_steps if steps is None else steps) + 1):
            history.append(self.critic_update())
            if progress is not None:
                progress(step, history[-1])
        return history

    def start_online(self) -> None:
        """Switch to the online phase: the critic's optimizer state is reset."""
        self._announce("online")
        self.critic_optimizer = self._new_critic_optimizer()
        self.online = True

    def owed(self) -> Owed:
        """The online updates the data so far has earned and the agent has not made (rl/schedule.py)."""
        return owed_updates(self.cfg.schedule, self.counters)

    def train_online(self, max_updates: int | None = None) -> dict[str, float]:
        """Make the owed online updates: every critic update, then every distillation update (at most
        ``max_updates`` of each: the learner process makes one at a time between taking in data)."""
        if not self.online:
            raise RuntimeError("train_online before start_online()")
        owed = self.owed()
        metrics: dict[str, float] = {}
        if not self.trusted:  # nothing is distilled from a critic that has not passed the trust test
            self.counters["distill_waived"] += owed.distill
            owed = Owed(owed.critic, 0)
        for count, update in ((owed.critic, self.critic_update), (owed.distill, self.distill_update)):
            for _ in range(count if max_updates is None else min(count, max_updates)):
                metrics.update(update())
        if metrics:
            metrics.update(critic_trusted=float(self.trusted), trust_z=self.trust_z, watch_z=self.watch_z)
        return metrics

    # data-parallel learner (rl/data_parallel.py) ----------------------------------------------------

    def join(self, ranks: Ranks) -> None:
        """Take part in a data-parallel learner: every rank starts from rank 0's weights (its optimizer state is
        what each rank loaded from the same checkpoint), and ranks other than 0 draw their own rows' noise."""
        ranks.check_batch("parl.critic.batch_size", self.cfg.critic.batch_size)
        ranks.check_batch("parl.distill_batch_size", self.cfg.distill_batch_size or self.cfg.critic.batch_size)
        self.critic.load_state_dict(ranks.broadcast_state(self.critic.state_dict()))
        self.target.load_state_dict(ranks.broadcast_state(self.target.state_dict()))
        self.policy.load_sync_state(ranks.broadcast_state(self.policy.sync_state()))
        if not ranks.lead:
            seed = int(torch.randint(2**62, (1,), generator=self.generator)) + ranks.rank
            self.generator = torch.Generator().manual_seed(seed)
        self.ranks = ranks

    def follow(self) -> None:
        """On a rank other than 0: make each update rank 0 announces, on its rows of rank 0's batch, until it
        announces the stop."""
        updates = {"critic": self.critic_update, "distill": self.distill_update, "online": self.start_online}
        while (command := self.ranks.receive()) != "stop":
            updates[command]()

    def _announce(self, command: str) -> None:
        if self.ranks is not None and self.ranks.lead:
            self.ranks.announce(command)

    # checkpoints --------------------------------------------------------------------------------

    def save(self, directory: str | Path, replay: bool = True) -> None:
        """Everything needed to resume: critic, target, optimizer, policy, counters, RNG, and (with ``replay``)
        the replay contents; run checkpoints leave replay out and rebuild it from the episode store."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_tree(directory / "agent.safetensors", {
            "critic": self.critic.state_dict(),
            "target": self.target.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "online": self.online,
            "counters": dict(self.counters),
            "probation": [list(t) for t in self.trial],
            "watch": [list(t) for t in (*self.watch_controls, *self.watch_critic)],
            "generator": self.generator.get_state(),
            "rng": rng_state(),
        })
        if replay:
            save_tree(directory / REPLAY_FILE, self.replay.state_dict())
        self.policy.save(directory)

    def load_acting(self, directory: str | Path) -> None:
        """Only what acting needs from a checkpoint: the policy and the critic (no replay, no optimizer)."""
        directory = Path(directory)
        self.critic.load_state_dict(load_tree(directory / "agent.safetensors")["critic"])
        self.policy.load(directory)

    def load(self, directory: str | Path) -> None:
        """Restore what :meth:`save` wrote (replay empty when it was saved without)."""
        directory = Path(directory)
        tree = load_tree(directory / "agent.safetensors")
        self.critic.load_state_dict(tree["critic"])
        self.target.load_state_dict(tree["target"])
        self.critic_optimizer.load_state_dict(tree["critic_optimizer"])
        self.online = tree["online"]
        self.counters.update(tree["counters"])
        # "trial" held the earlier rank test's scores: a checkpoint from before starts its probation afresh
        self.trial = deque(_trial_rows(tree.get("probation", [])), maxlen=self.cfg.trust_window)
        self._watch(_trial_rows(tree.get("watch", [])))  # none in checkpoints from before the watch
        self.generator.set_state(tree["generator"])
        set_rng_state(tree["rng"])
        self.replay = Replay(self.cfg.critic.gamma, self.cfg.critic.n_step, self.cfg.schedule.online_capacity)
        if (directory / REPLAY_FILE).is_file():
            self.replay.load_state_dict(load_tree(directory / REPLAY_FILE))
        self.policy.load(directory)


def _trial_rows(rows) -> list[tuple[bool, bool, float]]:
    """(critic acted, success, return) rows as a checkpoint stored them."""
    return [(bool(acted), bool(ok), float(ret)) for acted, ok, ret in rows]
