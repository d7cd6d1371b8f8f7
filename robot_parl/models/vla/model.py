"""The OpenVLA network: fused vision towers, an MLP projector and a Llama causal LM.

Parameter names follow the OpenVLA checkpoint layout (``vision_backbone.featurizer.*``,
``vision_backbone.fused_featurizer.*``, ``projector.fc1/fc2/fc3.*``, ``language_model.*``), and the
forward pass has OpenVLA's semantics: image patch embeddings are inserted right after BOS, logits cover
every position (patches included) and the loss ignores the patch positions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.modeling_outputs import CausalLMOutputWithPast

from robot_parl.models.vla.towers import KNOWN_TOWERS, TowerSpec, VisionTower

IGNORE_INDEX = -100


@dataclass
class VLAConfig:
    """What ``config.json`` of an OpenVLA checkpoint says, plus the resolved tower specs."""

    towers: tuple[TowerSpec, TowerSpec]
    timm_model_ids: tuple[str, str]
    image_size: int
    text_config: dict[str, Any]
    norm_stats: dict[str, Any] = field(default_factory=dict)
    n_action_bins: int = 256
    pad_to_multiple_of: int = 64
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def vision_dim(self) -> int:
        return sum(t.embed_dim for t in self.towers)

    @property
    def vocab_size(self) -> int:
        """The tokenizer's vocabulary without the padding rows (32000 for OpenVLA); action ids end here."""
        return int(self.text_config["vocab_size"]) - self.pad_to_multiple_of

    def llama_config(self) -> LlamaConfig:
        """The LM's config as OpenVLA builds it: LlamaConfig defaults overridden by ``text_config``."""
        text = {k: v for k, v in self.text_config.items() if k not in ("model_type", "torch_dtype", "dtype")}
        return LlamaConfig(**text)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], vision_towers: Sequence[Mapping] | None = None,
                  source: str = "config.json") -> VLAConfig:
        """Parse an OpenVLA config dict; towers come from ``vision_towers``, the config, or the known timm ids."""
        for key in ("timm_model_ids", "image_sizes", "text_config"):
            if key not in data:
                raise ValueError(f"{source}: missing '{key}' (not an OpenVLA checkpoint config?)")
        ids = tuple(data["timm_model_ids"])
        if len(ids) != 2 or not data.get("use_fused_vision_backbone", True):
            raise ValueError(f"{source}: expected two fused vision towers (DINOv2 + SigLIP), got timm_model_ids {ids}")
        sizes = set(data["image_sizes"])
        if len(sizes) != 1:
            raise ValueError(f"{source}: both towers must see one image size, got image_sizes {data['image_sizes']}")
        specs = vision_towers if vision_towers is not None else data.get("vision_towers")
        if specs is not None:
            if len(specs) != 2:
                raise ValueError(f"vision_towers: expected 2 tower specs (one per timm id {ids}), got {len(specs)}")
            towers = tuple(TowerSpec.from_dict(s) for s in specs)
        else:
            unknown = [i for i in ids if i not in KNOWN_TOWERS]
            if unknown:
                raise ValueError(f"{source}: no known hyperparameters for timm model ids {unknown} (known: "
                                 f"{sorted(KNOWN_TOWERS)}); give them as vision_towers=[{{embed_dim, depth, num_heads, "
                                 f"patch_size, mlp_hidden, num_registers, layer_scale, pool}}, ...] "
                                 f"or in the policy card")
            towers = tuple(KNOWN_TOWERS[i] for i in ids)
        text = dict(data["text_config"])
        if "vocab_size" not in text:
            raise ValueError(f"{source}: text_config has no vocab_size")
        return cls(towers=towers, timm_model_ids=ids, image_size=int(sizes.pop()), text_config=text,
                   norm_stats=dict(data.get("norm_stats") or {}), n_action_bins=int(data.get("n_action_bins", 256)),
                   pad_to_multiple_of=int(data.get("pad_to_multiple_of", 64)), raw=dict(data))

    @classmethod
    def read(cls, directory: str | Path, vision_towers: Sequence[Mapping] | None = None) -> VLAConfig:
        """Read ``<directory>/config.json``."""
        path = Path(directory) / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no config.json (expected an OpenVLA checkpoint directory)")
        return cls.from_json(json.loads(path.read_text()), vision_towers, source=str(path))

    def to_json(self) -> dict[str, Any]:
        """config.json contents in the OpenVLA layout, with the tower specs kept for self-description."""
        out = dict(self.raw)
        out.update({"timm_model_ids": list(self.timm_model_ids), "image_sizes": [self.image_size] * 2,
                    "use_fused_vision_backbone": True, "text_config": self.text_config, "norm_stats": self.norm_stats,
                    "n_action_bins": self.n_action_bins, "pad_to_multiple_of": self.pad_to_multiple_of,
                    "pad_token_id": self.text_config.get("pad_token_id", 32000),
                    "vision_towers": [t.to_dict() for t in self.towers]})
        return out


