"""The fast sampler against a slow reference: a full forward pass per candidate and step, no cache."""

import pytest
import torch

from robot_parl.models.vla.card import SamplerConfig
from robot_parl.models.vla.prompt import prompt_ids
from robot_parl.models.vla.sampler import choose_tokens


def slow_tokens(policy, obs, n, cfg, generator, steps=7):
    """Each candidate's sequence is re-run from scratch at every step, unpadded, one at a time."""
    images = policy.preprocess(obs["images"]["front"])
    prompts = [prompt_ids(policy.tokenizer, t) for t in obs["instruction"]]
    rows = [(prompts[b], images[b:b + 1]) for b in range(len(prompts)) for _ in range(n)]
    action_ids = policy.sampler.action_ids
    generated = [[] for _ in rows]
    for _ in range(steps):
        logits = []
        for (prompt, pixels), gen in zip(rows, generated):
            ids = torch.tensor([prompt + gen])
            with torch.no_grad():
                out = policy.model(ids, pixel_values=pixels)
            logits.append(out.logits[0, -1, action_ids])
        index, _ = choose_tokens(torch.stack(logits), cfg, generator)
        for gen, i in zip(generated, index):
            gen.append(int(action_ids[i]))
    return torch.tensor(generated).view(len(prompts), n, steps)


@pytest.mark.parametrize("cfg", [SamplerConfig(), SamplerConfig(temperature=0.7, token_top_k=20),
                                 SamplerConfig(temperature=0.0)])
def test_fast_sampler_matches_the_slow_path(tiny_policy, image_obs, cfg):
    obs = image_obs(batch=2)  # two prompts of different lengths: right padding in the fast path
    fast = tiny_policy.sample_with_info(obs, 3, torch.Generator().manual_seed(5), sampler=cfg)
    slow = slow_tokens(tiny_policy, obs, 3, cfg, torch.Generator().manual_seed(5))
    assert torch.equal(fast.token_ids, slow)
    assert fast.token_ids.min() >= 31744 and fast.token_ids.max() <= 31999
    assert bool((fast.log_probs <= 0).all())
    assert torch.equal(fast.actions, torch.from_numpy(tiny_policy.action_tokens.decode(slow.numpy())).float())


def test_the_image_changes_the_actions(tiny_policy, image_obs):
    """Regression test for OpenVLA on transformers >= 4.50, whose generation ignored the image."""
    greedy = SamplerConfig(temperature=0.0)
    obs_a, obs_b = image_obs(batch=1, seed=0), image_obs(batch=1, seed=1)
    a = tiny_policy.sample_with_info(obs_a, 1, sampler=greedy).token_ids
    b = tiny_policy.sample_with_info(obs_b, 1, sampler=greedy).token_ids
    assert not torch.equal(a, b)
    again = tiny_policy.sample_with_info(obs_a, 1, sampler=greedy).token_ids
    assert torch.equal(a, again)


def test_top_k_one_is_greedy_and_sampling_varies(tiny_policy, image_obs):
    obs = image_obs(batch=1)
    greedy = tiny_policy.sample_with_info(obs, 4, sampler=SamplerConfig(temperature=0.0)).token_ids
    top1 = tiny_policy.sample_with_info(obs, 4, torch.Generator().manual_seed(0),
                                        sampler=SamplerConfig(token_top_k=1)).token_ids
    assert torch.equal(greedy, top1)
    assert torch.equal(greedy[0, 0], greedy[0, 3])  # greedy candidates are all the same
    sampled = tiny_policy.sample(obs, 16, torch.Generator().manual_seed(0))
    assert sampled.shape == (1, 16, 7)
    assert len({tuple(row.tolist()) for row in sampled[0]}) > 1


def test_bad_sampler_settings_are_refused():
    with pytest.raises(ValueError, match="temperature"):
        SamplerConfig(temperature=-1)
    with pytest.raises(ValueError, match="token_top_k"):
        SamplerConfig(token_top_k=-2)
