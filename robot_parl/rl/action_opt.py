"""PA-RL action optimization: global top-k by the critic, then local ascent on Q inside a trust region.

Given N candidates per state from any base policy, keep the k with the best score, run T steps of
a <- clip(a + eta * grad_a score) on each survivor (clipped to the action bounds and, with a trust region, to
trust_region * sigma around the survivor's start, sigma the per-dimension spread of that state's N candidates)
and keep its best iterate (so a refined candidate never scores below where it started), optionally
let the replay action take the place of the worst survivor, and select one action per state by argmax or a
softmax sample. The score is the ensemble mean minus ``pessimism`` times the ensemble's spread.

Only ``critic.q(z, actions) -> [E, B, K]`` is used: any object with that method works.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import torch

from robot_parl.models import noise
from robot_parl.rl.config import ParlConfig


class HasQ(Protocol):
    def q(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor: ...


@dataclass
class OptimizedActions:
    """Scores are the ensemble mean minus ``pessimism`` x the ensemble's standard deviation."""

    actions: torch.Tensor  # [B, A] the selected action per state
    q: torch.Tensor  # [B] its score
    topk_actions: torch.Tensor  # [B, k, A] the refined survivors (replay action included when given)
    topk_q: torch.Tensor  # [B, k] their scores
    candidate_q: torch.Tensor  # [B, N] scores of all N candidates as given
    gain: torch.Tensor  # [E, B] per head: Q of the selected action minus the mean Q of the N candidates

    def trust(self) -> dict[str, float]:
        """For logs: the gain the critic claims over the policy's own candidates (mean over heads and states), how
        much its heads disagree about it, and the share of states where they agree it is a gain (mean gain over the
        heads above their standard deviation). A claimed gain within the heads' disagreement says the critic cannot
        tell the candidates apart yet."""
        mean, spread = self.gain.mean(0), self.gain.std(0, unbiased=False)
        return {"gain": mean.mean().item(), "gain_spread": spread.mean().item(),
                "sure": (mean > spread).float().mean().item()}


def mean_trust(records: list[dict[str, float]]) -> dict[str, float]:
    """The mean of :meth:`OptimizedActions.trust` records, keys prefixed ``critic_`` (empty for no records)."""
    return {f"critic_{k}": round(sum(r[k] for r in records) / len(records), 5) for k in (records[0] if records else ())}


def _finite(x: torch.Tensor, what: str) -> torch.Tensor:
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).sum().item()
        raise FloatingPointError(f"{what} has {bad} NaN or infinite values")
    return x


def _scores(critic: HasQ, z: torch.Tensor, actions: torch.Tensor, pessimism: float) -> tuple[torch.Tensor,
                                                                                          torch.Tensor]:
    """(score [B, K], per-head Q [E, B, K])."""
    q = _finite(critic.q(z, actions), "critic Q")
    return q.mean(0) - pessimism * q.std(0, unbiased=False), q


