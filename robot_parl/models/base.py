"""The base-policy protocol that rl/ relies on, and the shared machinery of small torch policies.

rl/ never takes a policy gradient: it only samples candidates, runs supervised steps on optimized
actions, and moves weights between learner and actor. Actions live in the policy's normalized space
[-1, 1]^A.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import torch
from torch import nn

from robot_parl.models.encoders import Obs, ObservationEncoder, obs_rows
from robot_parl.tensor_tree import load_tree, save_tree
from robot_parl.typed_config import require

# Averages the gradients of these parameters over a data-parallel learner's ranks, in place (rl/data_parallel.py).
GradientSync = Callable[[list[nn.Parameter]], None]


@runtime_checkable
class BasePolicy(Protocol):
    """What every policy class offers PA-RL (DESIGN section 4)."""

    action_dim: int

    def sample(self, obs: Obs, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n stochastic actions per state: [B, n, A] in [-1, 1]."""

    def sl_update(self, obs: Obs, actions: torch.Tensor, micro_batch: int = 0,
                  sync: GradientSync | None = None) -> dict[str, float]:
        """One supervised step towards ``actions`` [B, A] with the policy's own loss, gradients accumulated over
        ``micro_batch`` rows at a time (0: the whole batch at once); ``sync`` averages the gradients over a
        data-parallel learner's ranks before the step (rl/data_parallel.py)."""

    def sync_state(self) -> dict[str, torch.Tensor]:
        """What an actor needs to act like this policy (full weights for small policies)."""

    def load_sync_state(self, state: dict[str, torch.Tensor]) -> None:
        """Take over the weights of :meth:`sync_state` in place."""

    def save(self, directory: str | Path) -> None:
        """Save everything needed to resume training (weights, optimizer state)."""

    def load(self, directory: str | Path) -> None:
        """Restore what :meth:`save` wrote."""


@dataclass
class ImageInput:
    """How a policy reads camera images (the critic's are ``parl.critic.image_*``)."""

    encoder: Literal["small_cnn", "resnet18"] = "small_cnn"
    size: int = 100  # images are resized to size x size: give the camera's own size to skip the resize
    # DrQ random shift (pixels of replicate padding) while training (BC and distillation); 0 disables. Without it,
    # BC from a few demonstrations overfits the pixels of their layouts.
    augment_pad: int = 4

    def validate(self) -> None:
        require(self.size >= 16, "size", "an integer >= 16", self.size)
        require(self.augment_pad >= 0, "augment_pad", "an integer >= 0", self.augment_pad)


@dataclass(frozen=True)
class ObsSpec:
    """Which observation keys a policy or critic reads, and their sizes."""

    state_dim: int = 0
    proprio_dim: int = 0
    cameras: tuple[str, ...] = ()

    def encoder(self, hidden_dims: tuple[int, ...], out_dim: int, image_encoder: str = "small_cnn",
                image_size: int = 100, augment_pad: int = 0) -> ObservationEncoder:
        """An encoder for observations of this spec."""
        return ObservationEncoder(self.state_dim, self.proprio_dim, self.cameras, image_encoder, image_size,
                                  augment_pad, hidden_dims, out_dim)

    def policy_encoder(self, hidden_dims: tuple[int, ...], out_dim: int,
                       images: ImageInput | None) -> ObservationEncoder:
        """A policy's encoder for observations of this spec, reading images as ``images`` says."""
        images = images or ImageInput()
        return self.encoder(hidden_dims, out_dim, images.encoder, images.size, images.augment_pad)


class TorchPolicy(nn.Module):
    """Shared machinery of the small policy classes: optimizer, supervised step, save/load, sync.

    Subclasses implement ``loss(obs, actions) -> Tensor`` and ``sample``; ``sync_state`` returns the
    weights that ``sample`` uses (a subclass with EMA weights overrides ``acting_module``).
    """

    action_dim: int
    lr: float
    grad_clip: float = 1.0

    def _init_optimizer(self) -> None:
        self.optimizer = torch.optim.AdamW(self._trainable(), lr=self.lr)
        self.updates = 0

    def _trainable(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def loss(self, obs: Obs, actions: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def after_update(self) -> None:
        """Hook run after every optimizer step (EMA updates)."""

    def sl_update(self, obs: Obs, actions: torch.Tensor, micro_batch: int = 0,
                  sync: GradientSync | None = None) -> dict[str, float]:
        """One supervised step on (obs, actions); actions [B, A] in [-1, 1]; gradients accumulated over
        ``micro_batch`` rows at a time (0: the whole batch at once) and averaged over ranks by ``sync``."""
        _check_actions(actions, self.action_dim)
        self.train()
        metrics = supervised_step(self.loss, obs, actions, self._trainable(), self.optimizer, self.grad_clip,
                                  micro_batch, type(self).__name__, sync)
        self.updates += 1
        self.after_update()
        return metrics

    def sync_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.state_dict().items()}

    def load_sync_state(self, state: dict[str, torch.Tensor]) -> None:
        copy_state(self.state_dict(), state, type(self).__name__)

    def save(self, directory: str | Path) -> None:
        save_tree(Path(directory) / "policy.safetensors",
                  {"weights": self.state_dict(), "optimizer": self.optimizer.state_dict(), "updates": self.updates})

    def load(self, directory: str | Path) -> None:
        tree = load_tree(Path(directory) / "policy.safetensors")
        self.load_sync_state(tree["weights"])
        self.optimizer.load_state_dict(tree["optimizer"])
        self.updates = tree["updates"]


def copy_state(own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], what: str) -> None:
    """Copy ``state`` into the tensors of ``own`` in place, only once every name and shape matches (a state
    for another model is refused whole, never half applied)."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in set(own) & set(state)
                   if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise ValueError(f"weights do not fit {what}: missing {missing[:3]} ({len(missing)}), unexpected "
                         f"{unexpected[:3]} ({len(unexpected)}), wrong shapes {wrong[:3]} ({len(wrong)})")
    with torch.no_grad():
        for name, tensor in own.items():
            tensor.copy_(state[name])


def supervised_step(loss_fn, obs: Obs, actions: torch.Tensor, params: list[nn.Parameter],
                    optimizer: torch.optim.Optimizer, grad_clip: float, micro_batch: int,
                    name: str, sync: GradientSync | None = None) -> dict[str, float]:
    """One optimizer step of ``loss_fn`` (a mean over rows) on a batch, gradients accumulated over micro-batches of
    ``micro_batch`` rows (0: all at once): the same step as one pass, with the activations of a micro-batch only.
    ``sync`` (a data-parallel learner's) averages the gradients over ranks before clipping and stepping."""
    rows = actions.shape[0]
    size = micro_batch or rows
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for start in range(0, rows, size):
        part = actions[start:start + size]
        loss = loss_fn(obs_rows(obs, start, start + size), part) * (part.shape[0] / rows)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{name} loss is {loss.item()}; refusing to step")
        loss.backward()
        total += loss.item()
    if sync is not None:
        sync(params)
    grad_norm = nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return {"loss": total, "grad_norm": float(grad_norm)}


def _check_actions(actions: torch.Tensor, action_dim: int) -> None:
    if actions.dim() != 2 or actions.shape[-1] != action_dim:
        raise ValueError(f"actions must be [B, {action_dim}], got {tuple(actions.shape)}")
    if not torch.isfinite(actions).all():
        raise ValueError("actions contain NaN or infinite values")
