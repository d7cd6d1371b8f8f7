"""Parity with OpenVLA's own code: reference tensors computed by upstream's modeling_prismatic.py.

The fixture (tests/models/vla/fixtures/openvla_parity, see its README) holds the key names and shapes of a
tiny checkpoint that upstream's save_pretrained wrote, upstream's config.json, the inputs, and upstream's
outputs. The weights are regenerated here with the same seeded recipe, written as a checkpoint, and loaded
with no renaming.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from robot_parl.models.vla.card import SamplerConfig
from robot_parl.models.vla.policy import VLAPolicy
from robot_parl.models.vla.prompt import write_offline_tokenizer

FIXTURE = Path(__file__).parent / "fixtures" / "openvla_parity"


def seeded_weights(shapes):
    g = torch.Generator().manual_seed(0)
    out = {}
    for name in sorted(shapes):
        shape = tuple(shapes[name])
        noise = torch.randn(shape, generator=g)
        out[name] = 1 + 0.1 * noise if len(shape) == 1 and name.endswith("weight") else 0.1 * noise
    return out


@pytest.fixture(scope="module")
def upstream_checkpoint(tmp_path_factory):
    directory = tmp_path_factory.mktemp("openvla-parity")
    save_file(seeded_weights(json.loads((FIXTURE / "shapes.json").read_text())), str(directory / "model.safetensors"))
    (directory / "config.json").write_text((FIXTURE / "config.json").read_text())
    write_offline_tokenizer(directory)
    return directory


@pytest.fixture(scope="module")
def policy(upstream_checkpoint):
    towers = json.loads((FIXTURE / "vision_towers.json").read_text())
    return VLAPolicy.from_checkpoint(upstream_checkpoint, dtype="float32", vision_towers=towers)


def test_logits_and_loss_match_openvla(policy):
    ref = load_file(str(FIXTURE / "reference.safetensors"))
    with torch.no_grad():
        out = policy.model(ref["input_ids"], ref["attention_mask"], ref["pixel_values"], labels=ref["labels"])
    assert out.logits.shape == (1, 27, 32064)
    ours = out.logits[..., ref["logit_columns"]]
    assert (ours - ref["logits"]).abs().max().item() <= 1e-4
    assert abs(out.loss.item() - ref["loss"].item()) <= 1e-4


def test_greedy_actions_match_openvla(policy):
    ref = load_file(str(FIXTURE / "reference.safetensors"))
    action = policy.predict_action(ref["input_ids"], ref["pixel_values"], unnorm_key="parity_ds")
    tokens = policy.sampler.sample([ref["input_ids"][0].tolist()], ref["pixel_values"], 1, 7,
                                   SamplerConfig(temperature=0.0), vocabulary="full")
    assert tokens.token_ids[0, 0].tolist() == ref["greedy_token_ids"].tolist()
    np.testing.assert_allclose(action, ref["action"].numpy(), atol=1e-6)
    # In-range and clipped ids decode and un-normalize as upstream's predict_action does.
    decoded = policy.unnormalize(policy.action_tokens.decode(ref["decode_token_ids"].numpy()))
    np.testing.assert_allclose(decoded, ref["decode_actions"].numpy(), atol=1e-6)