def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x [B, N, ...] indexed by idx [B, k] along dim 1."""
    if x.dim() == 2:
        return x.gather(1, idx)
    return x.gather(1, idx[..., None].expand(*idx.shape, x.shape[-1]))


def optimize_actions(
    critic: HasQ,
    z: torch.Tensor,
    candidates: torch.Tensor,
    cfg: ParlConfig,
    low: torch.Tensor,
    high: torch.Tensor,
    replay_actions: torch.Tensor | None = None,
    select: Literal["argmax", "softmax"] = "argmax",
    generator: torch.Generator | None = None,
) -> OptimizedActions:
    """Global top-k then T clipped gradient-ascent steps on Q; see the module docstring.

    z [B, D] from ``critic.encode`` (once per state), candidates [B, N, A], low/high [A],
    replay_actions [B, A] or None.
    """
    if candidates.dim() != 3:
        raise ValueError(f"candidates must be [B, N, A], got {tuple(candidates.shape)}")
    b, n, a_dim = candidates.shape
    if n < cfg.top_k:
        raise ValueError(f"got {n} candidates per state but top_k={cfg.top_k}; need N >= k")
    if low.shape != (a_dim,) or high.shape != (a_dim,):
        raise ValueError(f"low and high must be [{a_dim}], got {tuple(low.shape)} and {tuple(high.shape)}")
    if not bool((low < high).all()):
        raise ValueError(f"action bounds need low < high in every dimension, "
                         f"got low={low.tolist()} high={high.tolist()}")
    _finite(candidates, "candidates")
    if replay_actions is not None:
        if replay_actions.shape != (b, a_dim):
            raise ValueError(f"replay_actions must be [{b}, {a_dim}], got {tuple(replay_actions.shape)}")
        _finite(replay_actions, "replay_actions")
    if select not in ("argmax", "softmax"):
        raise ValueError(f"select must be 'argmax' or 'softmax', got {select!r}")

    z = z.detach()
    with torch.no_grad():
        candidate_q, candidate_heads = _scores(critic, z, candidates, cfg.pessimism)
    top_q, top_idx = candidate_q.topk(cfg.top_k, dim=1)
    start = _gather(candidates, top_idx).detach()
    best_a, best_q = start.clone(), top_q.clone()
    best_heads = candidate_heads.gather(2, top_idx.expand(candidate_heads.shape[0], -1, -1))  # [E, B, k]

    if cfg.local_steps > 0 and cfg.step_size > 0:
        lo, hi = low.expand_as(start), high.expand_as(start)
        if cfg.trust_region > 0:
            sigma = candidates.std(1, unbiased=False)[:, None]  # [B, 1, A]
            lo = torch.maximum(start - cfg.trust_region * sigma, lo)
            hi = torch.minimum(start + cfg.trust_region * sigma, hi)
            lo = torch.minimum(lo, hi)  # a candidate outside the bounds is pulled onto them
        a = start
        for step in range(cfg.local_steps):
            a = a.detach().requires_grad_(True)
            with torch.enable_grad():
                score, heads = _scores(critic, z, a, cfg.pessimism)
                (grad,) = torch.autograd.grad(score.sum(), a)
            if step > 0:  # the start's score is known
                _keep_best(best_a, best_q, best_heads, a.detach(), score.detach(), heads.detach())
            a = torch.maximum(torch.minimum(a.detach() + cfg.step_size * _finite(grad, "dQ/da"), hi), lo)
        with torch.no_grad():
            score, heads = _scores(critic, z, a, cfg.pessimism)
        _keep_best(best_a, best_q, best_heads, a, score, heads)

    rows = torch.arange(b, device=best_q.device)
    if replay_actions is not None:
        with torch.no_grad():
            replay_q, replay_heads = _scores(critic, z, replay_actions[:, None], cfg.pessimism)
        worst = best_q.argmin(dim=1)
        best_a[rows, worst] = replay_actions.to(best_a.dtype)
        best_q[rows, worst] = replay_q[:, 0]
        best_heads[:, rows, worst] = replay_heads[..., 0]

    if select == "argmax":
        choice = best_q.argmax(dim=1)
    else:
        probs = torch.softmax(best_q / cfg.softmax_temperature, dim=1)
        choice = noise.multinomial(probs, generator)[:, 0]
    gain = best_heads[:, rows, choice] - candidate_heads.mean(-1)
    return OptimizedActions(best_a[rows, choice], best_q[rows, choice], best_a, best_q, candidate_q, gain)


def _keep_best(best_a: torch.Tensor, best_q: torch.Tensor, best_heads: torch.Tensor, a: torch.Tensor,
               q: torch.Tensor, heads: torch.Tensor) -> None:
    better = q > best_q
    best_q[better] = q[better]
    best_a[better] = a[better]
    best_heads[:, better] = heads[:, better]
