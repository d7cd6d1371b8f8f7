import pytest
import torch

from robot_parl.models.autoregressive import AutoregressiveConfig, detokenize, tokenize
from robot_parl.models.base import BasePolicy, ImageInput, ObsSpec
from robot_parl.models.bc import train_bc
from robot_parl.models.diffusion import DiffusionConfig, cosine_betas
from robot_parl.models.encoders import ObservationEncoder
from robot_parl.models.factory import PolicyConfig
from robot_parl.models.gaussian import GaussianConfig
from robot_parl.typed_config import ConfigError, load

SMALL = PolicyConfig(
    diffusion=DiffusionConfig(hidden_dim=64, num_blocks=2, obs_hidden_dims=(64,), obs_dim=64, lr=1e-3, ema=0.9),
    autoregressive=AutoregressiveConfig(num_bins=32, d_model=32, num_layers=1, num_heads=2, obs_hidden_dims=(64,),
                                        lr=1e-3),
    gaussian=GaussianConfig(hidden_dims=(64, 64), lr=1e-3),
)
KINDS = ["diffusion", "autoregressive", "gaussian"]


def _policy(kind, spec=None, action_dim=2, seed=0):
    torch.manual_seed(seed)
    spec = spec or ObsSpec(state_dim=3)
    cfg = PolicyConfig(kind=kind, diffusion=SMALL.diffusion, autoregressive=SMALL.autoregressive,
                       gaussian=SMALL.gaussian)
    return cfg.build(spec, action_dim)


def _data(n=256):
    g = torch.Generator().manual_seed(1)
    s = torch.rand(n, 3, generator=g) * 2 - 1
    a = torch.stack([s[:, 0] * 0.8, -s[:, 1] * 0.5], dim=1)  # a deterministic map to imitate
    return {"state": s}, a


@pytest.mark.parametrize("kind", KINDS)
def test_sample_shape_bounds_and_protocol(kind):
    policy = _policy(kind)
    assert isinstance(policy, BasePolicy)
    x = policy.sample({"state": torch.randn(4, 3)}, 7)
    assert x.shape == (4, 7, 2)
    assert x.min() >= -1 and x.max() <= 1
    assert x.std(dim=1).mean() > 0  # stochastic


@pytest.mark.parametrize("kind", KINDS)
def test_behaviour_cloning_fits_a_deterministic_map(kind):
    policy = _policy(kind)
    obs, actions = _data()
    first = policy.loss(obs, actions).item()
    train_bc(policy, obs, actions, steps=300, batch_size=64, generator=torch.Generator().manual_seed(0))
    assert policy.loss(obs, actions).item() < first
    samples = policy.sample({"state": obs["state"][:64]}, 8).mean(dim=1)
    err = (samples - actions[:64]).abs().mean().item()
    assert err < 0.15, f"{kind} BC error {err}"


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_and_sync_state_reproduce_samples(kind, tmp_path):
    policy = _policy(kind)
    obs, actions = _data()
    train_bc(policy, obs, actions, steps=5, batch_size=32)
    policy.save(tmp_path)
    other = _policy(kind, seed=1)
    other.load(tmp_path)
    probe = {"state": obs["state"][:5]}

    def draw(p):
        return p.sample(probe, 4, generator=torch.Generator().manual_seed(9))

    assert torch.equal(draw(policy), draw(other))
    assert other.updates == policy.updates
    third = _policy(kind, seed=2)
    third.load_sync_state(policy.sync_state())
    assert torch.equal(draw(policy), draw(third))
    # the optimizer state came back too: the next step is identical
    torch.manual_seed(5)
    m1 = policy.sl_update(obs, actions)
    torch.manual_seed(5)
    m2 = other.sl_update(obs, actions)
    assert m1["loss"] == pytest.approx(m2["loss"], rel=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_weights_and_bad_actions_are_refused(kind):
    policy = _policy(kind)
    wrong = _policy(kind, spec=ObsSpec(state_dim=5))
    with pytest.raises(ValueError, match="do not fit"):
        policy.load_sync_state(wrong.sync_state())
    obs, actions = _data(8)
    actions[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        policy.sl_update(obs, actions)
    with pytest.raises(ValueError, match=r"\[B, 2\]"):
        policy.sl_update(obs, actions[:, :1])


@pytest.mark.parametrize("kind", KINDS)
def test_policies_run_on_image_observations(kind):
    policy = _policy(kind, spec=ObsSpec(proprio_dim=2, cameras=("front",)))
    obs = {"images": {"front": torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8)}, "proprio": torch.randn(3, 2)}
    assert policy.sample(obs, 2).shape == (3, 2, 2)
    assert "loss" in policy.sl_update(obs, torch.zeros(3, 2))


@pytest.mark.parametrize("kind", KINDS)
def test_policies_read_images_at_their_size_and_shift_them_only_while_training(kind):
    cfg = PolicyConfig(kind=kind, diffusion=SMALL.diffusion, autoregressive=SMALL.autoregressive,
                       gaussian=SMALL.gaussian, images=ImageInput(size=48, augment_pad=3))
    policy = cfg.build(ObsSpec(proprio_dim=2, cameras=("front",)), 2)
    encoders = [m for m in policy.modules() if isinstance(m, ObservationEncoder)]
    assert encoders and all(e.image_size == 48 and e.augment_pad == 3 for e in encoders)
    augmented = []
    for e in encoders:
        e.register_forward_pre_hook(lambda _m, _a, kw: augmented.append(kw.get("augment", False)), with_kwargs=True)
    obs = {"images": {"front": torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8)}, "proprio": torch.randn(3, 2)}
    policy.sl_update(obs, torch.zeros(3, 2))
    assert augmented and all(augmented)
    augmented.clear()
    policy.sample(obs, 2)
    assert augmented and not any(augmented)


def test_image_input_refuses_sizes_below_16():
    with pytest.raises(ConfigError, match=r"'images\.size': expected an integer >= 16, got 8"):
        load(PolicyConfig, None, ["images.size=8"])


def test_diffusion_schedule_and_ema():
    betas = cosine_betas(5)
    assert betas.shape == (5,) and (betas > 0).all() and (betas < 1).all()
    assert (betas[1:] > betas[:-1]).all()
    policy = _policy("diffusion")
    before = [p.clone() for p in policy.ema_net.parameters()]
    obs, actions = _data(32)
    policy.sl_update(obs, actions)
    after = list(policy.ema_net.parameters())
    # EMA moved by (1 - 0.9) of the gap, and is not trained by the optimizer
    for b, a, p in zip(before, after, policy.net.parameters()):
        assert torch.allclose(a, 0.9 * b + 0.1 * p, atol=1e-6)
    assert not any(p.requires_grad for p in policy.ema_net.parameters())


def test_action_tokens_round_trip():
    a = torch.tensor([-1.0, -0.99, 0.0, 0.5, 1.0, 3.0])
    tokens = tokenize(a, 128)
    assert tokens.min() >= 0 and tokens.max() <= 127
    assert tokens[0] == 0 and tokens[-1] == 127 and tokens[-2] == 127
    back = detokenize(tokens, 128)
    assert (back[:5] - a[:5]).abs().max() <= 1 / 128 + 1e-6
