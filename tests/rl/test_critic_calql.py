import pytest
import torch

from robot_parl.models.base import ObsSpec
from robot_parl.rl.calql import CriticBatch, cql_penalty, critic_loss, td_target
from robot_parl.rl.config import CriticConfig, ParlConfig
from robot_parl.rl.critic import QEnsemble

SMALL = CriticConfig(ensemble_size=5, hidden_dims=(32, 32), state_hidden_dims=(32,), embedding_dim=32, batch_size=8)


def _critic(cfg=SMALL, spec=None):
    torch.manual_seed(0)
    return QEnsemble(spec or ObsSpec(state_dim=4), 2, cfg)


def test_q_shapes_and_batched_actions_match_single_actions():
    critic = _critic()
    z = critic.encode({"state": torch.randn(3, 4)})
    actions = torch.rand(3, 6, 2) * 2 - 1
    q = critic.q(z, actions)
    assert q.shape == (5, 3, 6)
    assert critic.q(z, actions[:, 0]).shape == (5, 3)
    for k in range(6):
        assert torch.allclose(q[:, :, k], critic.q(z, actions[:, k]), atol=1e-5)
    # heads are different functions
    assert not torch.allclose(q[0], q[1])


def test_action_is_fed_into_every_layer():
    critic = _critic()
    for layer in critic.layers:
        assert layer.weight.shape[1] in (32 + 2,)
    assert critic.out.weight.shape[1] == 32 + 2


def test_polyak_update_moves_target_by_rate():
    critic = _critic()
    target = critic.make_target()
    with torch.no_grad():
        for p in critic.parameters():
            p.add_(1.0)
    before = [t.clone() for t in target.parameters()]
    critic.polyak_update(target, 0.1)
    for b, t, s in zip(before, target.parameters(), critic.parameters()):
        assert torch.allclose(t, 0.9 * b + 0.1 * s, atol=1e-6)
    assert not any(p.requires_grad for p in target.parameters())


def test_image_observations_are_resized_once_and_augmented_only_when_asked():
    cfg = CriticConfig(ensemble_size=2, hidden_dims=(16,), state_hidden_dims=(16,), embedding_dim=16,
                       image_encoder="small_cnn", image_size=100, augment_pad=4)
    critic = _critic(cfg, ObsSpec(proprio_dim=3, cameras=("front",)))
    g = torch.Generator().manual_seed(0)
    obs = {"images": {"front": torch.randint(0, 256, (2, 120, 160, 3), dtype=torch.uint8, generator=g)},
           "proprio": torch.randn(2, 3)}
    z1, z2 = critic.encode(obs), critic.encode(obs)
    assert z1.shape == (2, 16) and torch.equal(z1, z2)
    za = critic.encode(obs, augment=True, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(z1, za)
    with pytest.raises(ValueError, match="uint8"):
        critic.encode({"images": {"front": obs["images"]["front"].float()}, "proprio": obs["proprio"]})
    with pytest.raises(KeyError, match="camera 'front'"):
        critic.encode({"images": {"wrist": obs["images"]["front"]}, "proprio": obs["proprio"]})


def test_resnet18_groupnorm_encoder_runs_on_100px():
    cfg = CriticConfig(ensemble_size=2, hidden_dims=(16,), embedding_dim=16, image_encoder="resnet18")
    critic = _critic(cfg, ObsSpec(cameras=("front",)))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in critic.modules())
    z = critic.encode({"images": {"front": torch.zeros(1, 224, 224, 3, dtype=torch.uint8)}})
    assert z.shape == (1, 16)


def test_td_target_is_the_min_over_the_chosen_heads():
    target_q = torch.tensor([[-1.0, -5.0], [-3.0, -2.0], [-2.0, -9.0]])  # [E=3, B=2]
    y = td_target(target_q, torch.tensor([-1.0, -1.0]), torch.tensor([0.9, 0.0]), torch.tensor([0, 1]))
    assert torch.allclose(y, torch.tensor([-1 + 0.9 * -3.0, -1.0]))


class ConstantHeads(torch.nn.Module):
    """A critic whose head e always returns values[e]: exposes which heads a TD target used."""

    def __init__(self, values):
        super().__init__()
        self.values = torch.tensor(values)
        self.ensemble_size = len(values)
        self.w = torch.nn.Parameter(torch.zeros(()))

    def encode(self, obs, augment=False, generator=None):
        return obs["state"]

    def q(self, z, actions):
        shape = (self.ensemble_size, *actions.shape[:-1])
        return self.values.view(-1, *([1] * (len(shape) - 1))).expand(shape) + self.w + 0 * actions.sum(-1)


def _batch(b=8, n=6, mc=-50.0):
    g = torch.Generator().manual_seed(0)
    return CriticBatch(
        obs={"state": torch.randn(b, 4, generator=g)}, actions=torch.rand(b, 2, generator=g) * 2 - 1,
        rewards=-torch.ones(b), discounts=torch.full((b,), 0.99), next_obs={"state": torch.randn(b, 4, generator=g)},
        mc_returns=torch.full((b,), mc), candidates=torch.rand(b, n, 2, generator=g) * 2 - 1,
        next_candidates=torch.rand(b, n, 2, generator=g) * 2 - 1)


