"""`robot-parl pretrain`: the offline phase alone, before a session: behaviour cloning of the base policy on
the offline store's demonstrations (optional: a VLA usually arrives fine-tuned), then offline critic
updates (Cal-QL) on them. It writes the learner's first checkpoint: `robot-parl learner` with the same
``--out`` resumes from it and goes straight online.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from robot_parl.data.episode_store import EpisodeStore, StoreError
from robot_parl.models.bc import train_bc
from robot_parl.models.encoders import obs_to, unflatten_obs
from robot_parl.rl.store_episodes import StoreFeed
from robot_parl.runtime.config import FinetuneConfig, build_agent
from robot_parl.runtime.resume import LearnerState, save_checkpoint
from robot_parl.typed_config import ConfigError


def pretrain(cfg: FinetuneConfig, out: str | Path, bc_steps: int = 0, bc_batch_size: int = 64,
             log: Callable[[str], None] = print) -> Path:
    """BC (``bc_steps`` supervised steps) and ``parl.schedule.offline_steps`` critic updates; returns the checkpoint."""
    if not cfg.learner.offline_store:
        raise ConfigError("learner.offline_store", "pretrain needs an episode store of demonstrations "
                                                   "(robot-parl collect, data convert or import-lerobot)")
    spec = cfg.spec()
    agent, action_space = build_agent(cfg, spec)
    store = EpisodeStore(cfg.learner.offline_store)
    obs_keys = list(spec.observation_keys())
    missing = sorted(set(obs_keys + ["action"]) - set(store.schema))
    if missing or len(store) == 0:
        raise StoreError(f"{store.path} cannot pre-train this robot's policy: "
                         + (f"it lacks keys {missing}" if missing else "it holds no episodes"))
    chosen = [e.index for e in store.episodes() if cfg.learner.offline_selection()(e)]
    if bc_steps:  # demonstrations are stored in robot units; the policy learns them in its own space
        frames = [store.episode(i, obs_keys + ["action"]) for i in chosen]
        obs = unflatten_obs({k: torch.from_numpy(np.concatenate([f[k][:-1] for f in frames])) for k in obs_keys})
        obs["instruction"] = [store.info(i).instruction for i, f in zip(chosen, frames) for _ in f["action"][:-1]]
        actions = torch.from_numpy(action_space.from_robot(np.concatenate([f["action"][:-1] for f in frames])))
        obs, actions = obs_to(obs, agent.device), actions.to(agent.device)  # where the policy trains

        def progress(step: int, metrics: dict[str, float]) -> None:
            if step % 50 == 1 or step == bc_steps:
                log(f"BC step {step}/{bc_steps}: loss {metrics['loss']:.4f}")

        train_bc(agent.policy, obs, actions, bc_steps, min(bc_batch_size, len(actions)),
                 torch.Generator().manual_seed(cfg.seed), progress)
    feed = StoreFeed(store, obs_keys, action_space, select=cfg.learner.offline_selection())
    for episode, online in feed.new_episodes(agent.sample_candidates):
        agent.add_episode(episode, online)
    steps = agent.cfg.schedule.offline_steps
    log(f"offline critic: {steps} updates on {len(agent.replay)} transitions from {len(chosen)} episodes")

    def critic_progress(step: int, metrics: dict[str, float]) -> None:
        if step % 100 == 1 or step == steps:
            log(f"critic update {step}/{steps}: loss {metrics['critic_loss']:.4f}")

    agent.train_offline(steps, critic_progress)
    return save_checkpoint(Path(out) / "checkpoints", "pretrained", agent,
                           LearnerState(offline_position=feed.position, offline_done=True))
