import json

import numpy as np
import pytest
import torch

from robot_parl.models.base import BasePolicy
from robot_parl.models.vla.card import LoRASettings, VLACard
from robot_parl.models.vla.model import IGNORE_INDEX
from robot_parl.models.vla.policy import VLAPolicy
from robot_parl.models.vla.prompt import EOS_ID, prompt_ids
from robot_parl.models.vla.sampler import pad_prompts


def _logits(policy, obs):
    ids = torch.tensor([prompt_ids(policy.tokenizer, obs["instruction"][0])])
    with torch.no_grad():
        return policy.model(ids, pixel_values=policy.preprocess(obs["images"]["front"][:1])).logits


def _trained(policy, obs, steps=3, seed=0):
    targets = torch.rand(len(obs["instruction"]), 7, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return [policy.sl_update(obs, targets)["loss"] for _ in range(steps)], targets


def test_protocol_and_a_lora_step_lowers_the_loss(tiny_checkpoint, image_obs):
    policy = VLAPolicy.from_checkpoint(tiny_checkpoint, dtype="float32", card=VLACard(checkpoint="x", lr=1e-2))
    assert isinstance(policy, BasePolicy)
    obs = image_obs(batch=2)
    losses, targets = _trained(policy, obs, steps=5)
    assert all(b < a for a, b in zip(losses, losses[1:])) and losses[-1] < losses[0] - 0.2
    trainable = {n for n, p in policy.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert not any("lm_head" in n or "embed_tokens" in n for n in trainable)


def test_action_position_loss_equals_openvlas_labelled_forward(tiny_policy, image_obs):
    # Prompts of different lengths (right padding) so every row's action positions differ.
    obs = image_obs(batch=2)
    obs["instruction"] = ["pick up the cube", "put the red block into the blue bowl on the left"]
    actions = torch.rand(2, 7, generator=torch.Generator().manual_seed(1)) * 2 - 1
    prompts, pixels = tiny_policy._inputs(obs)
    tokens = tiny_policy.action_tokens.encode(actions.numpy())
    sequences = [p + [int(t) for t in row] + [EOS_ID] for p, row in zip(prompts, tokens)]
    ids, mask = pad_prompts(sequences, torch.device("cpu"))
    labels = ids.masked_fill(mask == 0, IGNORE_INDEX)
    for i, p in enumerate(prompts):
        labels[i, : len(p)] = IGNORE_INDEX
    with torch.no_grad():
        reference = tiny_policy.model(ids, mask, pixels, labels=labels).loss
        fast = tiny_policy.loss(obs, actions)
    assert len(prompts[0]) != len(prompts[1])
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-6)


def test_hot_swap_makes_the_actor_equal_the_learner(tiny_checkpoint, image_obs):
    learner = VLAPolicy.from_checkpoint(tiny_checkpoint, dtype="float32", card=VLACard(checkpoint="x", lr=1e-2))
    actor = VLAPolicy.from_checkpoint(tiny_checkpoint, dtype="float32")
    obs = image_obs(batch=2)
    _trained(learner, obs)
    assert not torch.equal(_logits(actor, obs), _logits(learner, obs))
    actor.load_sync_state(learner.sync_state())
    assert torch.equal(_logits(actor, obs), _logits(learner, obs))
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(actor.sample(obs, 4, g()), learner.sample(obs, 4, g()))


def test_an_adapter_for_another_base_is_refused(tiny_checkpoint):
    actor = VLAPolicy.from_checkpoint(tiny_checkpoint, dtype="float32")
    other_rank = VLAPolicy.from_checkpoint(tiny_checkpoint, dtype="float32",
                                           card=VLACard(checkpoint="x", lora=LoRASettings(r=4)))
    with pytest.raises(ValueError, match=r"weights do not fit this VLA.s adapter .*wrong shapes"):
        actor.load_sync_state(other_rank.sync_state())
    state = actor.sync_state()
    state["language_model.model.layers.9.mlp.up_proj.lora_A.default.weight"] = torch.zeros(32, 64)
    with pytest.raises(ValueError, match=r"unexpected \['language_model.model.layers.9"):
        actor.load_sync_state(state)


@pytest.mark.parametrize("quantization", ["4bit", "8bit"])
def test_quantized_actor_runs_and_takes_a_float_adapter(tiny_checkpoint, image_obs, quantization):
    bnb = pytest.importorskip("bitsandbytes")
    actor = VLAPolicy.from_checkpoint(tiny_checkpoint, dtype="float32", quantization=quantization)
    layer = actor.model.language_model.model.layers[0].self_attn.q_proj.base_layer
    assert isinstance(layer, bnb.nn.Linear4bit if quantization == "4bit" else bnb.nn.Linear8bitLt)
    assert actor.model.language_model.lm_head.weight.dtype == torch.float32  # lm_head is never quantized
    obs = image_obs(batch=2)
    full = VLAPolicy.from_checkpoint(tiny_checkpoint, dtype="float32", card=VLACard(checkpoint="x", lr=1e-2))
    _trained(full, obs)
    actor.load_sync_state(full.sync_state())
    a, b = _logits(actor, obs), _logits(full, obs)
    # Quantization error only: the adapted models agree far better than unrelated logits would.
    assert (a - b).abs().mean() < 0.2 * b.abs().mean()
    assert actor.sample(obs, 3).shape == (2, 3, 7)
    losses, _ = _trained(actor, obs, steps=2)  # QLoRA: a supervised step on the quantized base
    assert all(np.isfinite(losses))


def test_exports_adapter_and_merged_checkpoint(tiny_checkpoint, image_obs, tmp_path):
    policy = VLAPolicy.from_checkpoint(tiny_checkpoint, dtype="float32", card=VLACard(checkpoint="x", lr=1e-2))
    obs = image_obs(batch=2)
    _trained(policy, obs)
    adapter = policy.export_adapter(tmp_path / "adapter")
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"], config["lora_dropout"]) == (32, 16, 0.0)
    assert "lm_head" not in json.dumps(config["target_modules"])
    from safetensors import safe_open

    with safe_open(adapter / "adapter_model.safetensors", "pt") as f:
        keys = list(f.keys())
    assert keys and all("lora_" in k for k in keys)  # no embeddings saved

    merged_dir = policy.export_merged(tmp_path / "merged", dtype="float32")
    merged = VLAPolicy.from_checkpoint(merged_dir, dtype="float32")
    assert json.loads((merged_dir / "config.json").read_text())["norm_stats"] == policy.config.norm_stats
    torch.testing.assert_close(_logits(merged, obs), _logits(policy, obs), atol=1e-4, rtol=0)

    # A 4-bit policy exports its merge on an unquantized base loaded afresh, never on its own layers.
    quantized = VLAPolicy.from_checkpoint(tiny_checkpoint, dtype="float32", quantization="4bit")
    quantized.load_sync_state(policy.sync_state())
    merged_q = VLAPolicy.from_checkpoint(quantized.export_merged(tmp_path / "merged-q", dtype="float32"),
                                         dtype="float32")
    torch.testing.assert_close(_logits(merged_q, obs), _logits(policy, obs), atol=1e-4, rtol=0)


def test_save_load_resumes_adapter_and_optimizer(tiny_checkpoint, image_obs, tmp_path):
    obs = image_obs(batch=2)
    a = VLAPolicy.from_checkpoint(tiny_checkpoint, dtype="float32", card=VLACard(checkpoint="x", lr=1e-2))
    _trained(a, obs, steps=2)
    a.save(tmp_path)
    b = VLAPolicy.from_checkpoint(tiny_checkpoint, dtype="float32", card=VLACard(checkpoint="x", lr=1e-2))
    b.load(tmp_path)
    assert b.updates == 2
    assert _trained(a, obs, steps=1, seed=1)[0] == _trained(b, obs, steps=1, seed=1)[0]
    assert torch.equal(_logits(a, obs), _logits(b, obs))


def test_predict_action_mirrors_openvla(tiny_policy, image_obs):
    obs = image_obs(batch=1)
    ids = torch.tensor([prompt_ids(tiny_policy.tokenizer, obs["instruction"][0])])
    pixels = tiny_policy.preprocess(obs["images"]["front"])
    action = tiny_policy.predict_action(ids[:, :-1], pixels)  # the "▁" token is appended when missing
    assert action.shape == (7,)
    # Greedy over the full vocabulary, one step at a time, from full forward passes.
    seq = ids[0].tolist()
    for _ in range(7):
        with torch.no_grad():
            seq.append(int(tiny_policy.model(torch.tensor([seq]), pixel_values=pixels).logits[0, -1].argmax()))
    expected = tiny_policy.unnormalize(tiny_policy.action_tokens.decode(np.array(seq[-7:])))
    np.testing.assert_array_equal(action, expected)


def test_observations_must_carry_the_camera_and_an_instruction(tiny_checkpoint, image_obs):
    policy = VLAPolicy.from_checkpoint(tiny_checkpoint, dtype="float32")
    obs = image_obs(batch=1)
    with pytest.raises(KeyError, match="no image from camera 'wrist'"):
        VLAPolicy.from_checkpoint(tiny_checkpoint, dtype="float32",
                                  card=VLACard(checkpoint="x", camera="wrist")).sample(obs, 2)
    with pytest.raises(ValueError, match="carries no instruction.*actor.instructions"):
        policy.sample({"images": obs["images"]}, 2)
    with pytest.raises(ValueError, match="carries no instruction"):
        policy.sample({"images": obs["images"], "instruction": [""]}, 2)
    with pytest.raises(ValueError, match="actions must be"):
        policy.sl_update(obs, torch.zeros(1, 6))


def test_loading_names_the_dataset_and_spells_no_quantization_one_way(tmp_path):
    from robot_parl.models.vla.checkpoint import default_action_stats, tiny_config, write_random_checkpoint

    two = {"bridge_orig": {"action": default_action_stats()},
           "fractal": {"action": dict(default_action_stats(), q01=[-2.0] * 7, q99=[3.0] * 7)}}
    checkpoint = write_random_checkpoint(tmp_path / "two", tiny_config(two, image_size=28))
    with pytest.raises(ValueError, match="several datasets.*unnorm_key"):
        VLAPolicy.from_checkpoint(checkpoint, dtype="float32")
    policy = VLAPolicy.from_checkpoint(checkpoint, dtype="float32", unnorm_key="fractal")
    assert policy.unnorm_key == "fractal" and policy.unnormalize(np.zeros(7))[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="quantization must be one of \\['none', '8bit', '4bit'\\].*got None"):
        VLAPolicy.from_checkpoint(checkpoint, dtype="float32", quantization=None, unnorm_key="fractal")


def test_plugs_into_the_parl_agent_on_image_observations(tiny_checkpoint, image_obs):
    """One critic step and one distillation step of the unchanged PA-RL agent with the tiny VLA."""
    from robot_parl.models.base import ObsSpec
    from robot_parl.rl.agent import ParlAgent
    from robot_parl.rl.config import CriticConfig, ParlConfig
    from robot_parl.rl.critic import QEnsemble
    from robot_parl.rl.replay import Episode

    policy = VLAPolicy.from_checkpoint(tiny_checkpoint, dtype="float32",
                                       card=VLACard(checkpoint="x", instruction="pick up the cube", lr=1e-2))
    critic_cfg = CriticConfig(ensemble_size=2, hidden_dims=(16,), embedding_dim=16, image_encoder="small_cnn",
                              image_size=32, augment_pad=2, batch_size=4)
    cfg = ParlConfig(num_samples=4, top_k=2, local_steps=1, step_size=0.01, critic=critic_cfg)
    torch.manual_seed(0)
    spec = ObsSpec(cameras=("front",))
    agent = ParlAgent(policy, QEnsemble(spec, 7, critic_cfg), cfg, -torch.ones(7), torch.ones(7))
    t = 3
    obs = {"images": {"front": image_obs(batch=t + 1)["images"]["front"]}}  # the replay holds tensors only
    episode = Episode(obs, torch.rand(t, 7) * 2 - 1, torch.tensor([-1.0, -1.0, 0.0]), True,
                      agent.sample_candidates(obs))
    agent.add_episode(episode, online=False)
    decision = agent.act({"images": {"front": obs["images"]["front"][:1]}})
    assert decision.actions.shape == (1, 7) and decision.candidates.shape == (1, 4, 7)
    before = policy.sync_state()
    metrics = agent.critic_update()
    assert np.isfinite(metrics["critic_loss"])
    metrics = agent.distill_update()
    assert np.isfinite(metrics["distill_loss"])
    after = policy.sync_state()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_policy_cards_load(tmp_path, image_obs):
    from pathlib import Path

    from robot_parl.models.vla.checkpoint import write_random_checkpoint
    from robot_parl.typed_config import ConfigError, load

    root = Path(__file__).resolve().parents[3] / "policies"
    big = load(VLACard, root / "openvla-7b.yaml")
    assert (big.quantization, big.lora.r, big.lora.alpha, big.parl["num_samples"]) == ("4bit", 32, 16, 8)
    tiny = load(VLACard, root / "tiny-vla.yaml", [f"checkpoint={tmp_path / 'ckpt'}"])
    write_random_checkpoint(tiny.checkpoint)
    policy = VLAPolicy.from_card(tiny)
    assert policy.sample({"images": image_obs(batch=1)["images"]}, 2).shape == (1, 2, 7)  # the card's instruction
    with pytest.raises(ConfigError, match="quantization"):
        load(VLACard, root / "tiny-vla.yaml", ["quantization=3bit"])


def test_micro_batches_and_gradient_checkpointing_make_the_same_lora_step(tiny_checkpoint, image_obs):
    # the 7B memory plan: distillation accumulates a batch's gradients over micro-batches and recomputes the
    # decoder layers in the backward pass; neither may change the step (the loss is a mean over rows)
    obs = image_obs(batch=4, instructions=("pick up the red cube", "put the cube in the bin now", "open the drawer",
                                            "stack the blocks"))
    targets = torch.rand(4, 7, generator=torch.Generator().manual_seed(3)) * 2 - 1
    runs = {}
    for name, micro, checkpointing in (("whole", 0, False), ("micro", 3, False), ("both", 1, True)):
        torch.manual_seed(0)  # the same LoRA initialisation in each
        policy = VLAPolicy.from_checkpoint(tiny_checkpoint, dtype="float32",
                                           card=VLACard(checkpoint="x", gradient_checkpointing=checkpointing))
        assert policy.model.language_model.model.gradient_checkpointing is checkpointing
        metrics = policy.sl_update(obs, targets, micro_batch=micro)
        runs[name] = (metrics["loss"], metrics["grad_norm"], policy.sync_state())
    loss, norm, adapter = runs["whole"]
    for name in ("micro", "both"):
        assert runs[name][0] == pytest.approx(loss, rel=1e-5) and runs[name][1] == pytest.approx(norm, rel=1e-4)
        for key, value in adapter.items():
            torch.testing.assert_close(runs[name][2][key], value, rtol=1e-4, atol=1e-6)
