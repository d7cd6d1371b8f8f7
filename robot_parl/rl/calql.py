"""Cal-QL critic loss for PA-RL (Nakamoto et al. 2023, as used by PA-RL).

TD: target = r + discount * min over 2 random heads of the target critic at the optimized
next action. CQL: log-sum-exp of Q over uniform random actions, the optimized current and next
actions and the data action, minus Q of the data action. Cal-QL: the Q-values of the optimized
(policy) actions are lower-bounded by the Monte-Carlo return of the state, so the CQL term never
pushes them below what the behaviour already achieved. PA-RL has no policy log-probs, so the
log-sum-exp is not importance-weighted.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from robot_parl.models import noise
from robot_parl.models.encoders import Obs, obs_to
from robot_parl.rl.action_opt import optimize_actions
from robot_parl.rl.config import ParlConfig
from robot_parl.rl.critic import QEnsemble


@dataclass
class CriticBatch:
    """A batch of transitions with the base policy's candidates at s and s'."""

    obs: Obs
    actions: torch.Tensor  # [B, A]
    rewards: torch.Tensor  # [B] discounted sum of the rewards up to s' (one step, or n with n-step returns)
    discounts: torch.Tensor  # [B] gamma^steps to s', 0 where s' is terminal
    next_obs: Obs
    mc_returns: torch.Tensor  # [B]
    candidates: torch.Tensor  # [B, N, A] base-policy samples at s
    next_candidates: torch.Tensor  # [B, N, A] base-policy samples at s'

    def to(self, device: torch.device | str) -> CriticBatch:
        """The batch with every tensor on ``device`` (replay lives in host memory; updates run on the device)."""
        return CriticBatch(**{f.name: obs_to(getattr(self, f.name), device) for f in dataclasses.fields(self)})


def random_heads(ensemble: int, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``count`` distinct head indices drawn uniformly."""
    return torch.randperm(ensemble, generator=generator)[:count]


def td_target(target_q: torch.Tensor, rewards: torch.Tensor, discounts: torch.Tensor,
              heads: torch.Tensor) -> torch.Tensor:
    """r + discount * min over ``heads`` of target_q [E, B]."""
    return rewards + discounts * target_q[heads].min(dim=0).values


def cql_penalty(q_data: torch.Tensor, q_policy: torch.Tensor, q_random: torch.Tensor,
                mc_returns: torch.Tensor | None, temperature: float) -> torch.Tensor:
    """Conservative penalty per head, averaged: T * logsumexp(Q / T over all actions) - Q(s, a_data).

    q_data [E, B], q_policy [E, B, P], q_random [E, B, R]; with ``mc_returns`` [B] (Cal-QL) the
    policy actions' Q-values are first raised to at least the Monte-Carlo return.
    """
    if mc_returns is not None:
        q_policy = torch.maximum(q_policy, mc_returns[None, :, None])
    all_q = torch.cat([q_random, q_policy, q_data[..., None]], dim=-1)
    lse = temperature * torch.logsumexp(all_q / temperature, dim=-1)
    return (lse - q_data).mean()


def critic_loss(critic: QEnsemble, target: QEnsemble, batch: CriticBatch, cfg: ParlConfig, low: torch.Tensor,
                high: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The Cal-QL loss on one batch, and metrics for logging."""
    ccfg = cfg.critic
    z = critic.encode(batch.obs, augment=True, generator=generator)
    with torch.no_grad():
        z_next = critic.encode(batch.next_obs)
        next_opt = optimize_actions(critic, z_next, batch.next_candidates, cfg, low, high)
        heads = random_heads(critic.ensemble_size, ccfg.target_heads, generator)
        target_q = target.q(target.encode(batch.next_obs), next_opt.actions)
        y = td_target(target_q, batch.rewards, batch.discounts, heads)
        cur_opt = optimize_actions(critic, z.detach(), batch.candidates, cfg, low, high)

    q_data = critic.q(z, batch.actions)  # [E, B]
    td = (q_data - y[None]).pow(2).mean()
    loss = td
    metrics = {"td_loss": td.item(), "q_data": q_data.mean().item(), "target": y.mean().item()}
    if ccfg.cql_alpha > 0:
        b, a_dim = batch.actions.shape
        rand = low + (high - low) * noise.rand((b, ccfg.cql_num_random, a_dim), generator, low.device)
        policy_actions = torch.cat([cur_opt.topk_actions, next_opt.topk_actions], dim=1)
        cql = cql_penalty(q_data, critic.q(z, policy_actions), critic.q(z, rand),
                          batch.mc_returns if ccfg.calql else None, ccfg.cql_temperature)
        loss = loss + ccfg.cql_alpha * cql
        metrics["cql"] = cql.item()
    if not torch.isfinite(loss):
        raise FloatingPointError(f"critic loss is {loss.item()} (td {td.item()})")
    metrics["critic_loss"] = loss.item()
    return loss, metrics
