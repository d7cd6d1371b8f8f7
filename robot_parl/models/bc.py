"""Behaviour cloning: the supervised entry point shared by every policy class."""

from __future__ import annotations

from collections.abc import Callable

import torch

from robot_parl.models.base import BasePolicy
from robot_parl.models.encoders import Obs, batch_size_of, select_obs


def train_bc(policy: BasePolicy, obs: Obs, actions: torch.Tensor, steps: int, batch_size: int,
             generator: torch.Generator | None = None,
             progress: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, float]:
    """``steps`` supervised steps of the policy's own loss on uniformly drawn (obs, action) pairs; ``progress``
    gets each step's number (from 1) and metrics."""
    n = batch_size_of(obs)
    if actions.shape[0] != n:
        raise ValueError(f"{n} observations but {actions.shape[0]} actions")
    if n == 0:
        raise ValueError("behaviour cloning needs at least one (observation, action) pair")
    metrics: dict[str, float] = {}
    for step in range(1, steps + 1):
        idx = torch.randint(0, n, (batch_size,), generator=generator)
        metrics = policy.sl_update(select_obs(obs, idx), actions[idx])
        if progress is not None:
            progress(step, metrics)
    return metrics
