"""Policy improvement by supervised distillation of critic-optimized actions.

PA-RL's policy step: for each state, optimize the base policy's candidates with the critic (the
replay action takes the place of the worst survivor), select one by argmax or softmax(Q), and train
the policy towards it with its own supervised loss. No policy gradient, no log-probs.
"""

from __future__ import annotations

import torch

from robot_parl.models.base import BasePolicy, GradientSync
from robot_parl.rl.action_opt import optimize_actions
from robot_parl.rl.calql import CriticBatch
from robot_parl.rl.config import ParlConfig
from robot_parl.rl.critic import QEnsemble


def distill_step(policy: BasePolicy, critic: QEnsemble, batch: CriticBatch, cfg: ParlConfig, low: torch.Tensor,
                 high: torch.Tensor, generator: torch.Generator | None = None,
                 sync: GradientSync | None = None) -> dict[str, float]:
    """One distillation step on a batch (``sync``: a data-parallel learner's gradient average); returns the
    policy's metrics plus the targets' mean score."""
    with torch.no_grad():
        z = critic.encode(batch.obs)
    opt = optimize_actions(critic, z, batch.candidates, cfg, low, high, replay_actions=batch.actions,
                           select=cfg.distill_select, generator=generator)
    metrics = policy.sl_update(batch.obs, opt.actions.detach(), cfg.distill_micro_batch, sync)
    return {f"distill_{k}": v for k, v in metrics.items()} | {"distill_target_q": opt.q.mean().item()}
