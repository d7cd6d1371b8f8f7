"""Vision transformer towers with timm's parameter names, so OpenVLA checkpoints load as they are.

OpenVLA fuses two timm ViTs (DINOv2 ViT-L/14 with 4 registers and LayerScale; SigLIP So400m/14) and
reads patch features from the output of the second-to-last block, prefix tokens removed, with no
final norm. These modules reproduce exactly that forward pass with timm's module and parameter names
(``patch_embed.proj``, ``blocks.N.attn.qkv``, ``attn_pool.*`` ...; LayerScale as OpenVLA stores it,
``blocks.N.ls1.scale_factor``); timm itself
is not a dependency (it needs torchvision, whose reachable build breaks transformers on CPU).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

# timm's ViTs use LayerNorm(eps=1e-6) and exact (erf) GELU.
_LN_EPS = 1e-6


@dataclass(frozen=True)
class TowerSpec:
    """One tower's hyperparameters; ``pool`` "token" means a class token, "map" an attention pool."""

    embed_dim: int
    depth: int
    num_heads: int
    patch_size: int
    mlp_hidden: int
    num_registers: int = 0
    layer_scale: bool = False
    pool: Literal["token", "map"] = "token"

    def __post_init__(self):
        for name in ("embed_dim", "depth", "num_heads", "patch_size", "mlp_hidden"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"vision tower {name} must be >= 1, got {getattr(self, name)!r}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"vision tower embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if self.depth < 2:
            raise ValueError(f"vision tower depth must be >= 2 (features come from the second-to-last block), "
                             f"got {self.depth}")
        if self.pool not in ("token", "map"):
            raise ValueError(f"vision tower pool must be 'token' or 'map', got {self.pool!r}")

    @classmethod
    def from_dict(cls, data: Mapping) -> TowerSpec:
        """A spec from a policy card or ``vision_towers`` argument entry; unknown keys are refused."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        missing = sorted(k for k in ("embed_dim", "depth", "num_heads", "patch_size", "mlp_hidden") if k not in data)
        if unknown or missing:
            raise ValueError(f"vision tower spec {dict(data)}: unknown keys {unknown}, missing keys {missing}; "
                             f"expected keys {sorted(known)}")
        return cls(**dict(data))

    def to_dict(self) -> dict:
        """Plain dict (the format of ``from_dict``)."""
        return asdict(self)


# The towers that real OpenVLA checkpoints name in config.json ("timm_model_ids").
KNOWN_TOWERS: dict[str, TowerSpec] = {
    "vit_large_patch14_reg4_dinov2.lvd142m": TowerSpec(1024, 24, 16, 14, 4096, num_registers=4, layer_scale=True,
                                                       pool="token"),
    "vit_so400m_patch14_siglip_224": TowerSpec(1152, 27, 16, 14, 4304, pool="map"),
}


class _PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch_size, patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))


class _LayerScale(nn.Module):
    # OpenVLA's checkpoints name timm's LayerScale ``gamma`` as ``scale_factor`` (transformers rewrites
    # parameters called gamma when loading), so that is the name here too.
    def __init__(self, dim: int):
        super().__init__()
        self.scale_factor = nn.Parameter(torch.full((dim,), 1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale_factor


class _Block(nn.Module):
    def __init__(self, spec: TowerSpec):
        super().__init__()
        dim = spec.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.attn = _Attention(dim, spec.num_heads)
        self.ls1 = _LayerScale(dim) if spec.layer_scale else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.mlp = _Mlp(dim, spec.mlp_hidden)
        self.ls2 = _LayerScale(dim) if spec.layer_scale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class _AttentionPool(nn.Module):
    """timm's attention-pool parameters (SigLIP). Real checkpoints carry them; OpenVLA never uses them
    (features are taken before pooling), so there is no forward: they exist to load without renaming."""

    def __init__(self, spec: TowerSpec):
        super().__init__()
        dim = spec.embed_dim
        self.latent = nn.Parameter(torch.zeros(1, 1, dim))
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim, eps=_LN_EPS)
        self.mlp = _Mlp(dim, spec.mlp_hidden)


class VisionTower(nn.Module):
    """A timm-named ViT whose forward returns the patch features of the second-to-last block."""

    def __init__(self, spec: TowerSpec, image_size: int):
        super().__init__()
        if image_size % spec.patch_size:
            raise ValueError(f"image size {image_size} is not a multiple of the patch size {spec.patch_size}")
        self.spec = spec
        dim = spec.embed_dim
        self.patch_embed = _PatchEmbed(spec.patch_size, dim)
        # Positions cover the patches only (timm's no_embed_class for DINOv2; SigLIP has no prefix).
        self.pos_embed = nn.Parameter(torch.zeros(1, (image_size // spec.patch_size) ** 2, dim))
        if spec.pool == "token":
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        if spec.num_registers:
            self.reg_token = nn.Parameter(torch.zeros(1, spec.num_registers, dim))
        self.blocks = nn.ModuleList(_Block(spec) for _ in range(spec.depth))
        self.norm = nn.LayerNorm(dim, eps=_LN_EPS)
        if spec.pool == "map":
            self.attn_pool = _AttentionPool(spec)

    @property
    def num_prefix_tokens(self) -> int:
        return int(self.spec.pool == "token") + self.spec.num_registers

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 3, S, S] normalized for this tower -> patch features [B, (S/p)^2, D]."""
        x = self.patch_embed(images) + self.pos_embed
        prefix = [t.expand(x.shape[0], -1, -1) for t in (getattr(self, "cls_token", None),
                                                          getattr(self, "reg_token", None)) if t is not None]
        x = torch.cat([*prefix, x], dim=1)
        # The last block's output is never read: stop after the second-to-last.
        for block in self.blocks[:-1]:
            x = block(x)
        return x[:, self.num_prefix_tokens:]


def check_spec_against_weights(index: int, name: str, spec: TowerSpec, shapes: Mapping[str, tuple[int, ...]],
                               prefix: str) -> None:
    """Raise ValueError when what the checkpoint's tensors imply contradicts ``spec``.

    ``shapes`` maps checkpoint keys to shapes; ``prefix`` is the tower's key prefix.
    """
    def shape(key: str) -> tuple[int, ...] | None:
        return shapes.get(prefix + key)

    implied: dict[str, object] = {}
    proj = shape("patch_embed.proj.weight")
    if proj is not None:
        implied["embed_dim"], implied["patch_size"] = proj[0], proj[-1]
    depths = {int(k[len(prefix):].split(".")[1]) for k in shapes if k.startswith(prefix + "blocks.")}
    if depths:
        implied["depth"] = max(depths) + 1
    fc1 = shape("blocks.0.mlp.fc1.weight")
    if fc1 is not None:
        implied["mlp_hidden"] = fc1[0]
    reg = shape("reg_token")
    implied["num_registers"] = reg[1] if reg is not None else 0
    implied["layer_scale"] = shape("blocks.0.ls1.scale_factor") is not None
    implied["pool"] = "map" if shape("attn_pool.latent") is not None else "token"
    wrong = [f"{k}: spec {getattr(spec, k)!r}, weights imply {v!r}"
             for k, v in implied.items() if getattr(spec, k) != v]
    if wrong:
        raise ValueError(f"vision tower {index} ({name}) does not match the checkpoint's weights: " + "; ".join(wrong))
