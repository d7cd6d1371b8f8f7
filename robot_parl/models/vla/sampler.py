"""Fast candidate sampling: the image and prompt run once, the KV cache is shared by N candidates.

transformers' ``generate()`` on N copies of a VLA prompt computes the image towers, the whole prompt
and full-vocabulary logits at every prompt position N times. Here the prefix (BOS, image patches,
prompt) runs once per state, its KV cache is repeated N times, and each of the action dimensions takes
one decode step whose logits are computed only for the 256 action tokens (or the full vocabulary, to
mirror OpenVLA's ``predict_action``). Prompts of different lengths are right-padded; every decode step
gets explicit positions, and the padded cache slots are masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from transformers import StaticCache

from robot_parl.models import noise
from robot_parl.models.vla.card import SamplerConfig
from robot_parl.models.vla.model import OpenVLAModel
from robot_parl.models.vla.prompt import PAD_ID

Vocabulary = Literal["actions", "full"]


@dataclass
class TokenSamples:
    """Sampled tokens per state and candidate: ids and log-probs [B, N, steps]."""

    token_ids: torch.Tensor
    log_probs: torch.Tensor


def choose_tokens(logits: torch.Tensor, cfg: SamplerConfig,
                  generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One token per row of ``logits`` [R, V]: (column index [R], log-prob [R]).

    The log-prob is under the distribution actually sampled from (temperature and top-k applied;
    temperature 1 when greedy). Sampling is Gumbel-max with noise [R, V] drawn from ``generator``, so
    the same generator state gives the same tokens whichever path computed the logits.
    """
    logits = logits.float()
    scaled = logits / cfg.temperature if cfg.temperature > 0 else logits
    if 0 < cfg.token_top_k < scaled.shape[-1]:
        kth = scaled.topk(cfg.token_top_k, dim=-1).values[:, -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    log_probs = torch.log_softmax(scaled, dim=-1)
    if cfg.temperature == 0:
        index = scaled.argmax(dim=-1)
    else:
        uniform = noise.rand(scaled.shape, generator, scaled.device).clamp_(min=1e-20)
        index = (log_probs - torch.log(-torch.log(uniform))).argmax(dim=-1)
    return index, log_probs.gather(1, index[:, None])[:, 0]


def pad_prompts(prompts: list[list[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded input_ids [B, T] (PAD) and attention_mask [B, T]."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), PAD_ID, dtype=torch.long, device=device)
    mask = torch.zeros((len(prompts), width), dtype=torch.long, device=device)
    for i, p in enumerate(prompts):
        ids[i, : len(p)] = torch.tensor(p, dtype=torch.long, device=device)
        mask[i, : len(p)] = 1
    return ids, mask


class CandidateSampler:
    """Draws ``n`` token sequences per state from one prefix pass and a shared, repeated KV cache."""

    def __init__(self, model: OpenVLAModel, action_ids: torch.Tensor):
        self.model = model
        self.action_ids = action_ids  # the 256 action token ids, in column order
        self._buffers: dict[tuple[int, str], torch.Tensor] = {}

    def _repeat_cache(self, cache: StaticCache, n: int) -> None:
        """Repeat each state's cache rows n times, into buffers kept between calls.

        Fresh CPU memory of this size is page-faulted in on every call, which cost more than the
        decoding itself; an actor samples with the same shapes at every control step.
        """
        for i, layer in enumerate(cache.layers):
            for attr in ("keys", "values"):
                src = getattr(layer, attr)
                shape = (src.shape[0] * n, *src.shape[1:])
                buf = self._buffers.get((i, attr))
                if buf is None or buf.shape != shape or buf.dtype != src.dtype or buf.device != src.device:
                    buf = self._buffers[(i, attr)] = torch.empty(shape, dtype=src.dtype, device=src.device)
                buf.view(src.shape[0], n, *src.shape[1:]).copy_(src.unsqueeze(1).expand(-1, n, *src.shape[1:]))
                setattr(layer, attr, buf)
            layer.batch_size = shape[0]

    def _logits(self, hidden: torch.Tensor, vocabulary: Vocabulary) -> torch.Tensor:
        weight = self.model.language_model.lm_head.weight
        if vocabulary == "full":
            return self.model.language_model.lm_head(hidden)
        return hidden @ weight[self.action_ids.to(weight.device)].T

    def _ids(self, index: torch.Tensor, vocabulary: Vocabulary) -> torch.Tensor:
        return index if vocabulary == "full" else self.action_ids.to(index.device)[index]

    @torch.no_grad()
    def sample(self, prompts: list[list[int]], pixel_values: torch.Tensor, n: int, steps: int, cfg: SamplerConfig,
               generator: torch.Generator | None = None, vocabulary: Vocabulary = "actions") -> TokenSamples:
        """``steps`` tokens for each of ``n`` candidates per prompt (prompts end with the "▁" token)."""
        if len(prompts) != pixel_values.shape[0]:
            raise ValueError(f"{len(prompts)} prompts but {pixel_values.shape[0]} images")
        lm = self.model.language_model
        device = lm.lm_head.weight.device
        ids, mask = pad_prompts(prompts, device)
        embeds, mask = self.model.embed(ids, pixel_values.to(device), mask)
        rows, width = mask.shape
        lengths = mask.sum(dim=1)  # real positions per row; with right padding the next position is this
        # A preallocated cache written in place: growing it by concatenation would copy it every step.
        cache = StaticCache(config=lm.config, max_cache_len=width + steps)
        mask = torch.cat([mask, mask.new_zeros(rows, steps)], dim=1)
        positions = torch.arange(width, device=device)[None].expand(rows, -1)
        out = lm.model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, past_key_values=cache,
                       use_cache=True)
        hidden = out.last_hidden_state[torch.arange(rows, device=device), lengths - 1].repeat_interleave(n, dim=0)
        self._repeat_cache(cache, n)
        mask = mask.repeat_interleave(n, dim=0)
        position = lengths.repeat_interleave(n, dim=0)[:, None]
        tokens, log_probs = [], []
        for step in range(steps):
            index, log_prob = choose_tokens(self._logits(hidden, vocabulary), cfg, generator)
            token = self._ids(index, vocabulary)
            tokens.append(token)
            log_probs.append(log_prob)
            if step == steps - 1:
                break
            mask[:, width + step] = 1
            out = lm.model(inputs_embeds=lm.get_input_embeddings()(token[:, None]), attention_mask=mask,
                           position_ids=position + step, past_key_values=cache, use_cache=True)
            hidden = out.last_hidden_state[:, -1]
        shape = (len(prompts), n, steps)
        return TokenSamples(torch.stack(tokens, 1).view(shape), torch.stack(log_probs, 1).view(shape))
