"""OpenVLA checkpoint directories: reading (sharded safetensors, checked key by key), writing, tiny ones.

A checkpoint directory holds ``config.json`` (with ``norm_stats``), ``model.safetensors`` or shards
listed in ``model.safetensors.index.json``, and the tokenizer files. Weights are assigned into a model
built on the meta device, so a 7B checkpoint is held in memory once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from robot_parl.files import atomic_write
from robot_parl.models.vla.model import OpenVLAModel, VLAConfig
from robot_parl.models.vla.prompt import write_offline_tokenizer
from robot_parl.models.vla.towers import KNOWN_TOWERS, TowerSpec, check_spec_against_weights

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
DINO_7B, SIGLIP_7B = "vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224"
LOGIT_STD = 2.5  # spread of a random tiny VLA's logits (see write_random_checkpoint)
_TOWER_PREFIXES = ("vision_backbone.featurizer.", "vision_backbone.fused_featurizer.")


def weight_files(directory: str | Path) -> dict[str, Path]:
    """Checkpoint key -> the safetensors file that holds it."""
    directory = Path(directory)
    index = directory / INDEX_FILE
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        return {key: directory / name for key, name in weight_map.items()}
    single = directory / SINGLE_FILE
    if not single.is_file():
        raise FileNotFoundError(f"{directory}: no {SINGLE_FILE} and no {INDEX_FILE}")
    with _open(single) as f:
        return {key: single for key in f.keys()}


@contextmanager
def _open(path: Path):
    """A safetensors file opened for reading; a truncated or foreign file raises ValueError naming it."""
    try:
        with safe_open(path, framework="pt") as f:
            yield f
    except SafetensorError as err:
        raise ValueError(f"{path}: not a complete safetensors file ({err}); copy the checkpoint again") from None


def weight_shapes(directory: str | Path) -> dict[str, tuple[int, ...]]:
    """Checkpoint key -> shape, read from the safetensors headers only."""
    shapes = {}
    files = weight_files(directory)
    for path in sorted(set(files.values())):
        with _open(path) as f:
            for key in f.keys():
                shapes[key] = tuple(f.get_slice(key).get_shape())
    return shapes


def check_weights(model: OpenVLAModel, shapes: Mapping[str, tuple[int, ...]], source: str) -> None:
    """Raise ValueError listing missing, unexpected and mis-shaped keys (towers checked first, by name)."""
    cfg = model.config
    for i, (prefix, spec) in enumerate(zip(_TOWER_PREFIXES, cfg.towers)):
        check_spec_against_weights(i, cfg.timm_model_ids[i], spec, shapes, prefix)
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(own) - set(shapes))
    unexpected = sorted(set(shapes) - set(own))
    wrong = sorted(f"{k}: checkpoint {shapes[k]}, model {own[k]}"
                   for k in set(own) & set(shapes) if own[k] != shapes[k])
    if missing or unexpected or wrong:
        def show(items: list[str]) -> str:
            return f"{len(items)} {items[:8]}{' ...' if len(items) > 8 else ''}"
        raise ValueError(f"{source}: checkpoint does not fit the model: missing keys {show(missing)}; "
                         f"unexpected keys {show(unexpected)}; wrong shapes {show(wrong)}")


def build_model(cfg: VLAConfig, dtype: torch.dtype) -> OpenVLAModel:
    """A model with uninitialised (meta) weights, to be filled by :func:`load_weights`."""
    with torch.device("meta"):
        model = OpenVLAModel(cfg)
    return model.to(dtype)


def load_weights(model: OpenVLAModel, directory: str | Path, dtype: torch.dtype) -> None:
    """Assign the checkpoint's tensors (cast to ``dtype``) into a model from :func:`build_model`."""
    directory = Path(directory)
    files = weight_files(directory)
    check_weights(model, weight_shapes(directory), str(directory))
    state = {}
    for path in sorted(set(files.values())):
        with _open(path) as f:
            for key in f.keys():
                state[key] = f.get_tensor(key).to(dtype)
    model.load_state_dict(state, strict=True, assign=True)
    # Rotary frequencies are computed, not stored: rebuild them off the meta device.
    lm = model.language_model.model
    lm.rotary_emb = type(lm.rotary_emb)(config=model.language_model.config)
    leftover = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftover:
        raise RuntimeError(f"{directory}: tensors left without values after loading: {leftover[:5]}")


