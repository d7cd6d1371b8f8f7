"""Behaviour cloning: the supervised entry point shared by every policy class."""

from __future__ import annotations

from collections.abc import Callable

import torch

from robot_parl.models.base import BasePolicy
from robot_parl.models.encoders import Obs, batch_size_of, flatten_obs, unflatten_obs


def train_bc(policy: BasePolicy, obs: Obs, actions: torch.Tensor, steps: int, batch_size: int,
             generator: torch.Generator | None = None,
             progress: Callable[[dict[str, float]], None] | None = None) -> dict[str, float]:
    """``steps`` supervised steps of the policy's own loss on uniformly drawn (obs, action) pairs."""
    n = batch_size_of(obs)
    if actions.shape[0] != n:
        raise ValueError(f"{n} observations but {actions.shape[0]} actions")
    if n == 0:
        raise ValueError("behaviour cloning needs at least one (observation, action) pair")
    flat = flatten_obs(obs)
    metrics: dict[str, float] = {}
    for _ in range(steps):
        idx = torch.randint(0, n, (batch_size,), generator=generator)
        metrics = policy.sl_update(unflatten_obs({k: v[idx] for k, v in flat.items()}), actions[idx])
        if progress is not None:
            progress(metrics)
    return metrics