def test_critic_loss_targets_use_min_over_two_random_heads():
    values = [0.0, -1.0, -2.0, -3.0, -4.0]
    cfg = ParlConfig(num_samples=6, top_k=2, local_steps=1, critic=CriticConfig(ensemble_size=5, cql_alpha=0.0))
    critic, target = ConstantHeads(values), ConstantHeads(values)
    low, high = -torch.ones(2), torch.ones(2)
    g = torch.Generator().manual_seed(0)
    pair_mins = {-1 + 0.99 * min(a, b) for a in values for b in values if a != b}
    seen = set()
    for _ in range(60):
        _, metrics = critic_loss(critic, target, _batch(), cfg, low, high, g)
        seen.add(round(metrics["target"], 5))
    assert seen <= {round(v, 5) for v in pair_mins}
    assert len(seen) >= 3  # random pairs, not a fixed choice, not the min or mean over all heads


def test_cql_penalty_applies_the_calql_bound():
    q_data = torch.tensor([[-10.0, -10.0]])
    q_policy = torch.tensor([[[-20.0, -30.0], [-20.0, -30.0]]], requires_grad=True)
    q_random = torch.tensor([[[-40.0], [-40.0]]])
    mc = torch.tensor([-5.0, -50.0])  # the first state's policy Q is below its MC return
    bounded = cql_penalty(q_data, q_policy, q_random, mc, 1.0)
    (grad,) = torch.autograd.grad(bounded, q_policy)
    assert torch.all(grad[0, 0] == 0)  # raised to the bound: no gradient pushes it further down
    assert torch.all(grad[0, 1] > 0)
    unbounded = cql_penalty(q_data, q_policy, q_random, None, 1.0)
    assert bounded > unbounded + 1.0


def test_critic_loss_uses_the_bound_only_with_calql():
    low, high = -torch.ones(2), torch.ones(2)
    losses = {}
    for calql in (True, False):
        cfg = ParlConfig(num_samples=6, top_k=2, local_steps=1,
                         critic=CriticConfig(**{**SMALL.__dict__, "calql": calql, "cql_alpha": 1.0}))
        critic = _critic(cfg.critic)
        _, m = critic_loss(critic, critic.make_target(), _batch(mc=100.0), cfg, low, high,
                           torch.Generator().manual_seed(0))
        losses[calql] = m["cql"]
    assert losses[True] > losses[False] + 50  # MC return 100 dominates the bounded log-sum-exp


def test_critic_step_fits_a_constant_return():
    """Repeated Cal-QL steps on terminal transitions drive Q(s, a_data) to the reward."""
    cfg = ParlConfig(num_samples=6, top_k=2, local_steps=1, critic=SMALL)
    critic = _critic()
    target = critic.make_target()
    opt = torch.optim.Adam(critic.parameters(), lr=1e-2)
    batch = _batch()
    batch.discounts[:] = 0.0
    batch.rewards[:] = -3.0
    low, high = -torch.ones(2), torch.ones(2)
    for _ in range(200):
        loss, m = critic_loss(critic, target, batch, cfg, low, high)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert abs(m["q_data"] + 3.0) < 0.2


def test_bf16_autocast_keeps_q_in_float32_close_to_full_precision_and_still_fits():
    import dataclasses

    full = _critic(spec=ObsSpec(proprio_dim=4, cameras=("front",)), cfg=dataclasses.replace(
        SMALL, image_encoder="small_cnn", image_size=32))
    half = _critic(spec=ObsSpec(proprio_dim=4, cameras=("front",)), cfg=dataclasses.replace(
        SMALL, image_encoder="small_cnn", image_size=32, autocast="bf16"))
    half.load_state_dict(full.state_dict())
    obs = {"proprio": torch.randn(3, 4), "images": {"front": torch.randint(0, 255, (3, 32, 32, 3), dtype=torch.uint8)}}
    actions = torch.rand(3, 6, 2) * 2 - 1
    q_full, q_half = full.q(full.encode(obs), actions), half.q(half.encode(obs), actions)
    assert q_half.dtype == torch.float32 and half.encode(obs).dtype == torch.float32
    assert not torch.equal(q_full, q_half)  # the matmuls ran in bfloat16
    assert torch.allclose(q_full, q_half, atol=0.05)  # bfloat16 keeps ~3 significant digits
    # training in bf16 still fits a constant return (as the float32 test above)
    cfg = ParlConfig(num_samples=6, top_k=2, local_steps=1, critic=dataclasses.replace(SMALL, autocast="bf16"))
    critic = _critic(cfg=cfg.critic)
    target = critic.make_target()
    opt = torch.optim.Adam(critic.parameters(), lr=1e-2)
    batch = _batch()
    batch.discounts[:] = 0.0
    batch.rewards[:] = -3.0
    for _ in range(200):
        loss, m = critic_loss(critic, target, batch, cfg, -torch.ones(2), torch.ones(2))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert abs(m["q_data"] + 3.0) < 0.2
