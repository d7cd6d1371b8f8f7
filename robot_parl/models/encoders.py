"""Observation encoders shared by critics and policies.

An observation is a dict of batched tensors (DESIGN section 4): ``state`` [B, S] for privileged
low-dimensional tasks, ``images`` {camera: uint8 [B, H, W, 3]}, ``proprio`` [B, P]. An
:class:`ObservationEncoder` declares the keys it uses and maps such a dict to one vector per state.
Images are resized once, here, to one size for training and acting alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robot_parl.models import noise

Obs = dict  # {"state": Tensor, "images": {name: Tensor}, "proprio": Tensor, "instruction": [str]}


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int | None = None, layer_norm: bool = False) -> nn.Sequential:
    """Linear layers with optional LayerNorm and GELU between them; a final linear when out_dim is set."""
    layers: list[nn.Module] = []
    dim = in_dim
    for width in hidden:
        layers.append(nn.Linear(dim, width))
        if layer_norm:
            layers.append(nn.LayerNorm(width))
        layers.append(nn.GELU())
        dim = width
    if out_dim is not None:
        layers.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*layers)


def _groups(channels: int) -> int:
    return min(32, channels // 4) or 1


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm1 = nn.GroupNorm(_groups(cout), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.GroupNorm(_groups(cout), cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(h)) + self.shortcut(x))


class ResNet18GN(nn.Module):
    """ResNet-18 with GroupNorm instead of BatchNorm (batch statistics break RL targets)."""

    out_dim = 512

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.GroupNorm(_groups(64), 64), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        blocks = []
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)]
            cin = cout
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x)).mean(dim=(2, 3))


class SmallCNN(nn.Module):
    """A four-layer CNN for CPU tests and small images."""

    out_dim = 64

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 3, 2), nn.GroupNorm(8, 32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, 2), nn.GroupNorm(8, 32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, 2), nn.GroupNorm(16, 64), nn.ReLU(),
            nn.Conv2d(64, 64, 3, 1), nn.GroupNorm(16, 64), nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).mean(dim=(2, 3))


IMAGE_ENCODERS = {"resnet18": ResNet18GN, "small_cnn": SmallCNN}  # one CNN per camera, by name


def prepare_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float [B, 3, size, size] in [-1, 1]; the one resize used everywhere."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be uint8 [B, H, W, 3], got {images.dtype} {tuple(images.shape)}")
    x = images.permute(0, 3, 1, 2).float()
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x / 127.5 - 1.0


def random_shift(x: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """DrQ augmentation: replicate-pad by ``pad`` pixels and crop back at a random offset per image."""
    if pad <= 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    shifts = noise.randint(2 * pad + 1, (b, 2), generator, x.device)
    rows = (torch.arange(h, device=x.device)[None, :] + shifts[:, :1])  # [B, H]
    cols = (torch.arange(w, device=x.device)[None, :] + shifts[:, 1:])  # [B, W]
    idx_b = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[idx_b, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


class ObservationEncoder(nn.Module):
    """Encodes an observation dict into one vector per state.

    ``state_dim`` and ``proprio_dim`` enable those keys; ``cameras`` names the image keys to encode
    (each with its own CNN). The output is an MLP over the concatenated features.
    """

    def __init__(
        self,
        state_dim: int = 0,
        proprio_dim: int = 0,
        cameras: Sequence[str] = (),
        image_encoder: Literal["resnet18", "small_cnn"] = "small_cnn",
        image_size: int = 100,
        augment_pad: int = 0,
        hidden_dims: Sequence[int] = (256,),
        out_dim: int = 256,
    ):
        super().__init__()
        if state_dim <= 0 and proprio_dim <= 0 and not cameras:
            raise ValueError("an observation encoder needs at least one of state_dim, proprio_dim or cameras")
        self.state_dim = state_dim
        self.proprio_dim = proprio_dim
        self.cameras = tuple(cameras)
        self.image_size = image_size
        self.augment_pad = augment_pad
        self.cnns = nn.ModuleDict({name: IMAGE_ENCODERS[image_encoder]() for name in self.cameras})
        feat = state_dim + proprio_dim + sum(c.out_dim for c in self.cnns.values())
        self.head = mlp(feat, hidden_dims, out_dim)
        self.out_dim = out_dim

    @property
    def keys(self) -> tuple[str, ...]:
        """The observation keys this encoder reads."""
        return tuple(k for k, used in (("state", self.state_dim), ("proprio", self.proprio_dim),
                                       ("images", self.cameras)) if used)

    def forward(self, obs: Obs, augment: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        feats = []
        for key in self.keys:
            if key not in obs:
                raise KeyError(f"observation has no '{key}' (has {sorted(obs)}); this encoder reads {list(self.keys)}")
        if self.state_dim:
            feats.append(_check_vector(obs["state"], "state", self.state_dim))
        if self.proprio_dim:
            feats.append(_check_vector(obs["proprio"], "proprio", self.proprio_dim))
        for name in self.cameras:
            if name not in obs["images"]:
                raise KeyError(f"observation has no camera '{name}' (has {sorted(obs['images'])})")
            x = prepare_images(obs["images"][name], self.image_size)
            if augment:
                x = random_shift(x, self.augment_pad, generator)
            feats.append(self.cnns[name](x))
        return self.head(torch.cat(feats, dim=-1))


def _check_vector(x: torch.Tensor, key: str, dim: int) -> torch.Tensor:
    if x.dim() != 2 or x.shape[-1] != dim:
        raise ValueError(f"observation '{key}' must be [B, {dim}], got {tuple(x.shape)}")
    return x.float()


def batch_size_of(obs: Obs) -> int:
    """The batch size of an observation dict."""
    for key in ("state", "proprio"):
        if key in obs:
            return obs[key].shape[0]
    if obs.get("images"):
        return next(iter(obs["images"].values())).shape[0]
    raise ValueError(f"cannot tell the batch size of an observation with keys {sorted(obs)}")


def obs_to(obs: Obs, device: torch.device | str) -> Obs:
    """``obs`` with every tensor on ``device`` (instructions and other values as they are)."""
    if isinstance(obs, dict):
        return {k: obs_to(v, device) for k, v in obs.items()}
    return obs.to(device) if isinstance(obs, torch.Tensor) else obs


def obs_rows(obs: Obs, start: int, stop: int) -> Obs:
    """Rows ``start:stop`` of a batch of observations (tensors and per-row lists such as instructions)."""
    if isinstance(obs, dict):
        return {k: obs_rows(v, start, stop) for k, v in obs.items()}
    return obs[start:stop]


def flatten_obs(obs: Obs, prefix: str = "") -> dict[str, torch.Tensor]:
    """{"images": {"front": x}, "state": y} -> {"images/front": x, "state": y} (strings dropped)."""
    flat = {}
    for key, value in obs.items():
        if isinstance(value, dict):
            flat.update(flatten_obs(value, f"{prefix}{key}/"))
        elif isinstance(value, (torch.Tensor, np.ndarray)):
            flat[f"{prefix}{key}"] = torch.as_tensor(value)
    return flat


def robot_obs(obs: dict) -> Obs:
    """One robot observation ({"images": {name: HxWx3}, "proprio": [P], "instruction": str}, numpy) as a batch
    of one; arrays are copied (message arrays are read-only views of their payload)."""
    flat = {f"images/{k}": v for k, v in obs.get("images", {}).items()}
    if "proprio" in obs:
        flat["proprio"] = obs["proprio"]
    out = unflatten_obs({k: torch.from_numpy(np.array(v))[None] for k, v in flat.items()})
    if "instruction" in obs:
        out["instruction"] = [obs["instruction"]]
    return out


def select_obs(obs: Obs, idx: torch.Tensor) -> Obs:
    """Rows ``idx`` of a batched observation: tensors indexed, per-row lists (instructions) picked from."""
    out: dict = {}
    for key, value in obs.items():
        if isinstance(value, dict):
            out[key] = select_obs(value, idx)
        elif isinstance(value, (list, tuple)):
            out[key] = [value[i] for i in idx.tolist()]
        elif isinstance(value, str):
            out[key] = value  # one instruction for the whole batch
        else:
            out[key] = value[idx]
    return out


def unflatten_obs(flat: dict[str, torch.Tensor]) -> Obs:
    """Inverse of :func:`flatten_obs`."""
    obs: dict = {}
    for key, value in flat.items():
        node = obs
        *parents, leaf = key.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return obs
