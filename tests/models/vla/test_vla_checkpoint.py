import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from robot_parl.models.vla.card import LoRASettings
from robot_parl.models.vla.checkpoint import (
    build_model,
    load_weights,
    tiny_config,
    weight_shapes,
    write_checkpoint,
)
from robot_parl.models.vla.model import OpenVLAModel, VLAConfig
from robot_parl.models.vla.policy import VLAPolicy, lora_parameter_count
from robot_parl.models.vla.prompt import write_offline_tokenizer


def _inputs(cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.tensor([[1, 512, 1000, 4000, 29871]])
    return ids, torch.randn(1, 6, cfg.image_size, cfg.image_size, generator=g)


def test_write_load_round_trip_gives_identical_logits(tmp_path):
    cfg = tiny_config()
    torch.manual_seed(0)
    model = OpenVLAModel(cfg).eval()
    # Shards of at most 1 MB exercise the index file.
    write_checkpoint(model.state_dict(), cfg, tmp_path, max_shard_bytes=2**20)
    assert (tmp_path / "model.safetensors.index.json").is_file()
    loaded = build_model(VLAConfig.read(tmp_path), torch.float32)
    load_weights(loaded, tmp_path, torch.float32)
    ids, pixels = _inputs(cfg)
    with torch.no_grad():
        a = model(ids, pixel_values=pixels).logits
        b = loaded.eval()(ids, pixel_values=pixels).logits
    assert a.shape == (1, 5 + model.num_patches, 32064)
    assert torch.equal(a, b)


def test_image_patches_follow_bos_and_loss_ignores_them(tmp_path):
    cfg = tiny_config()
    torch.manual_seed(0)
    model = OpenVLAModel(cfg).eval()
    ids, pixels = _inputs(cfg)
    embeds, mask = model.embed(ids, pixels)
    tokens = model.language_model.get_input_embeddings()(ids)
    assert torch.equal(embeds[:, 0], tokens[:, 0])
    assert torch.equal(embeds[:, 1 + model.num_patches:], tokens[:, 1:])
    assert mask.shape == embeds.shape[:2] and bool(mask.all())
    labels = ids.clone()
    labels[:, :3] = -100
    with torch.no_grad():
        out = model(ids, pixel_values=pixels, labels=labels)
    # The loss is the LM's shifted cross-entropy over the text positions after the patches.
    logits = out.logits[0, model.num_patches + 2: -1]
    expected = torch.nn.functional.cross_entropy(logits, ids[0, 3:])
    assert torch.allclose(out.loss, expected, atol=1e-6)


def _copy_checkpoint(src, dst, edit):
    state = load_file(src / "model.safetensors")
    edit(state)
    dst.mkdir()
    save_file(state, str(dst / "model.safetensors"))
    (dst / "config.json").write_text((src / "config.json").read_text())
    write_offline_tokenizer(dst)
    return dst


def test_mismatched_checkpoints_are_refused_with_the_keys_listed(tiny_checkpoint, tmp_path):
    def drop(state):
        del state["projector.fc3.bias"]
        state["language_model.extra.weight"] = torch.zeros(2)

    bad = _copy_checkpoint(tiny_checkpoint, tmp_path / "a", drop)
    with pytest.raises(ValueError, match=r"missing keys 1 \['projector.fc3.bias'\].*unexpected keys 1 "
                                         r"\['language_model.extra.weight'\]"):
        VLAPolicy.from_checkpoint(bad, dtype="float32")

    def reshape(state):
        state["language_model.model.norm.weight"] = torch.ones(32)

    bad = _copy_checkpoint(tiny_checkpoint, tmp_path / "b", reshape)
    with pytest.raises(ValueError, match=r"wrong shapes 1 \['language_model.model.norm.weight: checkpoint \(32,\)"):
        VLAPolicy.from_checkpoint(bad, dtype="float32")


def test_tower_hyperparameters_are_checked_against_the_weights(tiny_checkpoint):
    towers = json.loads((tiny_checkpoint / "config.json").read_text())["vision_towers"]
    wrong = [dict(towers[0], depth=5, mlp_hidden=99), towers[1]]
    with pytest.raises(ValueError, match=r"vision tower 0 \(tiny_vit_dinov2_reg4\).*depth: spec 5, weights imply 3; "
                                         r"mlp_hidden: spec 99, weights imply 64"):
        VLAPolicy.from_checkpoint(tiny_checkpoint, dtype="float32", vision_towers=wrong)
    with pytest.raises(ValueError, match="unknown keys \\['width'\\]"):
        VLAPolicy.from_checkpoint(tiny_checkpoint, dtype="float32", vision_towers=[dict(towers[0], width=3), towers[1]])


def test_unknown_tower_ids_need_a_spec(tiny_checkpoint):
    data = json.loads((tiny_checkpoint / "config.json").read_text())
    del data["vision_towers"]
    with pytest.raises(ValueError, match="no known hyperparameters for timm model ids"):
        VLAConfig.from_json(data)
    assert VLAConfig.from_json(data, vision_towers=tiny_config().to_json()["vision_towers"]).vision_dim == 80


def test_seven_billion_layout_from_real_timm_ids():
    """The real OpenVLA-7B shapes, on the meta device: parameter counts and the LoRA size."""
    data = {"timm_model_ids": ["vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224"],
            "image_sizes": [224, 224], "use_fused_vision_backbone": True, "pad_to_multiple_of": 64,
            "text_config": {"model_type": "llama", "pad_token_id": 32000, "vocab_size": 32064}}
    cfg = VLAConfig.from_json(data)
    assert cfg.vision_dim == 2176
    model = build_model(cfg, torch.bfloat16)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(model.vision_backbone) == pytest.approx(731e6, rel=0.01)
    assert count(model.projector) == pytest.approx(71e6, rel=0.01)
    assert count(model.language_model) == pytest.approx(6.74e9, rel=0.01)
    assert model.num_patches == 256
    assert lora_parameter_count(model, LoRASettings(r=32)) == 109_563_904


def test_weight_shapes_reads_headers_only(tiny_checkpoint):
    shapes = weight_shapes(tiny_checkpoint)
    assert shapes["language_model.lm_head.weight"] == (32064, 64)
    assert "vision_backbone.fused_featurizer.attn_pool.latent" in shapes
