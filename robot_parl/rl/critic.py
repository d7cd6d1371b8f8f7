"""The Q-ensemble: one shared observation encoder and E MLP heads, the action fed into every layer.

``encode`` runs once per state; ``q`` then scores any number of actions per state without encoding
again, which is what action optimization needs (N candidates, T ascent steps).
"""

from __future__ import annotations

import contextlib
import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from robot_parl.models.base import ObsSpec
from robot_parl.models.encoders import Obs
from robot_parl.rl.config import CriticConfig


class EnsembleLinear(nn.Module):
    """E independent linear layers applied in one batched matmul: [E, ..., in] -> [E, ..., out]."""

    def __init__(self, ensemble: int, in_dim: int, out_dim: int):
        super().__init__()
        bound = 1 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(ensemble, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(ensemble, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        out = torch.baddbmm(self.bias[:, None], x.reshape(shape[0], -1, shape[-1]), self.weight)
        return out.view(*shape[:-1], -1)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm with separate affine parameters per ensemble member."""

    def __init__(self, ensemble: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ensemble, dim))
        self.bias = nn.Parameter(torch.zeros(ensemble, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        extra = (1,) * (x.dim() - 2)
        e, d = self.weight.shape
        h = F.layer_norm(x, (d,))
        return h * self.weight.view(e, *extra, d) + self.bias.view(e, *extra, d)


class QEnsemble(nn.Module):
    """Q(s, a) for E heads over a shared encoder of the observation."""

    def __init__(self, obs_spec: ObsSpec, action_dim: int, cfg: CriticConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or CriticConfig()
        self.action_dim = action_dim
        self.ensemble_size = cfg.ensemble_size
        self.encoder = obs_spec.encoder(cfg.state_hidden_dims, cfg.embedding_dim, cfg.image_encoder,
                                        cfg.image_size, cfg.augment_pad)
        e = cfg.ensemble_size
        dims = (cfg.embedding_dim, *cfg.hidden_dims)
        self.layers = nn.ModuleList(EnsembleLinear(e, d_in + action_dim, d_out) for d_in, d_out in zip(dims, dims[1:]))
        self.norms = nn.ModuleList(
            EnsembleLayerNorm(e, d) if cfg.layer_norm else nn.Identity() for d in cfg.hidden_dims
        )
        self.out = EnsembleLinear(e, dims[-1] + action_dim, 1)
        # 1 once the critic has ranked the policy's own samples better than chance online (rl/trust.py): travels
        # with its weights to the actor and into checkpoints
        self.register_buffer("trusted", torch.zeros(()))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a checkpoint from before the trust test: not trusted
        state_dict.setdefault(prefix + "trusted", torch.zeros(()))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _autocast(self, device: torch.device):
        if self.cfg.autocast != "bf16":  # not even a disabled autocast: some devices (meta) have none
            return contextlib.nullcontext()
        return torch.autocast(device.type, torch.bfloat16)

    def encode(self, obs: Obs, augment: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """Observation dict -> z [B, D] (DrQ shifts applied to images when ``augment``)."""
        with self._autocast(self.trusted.device):
            return self.encoder(obs, augment=augment, generator=generator).float()

    def q(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """z [B, D] and actions [B, A] or [B, K, A] -> Q [E, B] or [E, B, K]."""
        if actions.shape[-1] != self.action_dim or actions.dim() not in (2, 3) or actions.shape[0] != z.shape[0]:
            raise ValueError(f"actions must be [B={z.shape[0]}, {self.action_dim}] or [B, K, {self.action_dim}], "
                             f"got {tuple(actions.shape)}")
        single = actions.dim() == 2
        a = actions[:, None] if single else actions  # [B, K, A]
        b, k, _ = a.shape
        e = self.ensemble_size
        a_e = a.unsqueeze(0).expand(e, b, k, self.action_dim)
        with self._autocast(z.device):
            h = F.gelu(self.norms[0](self._first_layer(z, a_e)))
            for layer, norm in zip(self.layers[1:], self.norms[1:]):
                h = F.gelu(norm(layer(torch.cat([h, a_e], dim=-1))))
            q = self.out(torch.cat([h, a_e], dim=-1)).squeeze(-1).float()  # [E, B, K]
        return q[:, :, 0] if single else q

    def _first_layer(self, z: torch.Tensor, a_e: torch.Tensor) -> torch.Tensor:
        # The state's share of the first layer is computed once per state, not once per action.
        first = self.layers[0]
        d = z.shape[-1]
        from_state = torch.einsum("bd,edh->ebh", z, first.weight[:, :d]) + first.bias[:, None]
        from_action = torch.einsum("ebka,eah->ebkh", a_e, first.weight[:, d:])
        return from_state[:, :, None] + from_action

    def make_target(self) -> QEnsemble:
        """A frozen copy for TD targets, updated by :meth:`polyak_update`."""
        target = copy.deepcopy(self)
        target.requires_grad_(False)
        return target

    @torch.no_grad()
    def polyak_update(self, target: QEnsemble, rate: float) -> None:
        """target <- (1 - rate) * target + rate * self."""
        for t, s in zip(target.parameters(), self.parameters()):
            t.lerp_(s, rate)
