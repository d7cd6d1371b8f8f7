import pytest
import torch

from robot_parl.rl.action_opt import optimize_actions
from robot_parl.rl.config import ParlConfig


class QuadraticCritic:
    """Q_e(s, a) = -|a - target_e|^2: an analytic critic with E heads and only a `q` method."""

    def __init__(self, targets: torch.Tensor):
        self.targets = targets  # [E, A]

    def q(self, z, actions):
        t = self.targets.view(self.targets.shape[0], 1, *([1] * (actions.dim() - 2)), -1)
        return -((actions.unsqueeze(0) - t) ** 2).sum(-1) + 0 * z.sum(-1).view(1, -1, *([1] * (actions.dim() - 2)))


A = 3
LOW, HIGH = -torch.ones(A), torch.ones(A)


def _setup(b=4, n=16, seed=0, targets=None):
    g = torch.Generator().manual_seed(seed)
    cands = torch.rand((b, n, A), generator=g) * 2 - 1
    targets = targets if targets is not None else torch.tensor([[0.3, -0.2, 0.5], [0.5, -0.4, 0.3]])
    return QuadraticCritic(targets), torch.zeros(b, 8), cands


def _score(critic, actions, pessimism=0.0):
    """The score (default: the ensemble mean)."""
    q = critic.q(torch.zeros(actions.shape[0], 8), actions)
    return q.mean(0) - pessimism * q.std(0, unbiased=False)


def test_global_step_keeps_the_true_top_k():
    critic, z, cands = _setup()
    cfg = ParlConfig(num_samples=16, top_k=5, local_steps=0)
    out = optimize_actions(critic, z, cands, cfg, LOW, HIGH)
    true_q = _score(critic, cands)
    assert torch.allclose(out.candidate_q, true_q)
    expected = true_q.topk(5, dim=1).values
    assert torch.allclose(out.topk_q, expected)
    for b in range(cands.shape[0]):
        want = {tuple(a.tolist()) for a in cands[b][true_q[b].topk(5).indices]}
        assert {tuple(a.tolist()) for a in out.topk_actions[b]} == want
    assert torch.equal(out.actions, out.topk_actions[torch.arange(4), out.topk_q.argmax(1)])


def test_local_ascent_never_lowers_q_and_improves():
    critic, z, cands = _setup()
    cfg = ParlConfig(num_samples=16, top_k=5, local_steps=10, step_size=0.05)
    out = optimize_actions(critic, z, cands, cfg, LOW, HIGH)
    start = _score(critic, cands).topk(5, dim=1).values
    assert (out.topk_q >= start - 1e-6).all()
    assert (out.topk_q > start + 1e-3).float().mean() > 0.9
    # topk_q is the score of the returned actions, not a stale number
    assert torch.allclose(out.topk_q, _score(critic, out.topk_actions), atol=1e-6)


def test_best_iterate_is_kept_when_steps_overshoot():
    critic, z, cands = _setup()
    # a huge step jumps far past the optimum: the best iterate (the start) must be kept
    cfg = ParlConfig(num_samples=16, top_k=5, local_steps=3, step_size=50.0, trust_region=100.0)
    out = optimize_actions(critic, z, cands, cfg, LOW, HIGH)
    start = _score(critic, cands).topk(5, dim=1).values
    assert (out.topk_q >= start - 1e-6).all()


def test_actions_stay_within_bounds():
    targets = torch.tensor([[3.0, -3.0, 2.0], [4.0, -2.0, 5.0]])  # optimum far outside the box
    critic, z, cands = _setup(targets=targets)
    low, high = torch.tensor([-0.5, -0.7, -1.0]), torch.tensor([0.6, 0.4, 0.2])
    cands = cands.clamp(low, high)
    cfg = ParlConfig(num_samples=16, top_k=5, local_steps=10, step_size=0.5, trust_region=10.0)
    out = optimize_actions(critic, z, cands, cfg, low, high)
    for x in (out.actions, out.topk_actions):
        assert (x >= low - 1e-7).all() and (x <= high + 1e-7).all()
    # and the ascent pushed them onto the bound nearest the optimum
    assert torch.allclose(out.actions, torch.stack([high[0], low[1], high[2]]).expand(4, A))


def test_replay_action_replaces_the_worst_survivor():
    critic, z, cands = _setup()
    cfg = ParlConfig(num_samples=16, top_k=5, local_steps=2, step_size=0.01)
    replay = torch.rand((4, A), generator=torch.Generator().manual_seed(3)) * 2 - 1
    plain = optimize_actions(critic, z, cands, cfg, LOW, HIGH)
    out = optimize_actions(critic, z, cands, cfg, LOW, HIGH, replay_actions=replay)
    for b in range(4):
        assert any(torch.equal(a, replay[b]) for a in out.topk_actions[b])
        worst = plain.topk_q[b].argmin()
        kept = [j for j in range(5) if j != worst]
        assert torch.equal(out.topk_actions[b, kept], plain.topk_actions[b, kept])
    assert torch.allclose(out.topk_q, _score(critic, out.topk_actions), atol=1e-6)


