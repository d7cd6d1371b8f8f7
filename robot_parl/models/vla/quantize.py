"""bitsandbytes quantization of the language model's decoder layers (4-bit NF4 or 8-bit).

Only the decoder's linear layers are quantized: they hold 6.7B of OpenVLA's 7.5B parameters. The
vision towers, projector, embeddings and ``lm_head`` stay in the compute dtype, which costs about
1.6 GB in bf16 and keeps the image features and the action-token logits at full precision. A LoRA
adapter is never merged into a quantized layer (bitsandbytes merges are lossy or silently dropped).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Quantization = Literal["none", "8bit", "4bit"]
QUANTIZATIONS: tuple[str, ...] = ("none", "8bit", "4bit")


def _quantized_linear(linear: nn.Linear, mode: Quantization, compute_dtype: torch.dtype) -> nn.Module:
    import bitsandbytes as bnb

    has_bias = linear.bias is not None
    weight = linear.weight.data
    if mode == "4bit":
        layer = bnb.nn.Linear4bit(linear.in_features, linear.out_features, bias=has_bias, compute_dtype=compute_dtype,
                                  quant_type="nf4")
        layer.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4")
    else:
        layer = bnb.nn.Linear8bitLt(linear.in_features, linear.out_features, bias=has_bias, has_fp16_weights=False)
        layer.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
    if has_bias:
        layer.bias = nn.Parameter(linear.bias.data, requires_grad=False)
    return layer


def quantize_decoder(decoder: nn.Module, mode: Quantization, compute_dtype: torch.dtype) -> int:
    """Replace every nn.Linear under ``decoder`` by a bitsandbytes layer; returns how many were replaced.

    The weights are quantized when the module is next moved to a device (``.to(device)``).
    """
    if mode == "none":
        return 0
    if mode not in ("4bit", "8bit"):
        raise ValueError(f"quantization must be 'none', '8bit' or '4bit', got {mode!r}")
    targets = [(name, module) for name, module in decoder.named_modules() if type(module) is nn.Linear]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = decoder.get_submodule(parent_name) if parent_name else decoder
        setattr(parent, child, _quantized_linear(module, mode, compute_dtype))
    return len(targets)
