"""Policy improvement by supervised distillation of critic-optimized actions.

PA-RL's policy step: for each state, optimize the base policy's candidates with the critic (the
replay action takes the place of the worst survivor), select one by argmax or softmax(Q), and train
the policy towards it with its own supervised loss. No policy gradient, no log-probs.

Only where the critic is sure: a state's target is distilled when the ensemble's heads agree that it beats the
policy's own candidates (``OptimizedActions.sure(gate)``). Elsewhere the policy is left as it is: a young
critic's guesses, distilled, made a 99% policy a 47% one within 25 episodes (issue 24).
"""

from __future__ import annotations

import torch

from robot_parl.models.base import BasePolicy
from robot_parl.models.encoders import select_obs
from robot_parl.rl.action_opt import optimize_actions
from robot_parl.rl.calql import CriticBatch
from robot_parl.rl.config import ParlConfig
from robot_parl.rl.critic import QEnsemble


def distill_step(policy: BasePolicy, critic: QEnsemble, batch: CriticBatch, cfg: ParlConfig, low: torch.Tensor,
                 high: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, float]:
    """One distillation step on the batch's states where the critic is sure (none: no step); returns the policy's
    metrics, the targets' mean score and the share of states distilled."""
    with torch.no_grad():
        z = critic.encode(batch.obs)
    opt = optimize_actions(critic, z, batch.candidates, cfg, low, high, replay_actions=batch.actions,
                           select=cfg.distill_select, generator=generator)
    sure = opt.sure(cfg.gate).nonzero()[:, 0]
    out = {"distill_target_q": opt.q.mean().item(), "distill_kept": sure.numel() / opt.q.numel()}
    if sure.numel() == 0:
        return out
    metrics = policy.sl_update(select_obs(batch.obs, sure), opt.actions[sure].detach(), cfg.distill_micro_batch)
    return {f"distill_{k}": v for k, v in metrics.items()} | out
