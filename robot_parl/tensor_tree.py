"""Atomic, pickle-free checkpoints.

A checkpoint is one safetensors file: every tensor of a nested state (module and optimizer state
dicts, RNG states, counters) is stored under its path, and the structure with all non-tensor
values is stored as JSON in the file's metadata. Files are written to a temporary name in the same
directory, flushed, and renamed over the target, so a crash leaves either the old or the new file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes

from robot_parl.files import atomic_write

_TENSOR = "__tensor__"
_TUPLE = "__tuple__"
_ITEMS = "__items__"


def _flatten(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        key = path or "root"
        tensors[key] = value.detach().cpu().contiguous()
        return {_TENSOR: key}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: _flatten(v, f"{path}.{k}" if path else k, tensors) for k, v in value.items()}
        # Optimizer state dicts key parameters by int: keep the key types.
        return {_ITEMS: [[k, _flatten(v, f"{path}.{k}" if path else str(k), tensors)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {_TUPLE: [_flatten(v, f"{path}.{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_flatten(v, f"{path}.{i}", tensors) for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot checkpoint value of type {type(value).__name__} at '{path}'")


def _unflatten(node: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(node, dict):
        if _TENSOR in node:
            return tensors[node[_TENSOR]]
        if _TUPLE in node:
            return tuple(_unflatten(v, tensors) for v in node[_TUPLE])
        if _ITEMS in node:
            return {k: _unflatten(v, tensors) for k, v in node[_ITEMS]}
        return {k: _unflatten(v, tensors) for k, v in node.items()}
    if isinstance(node, list):
        return [_unflatten(v, tensors) for v in node]
    return node


def save_tree(path: str | Path, tree: dict[str, Any]) -> None:
    """Atomically save a nested dict of tensors and plain values to one safetensors file."""
    tensors: dict[str, torch.Tensor] = {}
    structure = _flatten(tree, "", tensors)
    # safetensors refuses tensors that share memory; checkpoints are small enough to copy.
    data = safetensors_bytes({k: v.clone() for k, v in tensors.items()}, metadata={"structure": json.dumps(structure)})
    atomic_write(path, lambda f: f.write(data))


def load_tree(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a tree written by :func:`save_tree`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} does not exist")
    with safe_open(str(path), framework="pt", device=str(device)) as f:
        metadata = f.metadata() or {}
        if "structure" not in metadata:
            raise ValueError(f"{path} is not a robot-parl checkpoint (no 'structure' in its metadata)")
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return _unflatten(json.loads(metadata["structure"]), tensors)


def rng_state() -> dict[str, Any]:
    """The torch CPU RNG state, for exact resumption."""
    return {"torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a state from :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