class VisionBackbone(nn.Module):
    """DINOv2 on the first three channels, SigLIP on the last three; features concatenated on channels."""

    def __init__(self, cfg: VLAConfig):
        super().__init__()
        self.featurizer = VisionTower(cfg.towers[0], cfg.image_size)
        self.fused_featurizer = VisionTower(cfg.towers[1], cfg.image_size)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values [B, 6, S, S] -> patch features [B, P, D0 + D1]."""
        first, second = torch.split(pixel_values, 3, dim=1)
        return torch.cat([self.featurizer(first), self.fused_featurizer(second)], dim=2)


class Projector(nn.Module):
    """OpenVLA's fused GELU MLP: vision dim -> 4x vision dim -> LM width -> LM width."""

    def __init__(self, vision_dim: int, llm_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(vision_dim, 4 * vision_dim)
        self.fc2 = nn.Linear(4 * vision_dim, llm_dim)
        self.fc3 = nn.Linear(llm_dim, llm_dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.act(self.fc2(self.act(self.fc1(x)))))


class OpenVLAModel(nn.Module):
    """Vision backbone + projector + Llama LM with OpenVLA's parameter names and forward semantics."""

    def __init__(self, cfg: VLAConfig):
        super().__init__()
        self.config = cfg
        self.vision_backbone = VisionBackbone(cfg)
        llama = cfg.llama_config()
        self.projector = Projector(cfg.vision_dim, llama.hidden_size)
        self.language_model = LlamaForCausalLM(llama)

    @property
    def num_patches(self) -> int:
        return self.vision_backbone.featurizer.pos_embed.shape[1]

    def image_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values [B, 6, S, S] -> projected patch embeddings [B, P, H] in the LM's dtype."""
        dtype = self.projector.fc1.weight.dtype
        return self.projector(self.vision_backbone(pixel_values.to(dtype)))

    def embed(self, input_ids: torch.Tensor, pixel_values: torch.Tensor,
              attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings with the image patches inserted after BOS, and the matching attention mask."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids, dtype=torch.bool)
        tokens = self.language_model.get_input_embeddings()(input_ids)
        patches = self.image_embeddings(pixel_values).to(tokens.dtype)
        embeds = torch.cat([tokens[:, :1], patches, tokens[:, 1:]], dim=1)
        patch_mask = attention_mask.new_ones(patches.shape[:2])
        mask = torch.cat([attention_mask[:, :1], patch_mask, attention_mask[:, 1:]], dim=1)
        return embeds, mask

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                pixel_values: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> CausalLMOutputWithPast:
        """OpenVLA's multimodal forward: logits over all positions ([B, 1 + P + T - 1, V]) and the LM loss."""
        if pixel_values is None:
            raise ValueError("pixel_values are required: a VLA never acts without its image")
        embeds, mask = self.embed(input_ids, pixel_values, attention_mask)
        if labels is not None:
            ignore = labels.new_full((labels.shape[0], embeds.shape[1] - labels.shape[1]), IGNORE_INDEX)
            labels = torch.cat([labels[:, :1], ignore, labels[:, 1:]], dim=1)
        return self.language_model(inputs_embeds=embeds, attention_mask=mask, labels=labels, use_cache=False)