@pytest.mark.parametrize("select", ["argmax", "softmax"])
@pytest.mark.parametrize("replay", [False, True])
def test_gain_is_each_heads_q_of_the_selected_action_over_the_candidates_mean(select, replay):
    critic, z, cands = _setup()
    cfg = ParlConfig(num_samples=16, top_k=5, local_steps=3, step_size=0.05)
    actions = torch.rand((4, A), generator=torch.Generator().manual_seed(3)) * 2 - 1 if replay else None
    out = optimize_actions(critic, z, cands, cfg, LOW, HIGH, replay_actions=actions, select=select,
                           generator=torch.Generator().manual_seed(1))
    expected = critic.q(z, out.actions[:, None])[..., 0] - critic.q(z, cands).mean(-1)
    assert torch.allclose(out.gain, expected, atol=1e-6)
    # two heads agreeing on the ranking of candidates: the selected action is a gain beyond their spread
    assert out.trust()["sure"] == 1.0


def test_softmax_selection_samples_by_q():
    critic, z, cands = _setup(b=1, n=16)
    cfg = ParlConfig(num_samples=16, top_k=5, local_steps=0, softmax_temperature=0.05)
    g = torch.Generator().manual_seed(0)
    picks = [optimize_actions(critic, z, cands, cfg, LOW, HIGH, select="softmax", generator=g).q.item()
             for _ in range(300)]
    topk_q = optimize_actions(critic, z, cands, cfg, LOW, HIGH).topk_q[0]
    probs = torch.softmax(topk_q / 0.05, 0)
    for q, p in zip(topk_q.tolist(), probs.tolist()):
        share = sum(abs(x - q) < 1e-6 for x in picks) / len(picks)
        assert abs(share - p) < 0.1
    argmax = optimize_actions(critic, z, cands, cfg, LOW, HIGH)
    assert argmax.q.item() == pytest.approx(topk_q.max().item())


def test_refined_actions_stay_in_the_trust_region_of_the_policys_spread():
    critic, z, cands = _setup()
    cands = 0.1 * cands  # a confident policy: spread ~0.06 per dimension
    sigma = cands.std(1, unbiased=False)
    for region in (0.25, 1.0):
        cfg = ParlConfig(num_samples=16, top_k=5, local_steps=10, step_size=0.5, trust_region=region)
        out = optimize_actions(critic, z, cands, cfg, LOW, HIGH)
        # each survivor is within region * sigma of a candidate (its start), and the ascent used the room
        moved = (out.topk_actions[:, :, None] - cands[:, None]).abs() / sigma[:, None, None]
        nearest = moved.amax(-1).amin(-1)
        assert (nearest <= region + 1e-5).all()
        assert nearest.amax() > 0.9 * region


def test_a_policy_without_spread_is_not_moved():
    critic, z, cands = _setup()
    same = cands[:, :1].expand_as(cands).clone()
    cfg = ParlConfig(16, 5, local_steps=5, step_size=1.0, trust_region=1.0)
    out = optimize_actions(critic, z, same, cfg, LOW, HIGH)
    assert torch.equal(out.actions, same[:, 0])


def test_pessimism_prefers_actions_the_heads_agree_on():
    # Two heads agree near +0.5 in the first dimension and disagree about everything else.
    class Split:
        def q(self, z, actions):
            x = actions[..., 0]
            agree = -(x - 0.5) ** 2
            return torch.stack([agree + 2.0 * x.clamp_max(0).abs(), agree - 2.0 * x.clamp_max(0).abs()]) + 0 * z.sum()

    z = torch.zeros(1, 8)
    cands = torch.tensor([[[0.5, 0.0, 0.0], [-0.9, 0.0, 0.0]]])
    mean_only = optimize_actions(Split(), z, cands, ParlConfig(2, 2, local_steps=0, pessimism=0.0), LOW, HIGH)
    pessimist = optimize_actions(Split(), z, cands, ParlConfig(2, 2, local_steps=0, pessimism=1.0), LOW, HIGH)
    assert mean_only.candidate_q[0].tolist() == pytest.approx([0.0, -1.96])
    assert pessimist.candidate_q[0].tolist() == pytest.approx([0.0, -1.96 - 1.8])
    # per head, the chosen action (Q 0) against the mean of both candidates: heads [0, -0.16] and [0, -3.76]
    assert pessimist.gain[:, 0].tolist() == pytest.approx([0.08, 1.88])
    assert pessimist.trust() == pytest.approx({"gain": 0.98, "gain_spread": 0.9, "sure": 1.0})


@pytest.mark.parametrize("bad", ["nan_candidates", "inf_replay", "nan_q"])
def test_non_finite_values_raise(bad):
    critic, z, cands = _setup()
    cfg = ParlConfig(num_samples=16, top_k=5, local_steps=1)
    replay = None
    if bad == "nan_candidates":
        cands[0, 3, 1] = float("nan")
    elif bad == "inf_replay":
        replay = torch.zeros(4, A)
        replay[1, 0] = float("inf")
    else:
        critic.targets = critic.targets.clone()
        critic.targets[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="NaN or infinite"):
        optimize_actions(critic, z, cands, cfg, LOW, HIGH, replay_actions=replay)


def test_bad_shapes_and_bounds_are_refused():
    critic, z, cands = _setup()
    cfg = ParlConfig(num_samples=16, top_k=5)
    with pytest.raises(ValueError, match="low < high"):
        optimize_actions(critic, z, cands, cfg, torch.zeros(A), torch.zeros(A))
    with pytest.raises(ValueError, match="N >= k"):
        optimize_actions(critic, z, cands[:, :3], cfg, LOW, HIGH)
    with pytest.raises(ValueError, match=r"\[B, N, A\]"):
        optimize_actions(critic, z, cands[:, 0], cfg, LOW, HIGH)
