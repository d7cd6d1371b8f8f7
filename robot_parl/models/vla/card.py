"""The VLA's policy card (policies/*.yaml): weights, precision, LoRA, optimizer, sampling, prompt.

No heavy imports here: session configs embed a card whichever policy class they choose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from robot_parl.models.action_space import GripperConvention
from robot_parl.typed_config import require


@dataclass
class SamplerConfig:
    """How tokens are drawn: ``temperature`` 0 is greedy; ``token_top_k`` 0 keeps every token."""

    temperature: float = 1.0
    token_top_k: int = 0

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.token_top_k < 0:
            raise ValueError(f"token_top_k must be >= 0, got {self.token_top_k}")


@dataclass
class LoRASettings:
    """LoRA on every linear layer except ``lm_head``; embeddings are never trained or saved."""

    r: int = 32
    alpha: int = 16
    dropout: float = 0.0

    def validate(self) -> None:
        require(self.r >= 1, "r", "an integer >= 1", self.r)
        require(0.0 <= self.dropout < 1.0, "dropout", "a number in [0, 1)", self.dropout)


@dataclass
class VLACard:
    """Everything about a VLA policy; ``parl`` overrides ParlConfig defaults for it (OpenVLA: N=8, k=4)."""

    checkpoint: str = ""
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    # "4bit" (NF4) and "8bit" quantize the LM's decoder layers with bitsandbytes; adapters stay unmerged.
    quantization: Literal["none", "8bit", "4bit"] = "none"
    device: str = "cpu"
    # Which dataset's statistics in the checkpoint's norm_stats map actions to robot units (may be omitted
    # only when the checkpoint has one dataset's statistics).
    unnorm_key: str | None = None
    # What that dataset's gripper values mean (Bridge/OpenX: closed 0, open 1); mapped onto the robot spec's
    # action.gripper. Required when the robot has a gripper.
    gripper: GripperConvention | None = None
    camera: str = "front"
    # Used when neither the actor's task list (actor.instructions) nor the robot side's observations give one.
    instruction: str = ""
    # Tower hyperparameters for timm ids this project does not know (see towers.KNOWN_TOWERS).
    vision_towers: list[dict[str, Any]] | None = None
    lora: LoRASettings = field(default_factory=LoRASettings)
    lr: float = 5e-4
    grad_clip: float = 1.0
    # Recompute the LM's decoder layers in the backward pass instead of keeping their activations (training only:
    # about a layer's activations instead of all 32 for a 7B, for about a third more compute per step).
    gradient_checkpointing: bool = False
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    parl: dict[str, Any] = field(default_factory=lambda: {"num_samples": 8, "top_k": 4})

    def validate(self) -> None:
        require(self.lr > 0, "lr", "a positive number", self.lr)
