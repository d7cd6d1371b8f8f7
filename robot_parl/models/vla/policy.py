"""VLAPolicy: an OpenVLA-compatible VLA as a PA-RL base policy (sample, sl_update, LoRA sync, export).

Actions are OpenVLA's normalized actions in [-1, 1] (the bin centres of the action tokens); the
checkpoint's q01/q99 statistics for ``unnorm_key`` map them to the dataset's units (:meth:`VLAPolicy.unnormalize`)
and :meth:`VLAPolicy.action_space` adds the gripper mapping onto a robot. Images are preprocessed as the
checkpoint's preprocessor_config.json says. Training only touches a LoRA adapter; ``sync_state`` is that
adapter, copied in place into a live actor's model.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from torch import nn

from robot_parl.models.action_space import GripperConvention, VLAActionSpace, vla_action_space
from robot_parl.models.base import GradientSync, _check_actions, copy_state, supervised_step
from robot_parl.models.encoders import Obs
from robot_parl.models.vla.actions import ActionTokenizer, action_stats, dataset_action_space
from robot_parl.models.vla.card import LoRASettings, SamplerConfig, VLACard
from robot_parl.models.vla.checkpoint import build_model, load_weights, write_checkpoint
from robot_parl.models.vla.image import PREPROCESSOR_FILE, ImagePreprocessor
from robot_parl.models.vla.model import OpenVLAModel, VLAConfig
from robot_parl.models.vla.prompt import EOS_ID, SPACE_ID, load_tokenizer, prompt_ids
from robot_parl.models.vla.quantize import QUANTIZATIONS, quantize_decoder
from robot_parl.models.vla.sampler import CandidateSampler, pad_prompts
from robot_parl.tensor_tree import load_tree, save_tree

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class VLASamples:
    """Candidates with the VLA's own outputs: token ids and log-probs [B, N, A], actions [B, N, A] in [-1, 1]."""

    token_ids: torch.Tensor
    log_probs: torch.Tensor
    actions: torch.Tensor


def lora_targets(model: nn.Module) -> list[str]:
    """Names of every linear layer (quantized ones included) except ``lm_head``."""
    return [name for name, m in model.named_modules()
            if isinstance(m, nn.Linear) and not name.endswith("lm_head")]


