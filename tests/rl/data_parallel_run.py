"""A few PA-RL updates of a small agent, as one process or as a rank of ``torchrun`` (tests/rl/test_data_parallel.py).

Rank 0 (or the single process) fills replay with the same episodes and makes the updates; every rank writes the
critic's and the policy's parameters before (startR) and after (rankR), so the test can check that the ranks agree.

    python tests/rl/data_parallel_run.py OUT_DIR [--noisy]
    torchrun --nproc-per-node 2 tests/rl/data_parallel_run.py OUT_DIR [--noisy | --share]

Without ``--noisy`` every update is a function of its batch alone (Gaussian policy, no CQL random actions, the
target's min over every head), so a 2-rank run must give a single process's parameters; with it, a diffusion policy
and CQL draw noise, each rank its own. With ``--share`` the ranks only pass a batch of camera images, proprio and
instructions (``sample_batch``) and write the rows each got.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from robot_parl.models.base import ObsSpec
from robot_parl.models.diffusion import DiffusionConfig, DiffusionPolicy
from robot_parl.models.gaussian import GaussianConfig, GaussianPolicy
from robot_parl.rl.agent import ParlAgent
from robot_parl.rl.calql import CriticBatch
from robot_parl.rl.config import CriticConfig, ParlConfig
from robot_parl.rl.critic import QEnsemble
from robot_parl.rl.data_parallel import Ranks
from robot_parl.rl.replay import Episode
from robot_parl.tensor_tree import save_tree

CRITIC_UPDATES, DISTILL_UPDATES = 6, 4


def build(noisy: bool, batch: int) -> ParlAgent:
    torch.manual_seed(0)
    spec = ObsSpec(state_dim=3)
    critic = CriticConfig(ensemble_size=2, target_heads=2, hidden_dims=(16,), state_hidden_dims=(16,),
                          embedding_dim=16, batch_size=batch, cql_alpha=0.5 if noisy else 0.0)
    cfg = ParlConfig(num_samples=4, top_k=2, local_steps=1, step_size=0.05, trust_min_z=0, critic=critic)
    policy = DiffusionPolicy(spec, 2, DiffusionConfig(hidden_dim=16, num_blocks=1, obs_hidden_dims=(16,), obs_dim=16)) \
        if noisy else GaussianPolicy(spec, 2, GaussianConfig(hidden_dims=(16, 16)))
    return ParlAgent(policy, QEnsemble(spec, 2, critic), cfg, -torch.ones(2), torch.ones(2), seed=0)


def fill(agent: ParlAgent) -> None:
    for i in range(6):
        g = torch.Generator().manual_seed(i)
        obs = {"state": torch.randn(9, 3, generator=g)}
        rewards = -torch.ones(8)
        rewards[-1] = float(i % 2) - 1.0
        agent.add_episode(Episode(obs, torch.rand(8, 2, generator=g) * 2 - 1, rewards, bool(i % 2),
                                  agent.sample_candidates(obs)), online=i >= 3)


def sample_batch(rows: int = 6) -> CriticBatch:
    """A batch as a VLA session's replay gives it: uint8 images, proprio and per-row instructions."""
    g = torch.Generator().manual_seed(1)

    def obs():
        return {"images": {"front": torch.randint(0, 255, (rows, 3, 8, 8), generator=g, dtype=torch.uint8)},
                "proprio": torch.randn(rows, 4, generator=g), "instruction": [f"task {i}" for i in range(rows)]}

    return CriticBatch(obs(), torch.randn(rows, 2, generator=g), torch.randn(rows, generator=g),
                       torch.rand(rows, generator=g), obs(), torch.randn(rows, generator=g),
                       torch.randn(rows, 3, 2, generator=g), torch.randn(rows, 3, 2, generator=g))


def share(out: Path) -> None:
    ranks = Ranks.from_env("cpu")
    mine = ranks.share(sample_batch() if ranks.lead else None)
    save_tree(out / f"share{ranks.rank}.safetensors", {"images": mine.obs["images"]["front"],
                                                       "next_proprio": mine.next_obs["proprio"],
                                                       "candidates": mine.candidates})
    (out / f"share{ranks.rank}.json").write_text(json.dumps(mine.obs["instruction"]))
    ranks.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--noisy", action="store_true")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--share", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.share:
        return share(Path(args.out))
    agent = build(args.noisy, args.batch)
    ranks = Ranks.from_env("cpu")
    if ranks is None or ranks.lead:
        fill(agent)
    if ranks is not None:
        agent.join(ranks)
    rank = ranks.rank if ranks is not None else 0

    def save(name: str) -> None:
        save_tree(Path(args.out) / f"{name}.safetensors", {"critic": agent.critic.state_dict(),
                                                          "policy": agent.policy.sync_state(),
                                                          "counters": agent.counters})

    save(f"start{rank}")
    if ranks is None or ranks.lead:
        agent.start_online()
        for _ in range(CRITIC_UPDATES):
            agent.critic_update()
        for _ in range(DISTILL_UPDATES):
            agent.distill_update()
        if ranks is not None:
            ranks.announce("stop")
    else:
        agent.follow()
    save(f"rank{rank}")
    if ranks is not None:
        ranks.close()


if __name__ == "__main__":
    main()
