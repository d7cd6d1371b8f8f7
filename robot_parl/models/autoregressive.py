"""Autoregressive policy: each action dimension is a token over uniform bins, predicted by a small
causal transformer conditioned on the observation; trained with token cross-entropy."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robot_parl.models import noise
from robot_parl.models.base import ImageInput, ObsSpec, TorchPolicy
from robot_parl.models.encoders import Obs
from robot_parl.typed_config import require


@dataclass
class AutoregressiveConfig:
    num_bins: int = 128
    d_model: int = 128
    num_layers: int = 2
    num_heads: int = 4
    obs_hidden_dims: tuple[int, ...] = (256,)
    dropout: float = 0.0
    lr: float = 3e-4
    temperature: float = 1.0

    def validate(self) -> None:
        require(self.num_bins >= 2, "num_bins", "an integer >= 2", self.num_bins)
        require(self.d_model % self.num_heads == 0, "d_model", f"a multiple of num_heads={self.num_heads}",
                self.d_model)
        require(self.num_layers >= 1, "num_layers", "an integer >= 1", self.num_layers)
        require(self.lr > 0, "lr", "a positive number", self.lr)
        require(self.temperature > 0, "temperature", "a positive number", self.temperature)


def tokenize(actions: torch.Tensor, num_bins: int) -> torch.Tensor:
    """Continuous actions in [-1, 1] -> bin indices in [0, num_bins)."""
    return ((actions.clamp(-1, 1) + 1) / 2 * num_bins).long().clamp(0, num_bins - 1)


def detokenize(tokens: torch.Tensor, num_bins: int) -> torch.Tensor:
    """Bin indices -> bin centres in [-1, 1]."""
    return -1 + (tokens.float() + 0.5) * 2 / num_bins


class AutoregressivePolicy(TorchPolicy):
    """p(a | s) = prod_i p(token_i | s, token_<i)."""

    def __init__(self, obs_spec: ObsSpec, action_dim: int, cfg: AutoregressiveConfig | None = None,
                 images: ImageInput | None = None):
        super().__init__()
        self.cfg = cfg = cfg or AutoregressiveConfig()
        self.action_dim = action_dim
        self.lr = cfg.lr
        self.encoder = obs_spec.policy_encoder(cfg.obs_hidden_dims, cfg.d_model, images)
        self.token_emb = nn.Embedding(cfg.num_bins, cfg.d_model)
        self.pos_emb = nn.Parameter(torch.zeros(action_dim, cfg.d_model))
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.num_heads, 4 * cfg.d_model, cfg.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.logits = nn.Linear(cfg.d_model, cfg.num_bins)
        self.register_buffer("causal_mask", nn.Transformer.generate_square_subsequent_mask(action_dim))
        self._init_optimizer()

    def _token_logits(self, features: torch.Tensor, prev_tokens: torch.Tensor) -> torch.Tensor:
        """features [B, D], prev_tokens [B, L] (L < A) -> logits [B, L + 1, bins]."""
        length = prev_tokens.shape[1] + 1
        seq = torch.cat([features[:, None], self.token_emb(prev_tokens)], dim=1) + self.pos_emb[:length]
        h = self.transformer(seq, mask=self.causal_mask[:length, :length], is_causal=True)
        return self.logits(self.norm(h))

    def loss(self, obs: Obs, actions: torch.Tensor) -> torch.Tensor:
        tokens = tokenize(actions, self.cfg.num_bins)
        logits = self._token_logits(self.encoder(obs, augment=True), tokens[:, :-1])
        return F.cross_entropy(logits.reshape(-1, self.cfg.num_bins), tokens.reshape(-1))

    @torch.no_grad()
    def sample(self, obs: Obs, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        self.eval()
        features = self.encoder(obs)
        b = features.shape[0]
        features = features.repeat_interleave(n, dim=0)
        tokens = torch.zeros((b * n, 0), dtype=torch.long, device=features.device)
        for _ in range(self.action_dim):
            logits = self._token_logits(features, tokens)[:, -1] / self.cfg.temperature
            nxt = noise.multinomial(logits.softmax(-1), generator)
            tokens = torch.cat([tokens, nxt], dim=1)
        return detokenize(tokens, self.cfg.num_bins).view(b, n, self.action_dim)