class VLAPolicy:
    """An OpenVLA-compatible VLA with a LoRA adapter, implementing the BasePolicy protocol."""

    def __init__(self, model: OpenVLAModel, tokenizer, card: VLACard, checkpoint_dir: str | Path):
        self.card = card
        self.checkpoint_dir = Path(checkpoint_dir)
        self.config: VLAConfig = model.config
        self.tokenizer = tokenizer
        self.unnorm_key, self.action_stats = action_stats(self.config.norm_stats, card.unnorm_key)
        self.normalizer = dataset_action_space(self.config.norm_stats, self.unnorm_key)
        self.action_dim = self.normalizer.dim
        self.image_processor = ImagePreprocessor.for_checkpoint(self.checkpoint_dir, self.config.image_size)
        self.action_tokens = ActionTokenizer(self.config.vocab_size, self.config.n_action_bins)
        self.lora_config = LoraConfig(r=card.lora.r, lora_alpha=card.lora.alpha, lora_dropout=card.lora.dropout,
                                      target_modules=lora_targets(model), bias="none")
        self._peft = get_peft_model(model, self.lora_config)
        self.model = model  # the LoRA layers are injected in place: model's forward runs with the adapter
        self.device = model.language_model.lm_head.weight.device
        first = self.action_tokens.first_id
        self.sampler = CandidateSampler(model, torch.arange(first, first + self.config.n_action_bins))
        self.optimizer: torch.optim.Optimizer | None = None
        self.updates = 0

    # construction ---------------------------------------------------------------------------------

    @classmethod
    def from_checkpoint(cls, directory: str | Path, dtype: str | torch.dtype = "bfloat16", quantization: str = "none",
                        device: str = "cpu", vision_towers: Sequence[Mapping] | None = None,
                        card: VLACard | None = None, unnorm_key: str | None = None) -> VLAPolicy:
        """Load an OpenVLA checkpoint directory (config.json with norm_stats, safetensors, tokenizer, and
        preprocessor_config.json when it has one).

        ``quantization`` is "none", "8bit" or "4bit". ``unnorm_key`` names the dataset whose statistics map
        actions to robot units (required when the checkpoint has several, as openvla-7b does). ``card``
        supplies the remaining settings (LoRA, optimizer, camera, sampling, gripper); its checkpoint, dtype,
        quantization, device, vision_towers and (when given) unnorm_key are replaced by the arguments here.
        """
        dtype_name = dtype if isinstance(dtype, str) else next(k for k, v in _DTYPES.items() if v == dtype)
        if dtype_name not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        if quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization must be one of {list(QUANTIZATIONS)} (\"none\": full precision), "
                             f"got {quantization!r}")
        card = card or VLACard(checkpoint=str(directory))
        towers = vision_towers if vision_towers is not None else card.vision_towers
        card = VLACard(**{**card.__dict__, "checkpoint": str(directory), "dtype": dtype_name,
                          "quantization": quantization, "device": device,
                          "unnorm_key": unnorm_key if unnorm_key is not None else card.unnorm_key,
                          "vision_towers": [dict(t) for t in towers] if towers is not None else None})
        torch_dtype = _DTYPES[dtype_name]
        cfg = VLAConfig.read(directory, towers)
        model = build_model(cfg, torch_dtype)
        load_weights(model, directory, torch_dtype)
        quantize_decoder(model.language_model.model, card.quantization, torch_dtype)
        model.requires_grad_(False)
        if card.gradient_checkpointing:
            # non-reentrant: the frozen embeddings' outputs need no grad for the LoRA weights inside to get theirs
            lm = model.language_model
            if hasattr(lm, "activation_checkpointing_enable"):  # its name since transformers 5.2x
                lm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.to(device).eval()
        return cls(model, load_tokenizer(directory), card, directory)

    @classmethod
    def from_card(cls, card: VLACard) -> VLAPolicy:
        """Load the checkpoint a policy card names, with the card's precision and device."""
        if not card.checkpoint:
            raise ValueError("the VLA policy card names no checkpoint: set 'checkpoint' to an OpenVLA checkpoint "
                             "directory")
        return cls.from_checkpoint(card.checkpoint, card.dtype, card.quantization, card.device, card=card)

    # inputs ---------------------------------------------------------------------------------------

    def preprocess(self, image: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 image(s) [H, W, 3] or [B, H, W, 3] -> pixel_values [B, 6, S, S] (S = 224 for OpenVLA)."""
        return self.image_processor(image).to(self.device)

    def action_space(self, action_names: list[str], robot_gripper: GripperConvention | None) -> VLAActionSpace:
        """This checkpoint's action space on a robot with these action dimensions and gripper convention."""
        return vla_action_space(self.action_stats, self.unnorm_key, self.card.gripper, action_names, robot_gripper)

    def _instructions(self, obs: Obs, batch: int) -> list[str]:
        """One instruction per state: the observation's, or the card's where the observation has none."""
        given = obs.get("instruction")
        texts = [given] * batch if given is None or isinstance(given, str) else list(given)
        if len(texts) != batch:
            raise ValueError(f"{len(texts)} instructions for {batch} images")
        if not all(texts) and not self.card.instruction:
            raise ValueError("an observation carries no instruction and the policy card sets none: give one with "
                             "the actor's task list (actor.instructions), the robot side (--instruction) or "
                             "policy.vla.instruction")
        return [text or self.card.instruction for text in texts]

    def _inputs(self, obs: Obs) -> tuple[list[list[int]], torch.Tensor]:
        images = obs.get("images", {})
        if self.card.camera not in images:
            raise KeyError(f"observation has no image from camera {self.card.camera!r} (has {sorted(images)}); "
                           f"set 'camera' in the policy card")
        pixels = self.preprocess(images[self.card.camera])
        prompts = [prompt_ids(self.tokenizer, text) for text in self._instructions(obs, pixels.shape[0])]
        return prompts, pixels

    # sampling -------------------------------------------------------------------------------------

    def sample_with_info(self, obs: Obs, n: int, generator: torch.Generator | None = None,
                         sampler: SamplerConfig | None = None) -> VLASamples:
        """n candidates per state with their token ids and log-probs (image and prompt run once per state)."""
        prompts, pixels = self._inputs(obs)
        tokens = self.sampler.sample(prompts, pixels, n, self.action_dim, sampler or self.card.sampler, generator)
        actions = torch.from_numpy(self.action_tokens.decode(tokens.token_ids.cpu().numpy())).float()
        return VLASamples(tokens.token_ids, tokens.log_probs, actions)

    def sample(self, obs: Obs, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n candidate actions per state: [B, n, A] in [-1, 1]."""
        return self.sample_with_info(obs, n, generator).actions

    def unnormalize(self, actions: np.ndarray | torch.Tensor) -> np.ndarray:
        """Normalized actions [..., A] -> the dataset's units (q01/q99 where the mask is set; no gripper mapping)."""
        if isinstance(actions, torch.Tensor):
            actions = actions.detach().cpu().numpy()
        return self.normalizer.to_robot(actions)

    @torch.no_grad()
    def predict_action(self, input_ids: torch.Tensor, pixel_values: torch.Tensor, unnorm_key: str | None = None,
                       greedy: bool = True) -> np.ndarray:
        """OpenVLA's predict_action: batch 1, full-vocabulary decoding, un-normalized action [A]."""
        ids = [int(i) for i in torch.as_tensor(input_ids).reshape(-1)]
        if ids[-1] != SPACE_ID:
            ids.append(SPACE_ID)
        cfg = SamplerConfig(temperature=0.0 if greedy else 1.0)
        tokens = self.sampler.sample([ids], pixel_values, 1, self.action_dim, cfg, vocabulary="full")
        normalizer = self.normalizer if unnorm_key is None else dataset_action_space(self.config.norm_stats, unnorm_key)
        return normalizer.to_robot(self.action_tokens.decode(tokens.token_ids[0, 0].cpu().numpy()))

    # training -------------------------------------------------------------------------------------

    def _trainable(self) -> dict[str, nn.Parameter]:
        return {name: p for name, p in self.model.named_parameters() if "lora_" in name}

    def loss(self, obs: Obs, actions: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the action tokens and EOS after the prompt (OpenVLA's fine-tuning loss).

        The same value as the labelled forward (``model(ids, mask, pixels, labels).loss``), but the LM head
        runs only at the action positions: full-sequence logits (hundreds of positions x a 32k vocabulary
        per sample) would dominate the step's time and memory.
        """
        prompts, pixels = self._inputs(obs)
        tokens = self.action_tokens.encode(actions.detach().cpu().numpy())
        ids, mask = pad_prompts([p + [int(t) for t in row] + [EOS_ID] for p, row in zip(prompts, tokens)],
                                self.device)
        embeds, attention = self.model.embed(ids, pixels, mask)
        lm = self.model.language_model
        hidden = lm.model(inputs_embeds=embeds, attention_mask=attention, use_cache=False).last_hidden_state
        rows = torch.arange(len(prompts), device=self.device)[:, None]
        targets = torch.tensor([len(p) for p in prompts], device=self.device)[:, None] + \
            torch.arange(tokens.shape[1] + 1, device=self.device)[None]
        # the hidden state before each target token; image patches sit between BOS and the prompt's rest
        logits = lm.lm_head(hidden[rows, targets - 1 + self.model.num_patches])
        return nn.functional.cross_entropy(logits.float().flatten(0, 1), ids[rows, targets].flatten())

    def sl_update(self, obs: Obs, actions: torch.Tensor, micro_batch: int = 0,
                  sync: GradientSync | None = None) -> dict[str, float]:
        """One LoRA step of the action-token cross-entropy towards ``actions`` [B, A] in [-1, 1], gradients
        accumulated over ``micro_batch`` rows at a time (0: all at once) and averaged over ranks by ``sync``."""
        _check_actions(actions, self.action_dim)
        params = list(self._trainable().values())
        if self.optimizer is None:
            self.optimizer = torch.optim.AdamW(params, lr=self.card.lr)
        self.model.train()
        for p in params:
            p.requires_grad_(True)
        metrics = supervised_step(self.loss, obs, actions, params, self.optimizer, self.card.grad_clip, micro_batch,
                                  "VLA", sync)
        self.model.eval()
        self.updates += 1
        return metrics

    # weights --------------------------------------------------------------------------------------

    def sync_state(self) -> dict[str, torch.Tensor]:
        """The LoRA adapter (all an actor needs: the base weights never change)."""
        return {name: p.detach().clone() for name, p in self._trainable().items()}

    def load_sync_state(self, state: Mapping[str, torch.Tensor]) -> None:
        """Copy an adapter into the live model in place (between control steps; quantized bases too)."""
        copy_state(self._trainable(), state, f"this VLA's adapter ({self.checkpoint_dir}, LoRA r={self.card.lora.r})")

    def save(self, directory: str | Path) -> None:
        """Adapter, optimizer state and update count (the base weights stay in the checkpoint directory)."""
        tree = {"adapter": self.sync_state(), "updates": self.updates,
                "optimizer": self.optimizer.state_dict() if self.optimizer is not None else {}}
        save_tree(Path(directory) / "policy.safetensors", tree)

    def load(self, directory: str | Path) -> None:
        """Restore what :meth:`save` wrote."""
        tree = load_tree(Path(directory) / "policy.safetensors")
        self.load_sync_state(tree["adapter"])
        self.updates = tree["updates"]
        if tree["optimizer"]:
            self.optimizer = torch.optim.AdamW(list(self._trainable().values()), lr=self.card.lr)
            self.optimizer.load_state_dict(tree["optimizer"])

    def export_adapter(self, directory: str | Path) -> Path:
        """The adapter as a PEFT adapter directory (adapter_config.json, adapter_model.safetensors)."""
        self._peft.save_pretrained(str(directory), save_embedding_layers=False)
        return Path(directory)

    def export_merged(self, directory: str | Path, dtype: str = "bfloat16") -> Path:
        """The fine-tuned policy as a plain OpenVLA checkpoint, merged on a freshly loaded unquantized base."""
        torch_dtype = _DTYPES[dtype]
        base = build_model(self.config, torch_dtype)
        load_weights(base, self.checkpoint_dir, torch_dtype)
        merged = get_peft_model(base, self.lora_config)
        set_peft_model_state_dict(merged, get_peft_model_state_dict(self._peft, save_embedding_layers=False))
        state = merged.merge_and_unload().state_dict()
        write_checkpoint(state, self.config, directory)
        for path in self.checkpoint_dir.iterdir():
            if path.name.startswith(("tokenizer", "special_tokens_map", "added_tokens", PREPROCESSOR_FILE)):
                shutil.copy2(path, Path(directory) / path.name)
        return Path(directory)


def lora_parameter_count(model: nn.Module, lora: LoRASettings) -> int:
    """How many parameters a LoRA adapter of ``lora`` adds to ``model`` (works on the meta device)."""
    total = 0
    for name in lora_targets(model):
        m = model.get_submodule(name)
        total += lora.r * (m.in_features + m.out_features)
    return total