def write_checkpoint(state: Mapping[str, torch.Tensor], cfg: VLAConfig, directory: str | Path,
                     max_shard_bytes: int = 5 * 2**30) -> Path:
    """Write ``state`` and config.json in the OpenVLA layout (sharded past ``max_shard_bytes``)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key in sorted(state):
        tensor = state[key].detach().contiguous().cpu()
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = tensor
        size += nbytes
    if len(shards) == 1:
        save_file(shards[0], str(directory / SINGLE_FILE), metadata={"format": "pt"})
    else:
        weight_map = {}
        for i, shard in enumerate(shards):
            name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            save_file(shard, str(directory / name), metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(shard, name))
        total = sum(t.numel() * t.element_size() for t in state.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        atomic_write(directory / INDEX_FILE, lambda f: f.write(json.dumps(index, indent=2)), mode="w")
    atomic_write(directory / "config.json", lambda f: f.write(json.dumps(cfg.to_json(), indent=2)), mode="w")
    return directory


def tiny_config(norm_stats: Mapping | None = None, hidden_size: int = 64, layers: int = 2, head_dim: int = 16,
                towers: Sequence[TowerSpec] | None = None, image_size: int = 224) -> VLAConfig:
    """A small OpenVLA-architecture config with the real 32064-token vocabulary (tiny by default: CI, demos)."""
    towers = tuple(towers or (TowerSpec(32, 3, 2, 14, 64, num_registers=4, layer_scale=True, pool="token"),
                              TowerSpec(48, 3, 3, 14, 80, pool="map")))
    stats = dict(norm_stats or {"default": {"action": default_action_stats()}})
    text = {"model_type": "llama", "vocab_size": 32064, "hidden_size": hidden_size,
            "intermediate_size": 2 * hidden_size, "num_hidden_layers": layers,
            "num_attention_heads": hidden_size // head_dim, "num_key_value_heads": hidden_size // head_dim,
            "pad_token_id": 32000, "max_position_embeddings": 1024}
    raw = {"model_type": "openvla", "arch_specifier": "no-align+fused-gelu-mlp",
           "image_resize_strategy": "resize-naive", "use_fused_vision_backbone": True}
    return VLAConfig(towers=towers, timm_model_ids=("tiny_vit_dinov2_reg4", "tiny_vit_siglip"), image_size=image_size,
                     text_config=text, norm_stats=stats, raw=raw)


def openvla_7b_config(norm_stats: Mapping | None = None) -> VLAConfig:
    """OpenVLA-7B's architecture (Llama-2 7B; DINOv2 ViT-L/14 with registers and SigLIP So400m/14 at 224 px, fused;
    the GELU projector), sizes from the released config.json, for random-weight benchmarks."""
    cfg = tiny_config(norm_stats, hidden_size=4096, layers=32, head_dim=128,
                      towers=(KNOWN_TOWERS[DINO_7B], KNOWN_TOWERS[SIGLIP_7B]))
    text = dict(cfg.text_config, intermediate_size=11008, max_position_embeddings=2048, rms_norm_eps=1e-6)
    return VLAConfig(towers=cfg.towers, timm_model_ids=(DINO_7B, SIGLIP_7B), image_size=224, text_config=text,
                     norm_stats=cfg.norm_stats, raw=cfg.raw)


def default_action_stats(action_dim: int = 7) -> dict[str, list]:
    """Identity statistics (q01 = -1, q99 = 1) with the last dimension an un-normalized gripper."""
    return {"q01": [-1.0] * action_dim, "q99": [1.0] * action_dim, "mask": [True] * (action_dim - 1) + [False],
            "mean": [0.0] * action_dim, "std": [1.0] * action_dim, "min": [-1.0] * action_dim,
            "max": [1.0] * action_dim}


def write_random_checkpoint(directory: str | Path, cfg: VLAConfig | None = None, seed: int = 0,
                            dtype: torch.dtype = torch.float32) -> Path:
    """A randomly initialised checkpoint of ``cfg`` (default: :func:`tiny_config`) with the offline tokenizer, its
    tensors saved in ``dtype`` (OpenVLA's release: bfloat16)."""
    cfg = cfg or tiny_config()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = OpenVLAModel(cfg)
        with torch.no_grad():
            for name, p in model.named_parameters():
                # The towers' position, prefix and pool tensors start at zero in the module; give them
                # values so every input position and token matters in a random model.
                if name.endswith(("pos_embed", "cls_token", "reg_token", "latent")):
                    p.normal_(0.0, 0.02)
                elif name.endswith(".scale_factor"):
                    p.fill_(0.1)
            # A trained LM's action-token logits spread by several units; HF's init (std 0.02) gives about
            # 0.2, and LoRA cannot widen that (lm_head and the norms stay frozen), so a random tiny VLA could not
            # learn to prefer any token. The final norm's gain sets the logit spread to about LOGIT_STD.
            hidden = cfg.text_config["hidden_size"]
            model.language_model.model.norm.weight.fill_(LOGIT_STD / (0.02 * hidden**0.5))
    write_checkpoint({k: v.to(dtype) for k, v in model.state_dict().items()}, cfg, directory)
    write_offline_tokenizer(directory)
    return Path(directory)
