"""PA-RL action optimization: global top-k by the critic, then local gradient ascent on Q.

Given N candidates per state from any base policy, keep the k with the highest ensemble-mean Q, run
T steps of a <- clip(a + eta * grad_a Q(s, a), low, high) on each survivor and keep its best iterate
(so a refined candidate never scores below where it started), optionally let the replay action take
the place of the worst survivor, and select one action per state by argmax or a softmax(Q) sample.

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
    actions: torch.Tensor  # [B, A] the selected action per state
    q: torch.Tensor  # [B] its ensemble-mean Q
    topk_actions: torch.Tensor  # [B, k, A] the refined survivors (replay action included when given)
    topk_q: torch.Tensor  # [B, k] their ensemble-mean Q
    candidate_q: torch.Tensor  # [B, N] ensemble-mean Q of all N candidates as given


def _finite(x: torch.Tensor, what: str) -> torch.Tensor:
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).sum().item()
        raise FloatingPointError(f"{what} has {bad} NaN or infinite values")
    return x


def _scores(critic: HasQ, z: torch.Tensor, actions: torch.Tensor, reduce: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(ensemble mean, reduced-for-ascent) Q, each [B, K]."""
    q = _finite(critic.q(z, actions), "critic Q")
    mean = q.mean(0)
    return mean, (mean if reduce == "mean" else q.min(0).values)


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
        candidate_q, _ = _scores(critic, z, candidates, cfg.reduce)
    top_q, top_idx = candidate_q.topk(cfg.top_k, dim=1)
    start = _gather(candidates, top_idx).detach()

    best_a, best_q = start.clone(), top_q.clone()
    a = start
    for _ in range(cfg.local_steps):
        a = a.detach().requires_grad_(True)
        with torch.enable_grad():
            mean, ascent = _scores(critic, z, a, cfg.reduce)
            (grad,) = torch.autograd.grad(ascent.sum(), a)
        _keep_best(best_a, best_q, a.detach(), mean.detach())
        a = torch.maximum(torch.minimum(a.detach() + cfg.step_size * _finite(grad, "dQ/da"), high), low)
    if cfg.local_steps > 0:
        with torch.no_grad():
            mean, _ = _scores(critic, z, a, cfg.reduce)
        _keep_best(best_a, best_q, a, mean)

    if replay_actions is not None:
        with torch.no_grad():
            replay_q, _ = _scores(critic, z, replay_actions[:, None], cfg.reduce)
        worst = best_q.argmin(dim=1)
        rows = torch.arange(b, device=best_q.device)
        best_a[rows, worst] = replay_actions.to(best_a.dtype)
        best_q[rows, worst] = replay_q[:, 0]

    if select == "argmax":
        choice = best_q.argmax(dim=1)
    else:
        probs = torch.softmax(best_q / cfg.softmax_temperature, dim=1)
        choice = noise.multinomial(probs, generator)[:, 0]
    rows = torch.arange(b, device=best_q.device)
    return OptimizedActions(best_a[rows, choice], best_q[rows, choice], best_a, best_q, candidate_q)


def _keep_best(best_a: torch.Tensor, best_q: torch.Tensor, a: torch.Tensor, q: torch.Tensor) -> None:
    better = q > best_q
    best_q[better] = q[better]
    best_a[better] = a[better]
