"""DDPM diffusion policy: a few denoising steps, cosine schedule, MLP-ResNet, EMA weights for sampling.

Samples are clipped to the action bounds [-1, 1] after every denoising step, as in IDQL and PA-RL.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robot_parl.models import noise
from robot_parl.models.base import ImageInput, ObsSpec, TorchPolicy
from robot_parl.models.encoders import Obs
from robot_parl.typed_config import require


@dataclass
class DiffusionConfig:
    denoising_steps: int = 5
    hidden_dim: int = 256
    num_blocks: int = 3
    time_dim: int = 32
    obs_hidden_dims: tuple[int, ...] = (256,)
    obs_dim: int = 256
    dropout: float = 0.1
    lr: float = 3e-4
    ema: float = 0.995

    def validate(self) -> None:
        require(self.denoising_steps >= 1, "denoising_steps", "an integer >= 1", self.denoising_steps)
        require(self.hidden_dim > 0, "hidden_dim", "a positive integer", self.hidden_dim)
        require(self.num_blocks >= 1, "num_blocks", "an integer >= 1", self.num_blocks)
        require(self.time_dim >= 2 and self.time_dim % 2 == 0, "time_dim", "an even integer >= 2", self.time_dim)
        require(0.0 <= self.dropout < 1.0, "dropout", "a number in [0, 1)", self.dropout)
        require(self.lr > 0, "lr", "a positive number", self.lr)
        require(0.0 <= self.ema < 1.0, "ema", "a number in [0, 1)", self.ema)


def cosine_betas(steps: int, s: float = 0.008) -> torch.Tensor:
    """The cosine noise schedule (Nichol & Dhariwal) as per-step betas."""
    t = torch.linspace(0, steps, steps + 1, dtype=torch.float64) / steps
    alpha_bar = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    betas = 1 - alpha_bar[1:] / alpha_bar[:-1]
    return betas.clamp(0, 0.999).float()


class _ResBlock(nn.Module):
    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(dropout), nn.LayerNorm(dim), nn.Linear(dim, 4 * dim), nn.GELU(),
                                 nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class NoiseNet(nn.Module):
    """epsilon(x_t, t, s): observation encoder + MLP-ResNet over (x_t, time embedding, features)."""

    def __init__(self, obs_spec: ObsSpec, action_dim: int, cfg: DiffusionConfig, images: ImageInput | None):
        super().__init__()
        self.encoder = obs_spec.policy_encoder(cfg.obs_hidden_dims, cfg.obs_dim, images)
        self.time_dim = cfg.time_dim
        self.time_mlp = nn.Sequential(nn.Linear(cfg.time_dim, 2 * cfg.time_dim), nn.GELU(),
                                      nn.Linear(2 * cfg.time_dim, cfg.time_dim))
        self.inp = nn.Linear(action_dim + cfg.time_dim + cfg.obs_dim, cfg.hidden_dim)
        self.blocks = nn.Sequential(*[_ResBlock(cfg.hidden_dim, cfg.dropout) for _ in range(cfg.num_blocks)])
        self.out = nn.Sequential(nn.LayerNorm(cfg.hidden_dim), nn.GELU(), nn.Linear(cfg.hidden_dim, action_dim))

    def time_embedding(self, t: torch.Tensor) -> torch.Tensor:
        half = self.time_dim // 2
        freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device) / half)
        angles = t.float()[:, None] * freqs[None]
        return self.time_mlp(torch.cat([angles.sin(), angles.cos()], dim=-1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        h = self.inp(torch.cat([x, self.time_embedding(t), features], dim=-1))
        return self.out(self.blocks(h))


class DiffusionPolicy(TorchPolicy):
    """DDPM over actions, conditioned on the observation; trained with the noise-prediction loss."""

    def __init__(self, obs_spec: ObsSpec, action_dim: int, cfg: DiffusionConfig | None = None,
                 images: ImageInput | None = None):
        super().__init__()
        self.cfg = cfg = cfg or DiffusionConfig()
        self.action_dim = action_dim
        self.lr = cfg.lr
        self.net = NoiseNet(obs_spec, action_dim, cfg, images)
        self.ema_net = copy.deepcopy(self.net).requires_grad_(False)
        betas = cosine_betas(cfg.denoising_steps)
        alphas = 1 - betas
        self.register_buffer("betas", betas)
        self.register_buffer("alphas", alphas)
        self.register_buffer("alpha_bars", torch.cumprod(alphas, 0))
        self._init_optimizer()

    def loss(self, obs: Obs, actions: torch.Tensor) -> torch.Tensor:
        b = actions.shape[0]
        t = torch.randint(0, self.cfg.denoising_steps, (b,), device=actions.device)
        eps = torch.randn_like(actions)
        ab = self.alpha_bars[t][:, None]
        noisy = ab.sqrt() * actions + (1 - ab).sqrt() * eps
        return F.mse_loss(self.net(noisy, t, self.net.encoder(obs, augment=True)), eps)

    @torch.no_grad()
    def after_update(self) -> None:
        for ema_p, p in zip(self.ema_net.parameters(), self.net.parameters()):
            ema_p.lerp_(p, 1 - self.cfg.ema)

    @torch.no_grad()
    def sample(self, obs: Obs, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        self.eval()
        features = self.ema_net.encoder(obs)
        b = features.shape[0]
        features = features.repeat_interleave(n, dim=0)
        x = noise.randn((b * n, self.action_dim), generator, features.device)
        for step in reversed(range(self.cfg.denoising_steps)):
            t = torch.full((b * n,), step, device=x.device, dtype=torch.long)
            eps = self.ema_net(x, t, features)
            x = (x - self.betas[step] / (1 - self.alpha_bars[step]).sqrt() * eps) / self.alphas[step].sqrt()
            if step > 0:
                sigma = ((1 - self.alpha_bars[step - 1]) / (1 - self.alpha_bars[step]) * self.betas[step]).sqrt()
                x = x + sigma * noise.randn(x.shape, generator, x.device)
            x = x.clamp(-1.0, 1.0)
        return x.view(b, n, self.action_dim)
