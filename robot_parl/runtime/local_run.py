"""A whole PA-RL run in one process on a simulated task (PointReach, a MuJoCo tabletop task or any gymnasium
environment): demonstrations, BC, offline critic, online fine-tuning with periodic evaluation and checkpoints.

Acting and training share this process (the robot's runtime runs them as an actor and a learner). Methods:
``parl`` (candidates refined by the critic, distilled into the policy) and ``rerank`` (the frozen
base policy's candidates re-ranked by a critic trained on the same online budget; no local ascent,
no distillation); runtime/compare.py sets them and filtered BC against the BC policy alone.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch

from robot_parl import typed_config
from robot_parl.data.demo_files import DemoFileError, demo_file_kind, load_demos
from robot_parl.data.episode_store import EpisodeStore, KeySpec, Outcome, StoreError, rl_schema
from robot_parl.eval.rollouts import Rollout, run_episodes, success_rate
from robot_parl.models.action_space import LinearActionSpace
from robot_parl.models.autoregressive import AutoregressiveConfig
from robot_parl.models.base import ObsSpec
from robot_parl.models.bc import train_bc
from robot_parl.models.diffusion import DiffusionConfig
from robot_parl.models.encoders import obs_to, unflatten_obs
from robot_parl.models.factory import PolicyConfig
from robot_parl.rl.action_opt import mean_trust
from robot_parl.rl.agent import ParlAgent
from robot_parl.rl.config import CriticConfig, ParlConfig, ScheduleConfig
from robot_parl.rl.critic import QEnsemble
from robot_parl.rl.store_episodes import StoreFeed, write_episode
from robot_parl.robots.sim import TASKS
from robot_parl.robots.sim.gym_vec import GymVecEnv
from robot_parl.robots.sim.point_reach import (
    ExpertConfig,
    PointReachConfig,
    PointReachVecEnv,
    expert_actions,
)
from robot_parl.robots.sim.tabletop_expert import TabletopExpertConfig
from robot_parl.robots.sim.tabletop_vec import TabletopVecEnv
from robot_parl.runtime.config import placement, resolve_parl
from robot_parl.runtime.resume import load_latest, save_checkpoint
from robot_parl.typed_config import ConfigError, require

Method = Literal["parl", "rerank"]
BUILT_IN = ("point_reach", *TASKS)  # else a gymnasium id or module:EnvId (robots/sim/gym_vec.py)
FINAL_OFFSET = 500_000  # final evaluation layouts: online.eval_seed + FINAL_OFFSET, ...


@dataclass
class DemoConfig:
    # "expert": the environment's scripted expert records ``episodes`` episodes on the run's training layouts.
    # Else a path: an episode store, a LeRobot v3 dataset or an .npz (data/demo_files.py), of which the first
    # ``episodes`` are taken; their actions are in the environment's units.
    source: str = "expert"
    episodes: int = 20
    key_map: dict[str, str] = field(default_factory=dict)  # a file's key -> the run's (LeRobot feature, .npz array)
    expert: ExpertConfig = field(default_factory=ExpertConfig)  # PointReach's expert
    bc_steps: int = 1500
    bc_batch_size: int = 256

    def validate(self) -> None:
        if self.source != "expert":
            try:
                demo_file_kind(self.source)
            except DemoFileError as err:
                raise ConfigError("source", f"expected 'expert' or a path; {err}") from None
        require(self.source != "expert" or not self.key_map, "key_map",
                "no renames with source=expert (they rename a file's keys)", self.key_map)
        require(self.episodes >= 1, "episodes", "an integer >= 1", self.episodes)
        require(self.bc_steps >= 0, "bc_steps", "an integer >= 0", self.bc_steps)
        require(self.bc_batch_size >= 1, "bc_batch_size", "an integer >= 1", self.bc_batch_size)


@dataclass
class OnlineConfig:
    episodes: int = 100
    num_envs: int = 8
    eval_every: int = 25
    eval_episodes: int = 100
    checkpoint_every: int = 50
    keep_checkpoints: int = 3  # the newest this many and the best evaluated one stay (0: all)
    # The learning curve's layouts are seeds eval_seed, eval_seed + 1, ...; final evaluations start FINAL_OFFSET
    # above it. Training layouts are seed x 100000 + i (demonstrations) and + 50000 + i (online episodes).
    eval_seed: int = 1_000_000

    def validate(self) -> None:
        require(self.episodes >= 0, "episodes", "an integer >= 0", self.episodes)
        require(self.num_envs >= 1, "num_envs", "an integer >= 1", self.num_envs)
        require(self.eval_every >= 1, "eval_every", "an integer >= 1", self.eval_every)
        require(self.eval_episodes >= 1, "eval_episodes", "an integer >= 1", self.eval_episodes)
        require(self.checkpoint_every >= 1, "checkpoint_every", "an integer >= 1", self.checkpoint_every)
        require(self.keep_checkpoints >= 0, "keep_checkpoints", "an integer >= 0 (0: all)", self.keep_checkpoints)
        require(self.eval_seed >= 0, "eval_seed", "an integer >= 0", self.eval_seed)


@dataclass
class GymRunConfig:
    """A gymnasium environment of your own (``env``: its id or module:EnvId; see robots/sim/gym_vec.py)."""

    horizon: int = 0  # steps before an episode ends as a failure (0: only the environment's own limits)
    # Its scripted expert, for the demonstrations: module:function(obs, rng) -> actions [M, A] in the environment's
    # units, for a batch of observations (flat keys: state, proprio, images/<camera>) and a numpy Generator.
    expert: str = ""

    def validate(self) -> None:
        require(self.horizon >= 0, "horizon", "an integer >= 0 (0: the environment's own limits)", self.horizon)
        require(not self.expert or ":" in self.expert, "expert", "module:function", self.expert)

    def load_expert(self):
        """The expert function ``expert`` names."""
        module, _, name = self.expert.partition(":")
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as err:
            raise ConfigError("gym.expert", f"cannot load {self.expert!r}: {err}") from None


@dataclass
class TabletopRunConfig:
    """The MuJoCo tabletop tasks (env != point_reach): state or image observations, normalized actions."""

    horizon: int = 60
    obs_mode: Literal["state", "images"] = "state"
    image_size: int = 64
    cameras: tuple[str, ...] = ("front",)
    # Noisy, hesitant demonstrations with missed grasps (clean experts succeed ~100%).
    expert: TabletopExpertConfig = field(
        default_factory=lambda: TabletopExpertConfig(noise=0.3, hesitation=0.1, missed_grasp=0.2))

    def validate(self) -> None:
        require(self.horizon >= 1, "horizon", "an integer >= 1", self.horizon)
        require(self.image_size >= 16, "image_size", "an integer >= 16", self.image_size)
        require(bool(self.cameras) and set(self.cameras) <= {"front", "wrist"}, "cameras",
                "a non-empty list of 'front' and 'wrist'", self.cameras)


def _cpu_parl() -> ParlConfig:
    # The paper's defaults cost ~12 s per critic update on one CPU core; these tasks have small states and
    # actions, so a small critic and fewer candidates keep a run within CPU-minutes.
    # The ascent step is far larger than the paper's 3e-4: PointReach's policy has to become faster than its
    # demonstrations, and 3e-4 moves an action by < 1e-3 (measured on seed 0 with 150 online episodes: 33% success
    # with 3e-4 x 1 step, 82% with 0.05 x 2 steps; 0.1 x 2 steps reached 89% after 100).
    return ParlConfig(
        num_samples=16, top_k=4, local_steps=2, step_size=0.1,
        critic=CriticConfig(ensemble_size=4, hidden_dims=(128, 128), state_hidden_dims=(128,), embedding_dim=128,
                            batch_size=128),
        schedule=ScheduleConfig(offline_steps=500, warmup_episodes=0, offline_fraction=0.25),
    )


def _cpu_policy() -> PolicyConfig:
    return PolicyConfig(
        diffusion=DiffusionConfig(hidden_dim=128, num_blocks=2, obs_hidden_dims=(128,), obs_dim=128),
        autoregressive=AutoregressiveConfig(d_model=64, num_layers=2, obs_hidden_dims=(128,)),
    )


@dataclass
class LocalRunConfig:
    """Everything a local PA-RL run reads; saved resolved next to its outputs."""

    seed: int = 0
    method: Method = "parl"
    # Where the policy, the critic and training batches live ("cpu", "cuda", "cuda:1"); "": a VLA card's device
    # (policy.vla.device), else cpu. The environments stay on the host.
    device: str = ""
    env: str = "point_reach"  # point_reach, a MuJoCo tabletop task, or any gymnasium id / module:EnvId
    task: PointReachConfig = field(default_factory=PointReachConfig)  # env = point_reach
    tabletop: TabletopRunConfig = field(default_factory=TabletopRunConfig)  # the MuJoCo tabletop tasks
    gym: GymRunConfig = field(default_factory=GymRunConfig)  # any other gymnasium environment
    demos: DemoConfig = field(default_factory=DemoConfig)
    policy: PolicyConfig = field(default_factory=_cpu_policy)
    parl: ParlConfig = field(default_factory=_cpu_parl)
    online: OnlineConfig = field(default_factory=OnlineConfig)

    def validate(self) -> None:
        if self.env not in BUILT_IN:
            require(":" in self.env or self.env in gym.registry, "env",
                    f"one of {list(BUILT_IN)}, a registered gymnasium id or module:EnvId", self.env)
            require(bool(self.gym.expert) or self.demos.source != "expert", "gym.expert",
                    f"module:function, the scripted expert of {self.env!r} for the demonstrations (or demos.source, "
                    f"a file of them)", self.gym.expert)
        self._apart("learning-curve", range(self.online.eval_seed, self.online.eval_seed + self.online.eval_episodes))
        placement(self.device, self.policy, "device")

    def _apart(self, what: str, layouts: range) -> None:
        demos = range(self.seed * 100_000, self.seed * 100_000 + self.demos.episodes)
        online = range(self.seed * 100_000 + 50_000, self.seed * 100_000 + 50_000 + self.online.episodes)
        require(not (_overlap(demos, layouts) or _overlap(online, layouts)), "online.eval_seed",
                f"{what} layouts ({layouts.start}..{layouts.stop - 1}) apart from seed={self.seed}'s training "
                f"ones ({demos.start}..{demos.stop - 1} and {online.start}..{online.stop - 1})", self.online.eval_seed)

    def demo_seeds(self) -> list[int]:
        """The layouts the scripted expert demonstrates on."""
        return [self.seed * 100_000 + i for i in range(self.demos.episodes)]

    def online_seeds(self, start: int, count: int) -> list[int]:
        """The layouts of online episodes ``start`` .. ``start + count - 1``."""
        return [self.seed * 100_000 + 50_000 + start + i for i in range(count)]

    def final_eval_seeds(self, episodes: int) -> list[int]:
        """Layouts for final evaluations, apart from the training and the learning-curve layouts."""
        seeds = range(self.online.eval_seed + FINAL_OFFSET, self.online.eval_seed + FINAL_OFFSET + episodes)
        self._apart("final evaluation", seeds)
        return list(seeds)

    def method_parl(self) -> ParlConfig:
        """The algorithm settings the chosen method runs with (a VLA card's overrides applied)."""
        parl = resolve_parl(self.parl, self.policy, _cpu_parl())
        if self.method == "parl":
            return parl
        return dataclasses.replace(parl, local_steps=0, schedule=dataclasses.replace(parl.schedule, distill_utd=0.0))


def _online_id(seed: int) -> str:
    """An online rollout's episode id: its layout, unique within a run."""
    return f"layout-{seed}"


def make_env(cfg: LocalRunConfig, num_envs: int):
    """The session's batched environment (PointReach, a MuJoCo tabletop task, or a gymnasium environment)."""
    if cfg.env == "point_reach":
        return PointReachVecEnv(num_envs, cfg.task)
    if cfg.env in TASKS:
        t = cfg.tabletop
        return TabletopVecEnv(num_envs, cfg.env, t.horizon, t.obs_mode, t.image_size, t.cameras)
    try:
        return GymVecEnv(cfg.env, num_envs, cfg.gym.horizon)
    except ValueError as err:
        raise ConfigError("env", str(err)) from None


def _overlap(a: range, b: range) -> bool:
    return max(a.start, b.start) < min(a.stop, b.stop)


def collect_demos(cfg: LocalRunConfig, log: Callable[[str], None] = print) -> list[Rollout]:
    """The demonstrations: scripted-expert episodes on the run's training layouts, or the first ``demos.episodes``
    of a file (``demos.source``), their actions mapped from the environment's units into policy space and their
    rewards the project's sparse ones (-1 per step, 0 on the step that succeeds)."""
    if cfg.demos.source != "expert":
        env = make_env(cfg, 1)
        try:
            episodes, total = load_demos(cfg.demos.source, _obs_key_specs(env), len(env.action_low),
                                         cfg.demos.episodes, cfg.demos.key_map)
        except StoreError as err:
            raise ConfigError("demos.source", str(err)) from None
        log(f"demonstrations: the first {len(episodes)} of the {total} episodes in {cfg.demos.source}")
        return [Rollout(i, ep.obs, env.from_env(ep.actions), _sparse_rewards(len(ep.actions), ep.success),
                        ep.success, None) for i, ep in enumerate(episodes)]
    rng = np.random.default_rng(cfg.seed)
    env = make_env(cfg, min(cfg.demos.episodes, 32))
    seeds = cfg.demo_seeds()
    if cfg.env == "point_reach":
        return run_episodes(env, seeds, lambda obs: (expert_actions(obs["state"], cfg.demos.expert, rng), None))
    if cfg.env in TASKS:
        return run_episodes(env, seeds, lambda obs: (env.expert_actions(cfg.tabletop.expert, cfg.seed), None))
    expert = cfg.gym.load_expert()
    return run_episodes(env, seeds, lambda obs: (env.from_env(expert(obs, rng)), None))


def _sparse_rewards(steps: int, success: bool) -> np.ndarray:
    rewards = np.full(steps, -1.0, np.float32)
    rewards[-1] = 0.0 if success else -1.0
    return rewards


def _torch_obs(obs: dict[str, np.ndarray]) -> dict:
    # Environments give flat keys ("images/front"); policies and critics read nested dicts.
    return unflatten_obs({k: torch.as_tensor(v) for k, v in obs.items()})


def bc_pairs(rollouts: list[Rollout], device: torch.device | str = "cpu") -> tuple[dict, torch.Tensor]:
    """Every (observation, action) pair of the rollouts, concatenated on ``device``, for behaviour cloning."""
    obs = _torch_obs({k: np.concatenate([r.obs[k][:-1] for r in rollouts]) for k in rollouts[0].obs})
    return obs_to(obs, device), torch.as_tensor(np.concatenate([r.actions for r in rollouts])).to(device)


class LocalRun:
    """Owns the agent and the environments of one run."""

    def __init__(self, cfg: LocalRunConfig, out_dir: str | Path, log: Callable[[str], None] = print):
        self.cfg = cfg
        self.out = Path(out_dir)
        self.log = log
        torch.manual_seed(cfg.seed)
        self.eval_env = make_env(cfg, min(cfg.online.eval_episodes, 100))
        self.train_env = make_env(cfg, cfg.online.num_envs)
        # a file of demonstrations is read, and refused, before anything is written
        self.file_demos = collect_demos(cfg, log) if cfg.demos.source != "expert" else None
        self.out.mkdir(parents=True, exist_ok=True)
        env = self.train_env
        obs_spec = ObsSpec(state_dim=env.state_dim, proprio_dim=env.proprio_dim, cameras=env.cameras)
        action_dim = len(env.action_low)
        self.policy = cfg.policy.build(obs_spec, action_dim)
        device = placement(cfg.device, cfg.policy, "device")
        if cfg.policy.kind != "vla":  # a VLA is on its card's device already
            self.policy.to(device)
        parl = cfg.method_parl()
        critic = QEnsemble(obs_spec, action_dim, parl.critic)
        low, high = torch.as_tensor(self.train_env.action_low), torch.as_tensor(self.train_env.action_high)
        self.agent = ParlAgent(self.policy, critic, parl, low, high, seed=cfg.seed, device=device)
        self.eval_seeds = [cfg.online.eval_seed + i for i in range(cfg.online.eval_episodes)]
        self.curve: list[dict] = []
        self._trust: list[dict[str, float]] = []  # OptimizedActions.trust() of the decisions since the last point
        # per training env: whether the critic acts in the episode it is running (rl/trust.py probation arms)
        self._critic_rows = np.zeros(cfg.online.num_envs, bool)
        typed_config.save(cfg, self.out / "config.yaml")
        # Every episode (demonstrations and rollouts) is committed to the episode store first and reaches
        # replay from there: a crash loses at most the episode being recorded.
        obs_keys = _obs_key_specs(env)
        store_path = self.out / "episodes"
        store = EpisodeStore(store_path) if (store_path / "zarr.json").is_file() else \
            EpisodeStore.create(store_path, rl_schema(obs_keys, action_dim, parl.num_samples))
        self.writer = store.writer(f"robot-parl session (pid {os.getpid()})")
        # the simulators take policy-space actions: their robot units are [-1, 1] (an identity map)
        self.feed = StoreFeed(store, list(obs_keys), LinearActionSpace(self.train_env.action_low,
                                                                       self.train_env.action_high))

    # acting ---------------------------------------------------------------------------------------

    def act_policy(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, None]:
        """The policy alone: one sample per state."""
        return self.agent.policy_actions(_torch_obs(obs)).numpy(), None

    def act_agent(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, torch.Tensor]:
        """Candidates from the policy, optimized and selected by the critic (where it is trusted)."""
        decision = self.agent.act(_torch_obs(obs))
        self._trust.append(decision.optimized.trust())
        return decision.actions.numpy(), decision.candidates

    def act_online(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, torch.Tensor]:
        """The training envs' acting: the critic's choice in the episodes it acts in (rl/trust.py)."""
        decision = self.agent.act(_torch_obs(obs), critic=torch.from_numpy(self._critic_rows))
        return decision.actions.numpy(), decision.candidates

    def _start_online(self, env_index: int, seed: int) -> None:
        self._critic_rows[env_index] = self.agent.critic_acts(_online_id(seed))

    def evaluate(self, act, seeds: list[int] | None = None) -> float:
        """Success rate on the fixed evaluation layouts (or on ``seeds``)."""
        return success_rate(self.eval_env, self.eval_seeds if seeds is None else seeds, act)

    # phases -------------------------------------------------------------------------------------

    def pretrain(self, progress: Callable[[str, int, int], None] | None = None) -> dict:
        """Demonstrations -> BC -> offline critic. Returns the success rates along the way."""
        cfg = self.cfg
        if len(self.feed.store):  # another run's episodes would become this one's data
            raise ConfigError("", f"{self.out} already holds a run ({len(self.feed.store)} episodes in its store): "
                                  f"resume it, or give another output directory")
        demos = self.file_demos if self.file_demos is not None else collect_demos(cfg, self.log)
        obs, actions = bc_pairs(demos, self.agent.device)
        counter = {"n": 0}

        def tick(phase: str, total: int):
            def f(*_):
                counter["n"] += 1
                if progress is not None:
                    progress(phase, counter["n"], total)
            return f

        train_bc(self.policy, obs, actions, cfg.demos.bc_steps, cfg.demos.bc_batch_size, self.agent.generator,
                 tick("bc", cfg.demos.bc_steps))
        report = {"demo_success": float(np.mean([r.success for r in demos])), "demo_transitions": len(actions)}
        report["bc_success"] = self.evaluate(self.act_policy)
        self.log(f"BC policy alone: {report['bc_success']:.1%} success on {len(self.eval_seeds)} episodes")
        for r in demos:  # a file's demonstrations were recorded by someone (teleop), the scripted expert's in sim
            self._commit(r, "sim" if self.file_demos is None else "teleop")
        self._ingest()
        counter["n"] = 0
        self.agent.train_offline(progress=tick("offline critic", self.agent.cfg.schedule.offline_steps))
        report["offline_agent_success"] = self.evaluate(self.act_agent)
        self.log(f"BC + offline critic: {report['offline_agent_success']:.1%} success")
        return report

    def finetune(self, progress: Callable[[str, int, int], None] | None = None) -> list[dict]:
        """The online phase: collect with the agent, train at the configured UTDs, evaluate periodically."""
        cfg = self.cfg.online
        agent = self.agent
        if not agent.online:
            agent.start_online()
        started = time.monotonic()
        if not self.curve:
            self._record(started)
        self._ingest()  # episodes committed after the checkpoint this session resumed from
        done = agent.counters["online_episodes"]

        def commit(rollout: Rollout) -> None:
            self._commit(rollout, "rollout")
            self._ingest()
            if progress is not None:
                progress("online", agent.counters["online_episodes"], cfg.episodes)

        while done < cfg.episodes:
            chunk = min(cfg.eval_every - done % cfg.eval_every, cfg.episodes - done)
            run_episodes(self.train_env, self.cfg.online_seeds(done, chunk), self.act_online,
                         final_candidates=self._final_candidates, on_episode=commit, on_start=self._start_online)
            done = agent.counters["online_episodes"]
            if done % cfg.eval_every == 0 or done == cfg.episodes:
                self._record(started)
            if done % cfg.checkpoint_every == 0 or done == cfg.episodes:
                self.save_checkpoint()
        return self.curve

    def _commit(self, rollout: Rollout, source: str) -> None:
        # a file's demonstrations come with outcomes someone gave; the simulator gives the others
        write_episode(self.writer, rollout.obs, rollout.actions, rollout.rewards, rollout.terminated, source,
                      rollout.candidates, self.agent.counters["policy_version"],
                      episode_id=_online_id(rollout.seed) if source == "rollout" else "",
                      outcome=Outcome("" if source == "teleop" else "sim"))

    def _ingest(self) -> None:
        """Feed newly committed episodes to replay; online ones are trained on at the configured UTDs."""
        for episode, online in self.feed.new_episodes(self.agent.sample_candidates):
            self.agent.add_episode(episode, online)
            if online and self.agent.online:
                self.agent.train_online()

    def _final_candidates(self, obs: dict[str, np.ndarray]) -> torch.Tensor:
        return self.agent.sample_candidates(_torch_obs(obs))

    def _record(self, started: float) -> None:
        c = self.agent.counters
        self._trust.clear()
        point = {"online_episodes": c["online_episodes"], "env_steps": c["online_env_steps"],
                 "agent_success": self.evaluate(self.act_agent), "policy_success": self.evaluate(self.act_policy),
                 "critic_updates": c["critic_updates"], "distill_updates": c["distill_updates"],
                 "critic_trusted": self.agent.trusted, "trust_z": round(self.agent.trust_z, 3),
                 "watch_z": round(self.agent.watch_z, 3), "trust_revoked": c["trust_revoked"],
                 "seconds": round(time.monotonic() - started, 1)}
        # on the evaluation layouts: what the critic claims over the policy's own samples, and how sure it is
        point.update(mean_trust(self._trust))
        self.curve.append(point)
        self.log(f"{self.cfg.method}: episodes {point['online_episodes']}: agent {point['agent_success']:.1%}, "
                 f"policy alone {point['policy_success']:.1%}")

    # checkpoints --------------------------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        """Save the agent and the curve so far under checkpoints/ (see runtime/resume.py)."""
        # store_position: how many of the store's episodes replay holds: they refill it on resume, later ones are fed
        score = self.curve[-1]["agent_success"] if self.curve else None
        return save_checkpoint(self.out / "checkpoints", f"episode_{self.agent.counters['online_episodes']:06d}",
                               self.agent, LocalRunState(self.feed.position, self.curve),
                               keep=self.cfg.online.keep_checkpoints, score=score)

    def resume(self) -> bool:
        """Load the latest checkpoint of this output directory, if there is one."""
        state = load_latest(self.out / "checkpoints", self.agent, LocalRunState)
        if state is None:
            return False
        self.curve = state.curve
        self.feed.refill(self.agent.replay, self.agent.sample_candidates, state.store_position)
        return True


@dataclass
class LocalRunState:
    """A local run's checkpoint state: how many of the store's episodes replay held (they refill it on resume;
    later ones are fed as new data) and the learning curve so far."""

    store_position: int = 0
    curve: list[dict[str, Any]] = field(default_factory=list)


def _obs_key_specs(env) -> dict[str, KeySpec]:
    """The store keys of a batched environment's observations (flat keys, one step each)."""
    if env.state_dim:
        return {"state": KeySpec("float32", (env.state_dim,))}
    keys = {f"images/{c}": KeySpec("uint8", (env.image_size, env.image_size, 3)) for c in env.cameras}
    if env.proprio_dim:
        keys["proprio"] = KeySpec("float32", (env.proprio_dim,))
    return keys
