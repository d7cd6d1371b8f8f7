"""Tanh-Gaussian MLP policy trained by negative log-likelihood."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from robot_parl.models import noise
from robot_parl.models.base import ImageInput, ObsSpec, TorchPolicy
from robot_parl.models.encoders import Obs
from robot_parl.typed_config import require

# Data actions sit on the bounds after clipping; atanh(+-1) is infinite.
_EDGE = 0.999


@dataclass
class GaussianConfig:
    hidden_dims: tuple[int, ...] = (256, 256)
    lr: float = 3e-4
    min_log_std: float = -5.0
    max_log_std: float = 1.0

    def validate(self) -> None:
        require(len(self.hidden_dims) >= 1, "hidden_dims", "a non-empty list of widths", self.hidden_dims)
        require(self.lr > 0, "lr", "a positive number", self.lr)
        require(self.min_log_std < self.max_log_std, "min_log_std", f"a number < max_log_std={self.max_log_std}",
                self.min_log_std)


class GaussianPolicy(TorchPolicy):
    """a = tanh(u), u ~ N(mu(s), sigma(s)^2)."""

    def __init__(self, obs_spec: ObsSpec, action_dim: int, cfg: GaussianConfig | None = None,
                 images: ImageInput | None = None):
        super().__init__()
        self.cfg = cfg = cfg or GaussianConfig()
        self.action_dim = action_dim
        self.lr = cfg.lr
        self.encoder = obs_spec.policy_encoder(cfg.hidden_dims[:-1], cfg.hidden_dims[-1], images)
        self.head = nn.Sequential(nn.GELU(), nn.Linear(cfg.hidden_dims[-1], 2 * action_dim))
        self._init_optimizer()

    def _dist(self, obs: Obs) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.head(self.encoder(obs, augment=self.training)).chunk(2, dim=-1)
        return mean, log_std.clamp(self.cfg.min_log_std, self.cfg.max_log_std)

    def loss(self, obs: Obs, actions: torch.Tensor) -> torch.Tensor:
        mean, log_std = self._dist(obs)
        a = actions.clamp(-_EDGE, _EDGE)
        u = torch.atanh(a)
        log_prob = -0.5 * ((u - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
        log_prob = log_prob - torch.log1p(-a.pow(2))
        return -log_prob.sum(-1).mean()

    @torch.no_grad()
    def sample(self, obs: Obs, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        self.eval()
        mean, log_std = self._dist(obs)
        eps = noise.randn((mean.shape[0], n, self.action_dim), generator, mean.device)
        return torch.tanh(mean[:, None] + log_std.exp()[:, None] * eps)
