import math

import pytest
import torch

from robot_parl.models.base import ObsSpec
from robot_parl.models.diffusion import DiffusionConfig, DiffusionPolicy
from robot_parl.rl.agent import ParlAgent
from robot_parl.rl.config import CriticConfig, ParlConfig, ScheduleConfig
from robot_parl.rl.critic import QEnsemble
from robot_parl.rl.replay import Episode, Replay, monte_carlo_returns, n_step_targets
from robot_parl.rl.trust import gain_z, probation_arm, revoke_z, watch_control

N = 6


def _agent(seed=0, trust_min_z=0.0, watch_share=0.125, **schedule):
    torch.manual_seed(seed)
    spec = ObsSpec(state_dim=3)
    cfg = ParlConfig(num_samples=N, top_k=2, local_steps=1, step_size=0.01, trust_min_z=trust_min_z,
                     watch_share=watch_share,
                     critic=CriticConfig(ensemble_size=3, hidden_dims=(16,), state_hidden_dims=(16,), embedding_dim=16,
                                         batch_size=8),
                     schedule=ScheduleConfig(**schedule))
    policy = DiffusionPolicy(spec, 2, DiffusionConfig(hidden_dim=16, num_blocks=1, obs_hidden_dims=(16,), obs_dim=16))
    return ParlAgent(policy, QEnsemble(spec, 2, cfg.critic), cfg, -torch.ones(2), torch.ones(2), seed=seed)


def _episode(agent, t=5, success=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = {"state": torch.randn(t + 1, 3, generator=g)}
    rewards = -torch.ones(t)
    if success:
        rewards[-1] = 0.0
    return Episode(obs, torch.rand(t, 2, generator=g) * 2 - 1, rewards, success, agent.sample_candidates(obs))


def test_monte_carlo_returns():
    r = torch.tensor([-1.0, -1.0, 0.0])
    assert torch.allclose(monte_carlo_returns(r, True, 0.5), torch.tensor([-1.5, -1.0, 0.0]))
    assert torch.allclose(monte_carlo_returns(r, False, 0.9), torch.full((3,), -10.0))


def test_replay_transitions_next_obs_and_mixing():
    agent = _agent()
    replay = Replay(0.9)
    ep = _episode(agent, t=4)
    replay.add_episode(ep, online=False)
    batch = replay.sample(64, 0.5, torch.Generator().manual_seed(0))
    # every sampled transition is (s_t, a_t, s_t+1) of the episode, terminal only on the last one
    for i in range(64):
        t = int((ep.obs["state"][:-1] == batch.obs["state"][i]).all(1).nonzero()[0])
        assert torch.equal(batch.next_obs["state"][i], ep.obs["state"][t + 1])
        assert torch.equal(batch.actions[i], ep.actions[t])
        assert torch.equal(batch.next_candidates[i], ep.candidates[t + 1])
        assert batch.discounts[i] == pytest.approx(0.0 if t == 3 else 0.9)
    online = _episode(agent, t=4, seed=1)
    replay.add_episode(online, online=True)
    batch = replay.sample(40, 0.25)
    from_online = sum(any(torch.equal(s, o) for o in online.obs["state"][:-1]) for s in batch.obs["state"])
    assert from_online == 30


def test_n_step_targets_sum_rewards_and_bootstrap_n_ahead():
    r = torch.tensor([-1.0, -1.0, -1.0, 0.0])
    returns, bootstrap, discounts = n_step_targets(r, True, 0.5, 3)
    assert torch.allclose(returns, torch.tensor([-1.75, -1.5, -1.0, 0.0]))
    assert bootstrap.tolist() == [3, 4, 4, 4]
    assert torch.allclose(discounts, torch.tensor([0.125, 0.0, 0.0, 0.0]))  # s_4 is terminal
    # a truncated (failed) episode bootstraps from its last observation with gamma^k
    _, bootstrap, discounts = n_step_targets(r, False, 0.5, 3)
    assert torch.allclose(discounts, torch.tensor([0.125, 0.125, 0.25, 0.5]))
    # n = 1 is the one-step transition
    returns, bootstrap, discounts = n_step_targets(r, True, 0.5, 1)
    assert torch.equal(returns, r) and bootstrap.tolist() == [1, 2, 3, 4]
    assert torch.allclose(discounts, torch.tensor([0.5, 0.5, 0.5, 0.0]))


def test_n_step_replay_pairs_each_state_with_the_state_n_ahead():
    agent = _agent()
    replay = Replay(0.9, n_step=2)
    ep = _episode(agent, t=4)
    replay.add_episode(ep, online=False)
    batch = replay.sample(64, 0.5, torch.Generator().manual_seed(0))
    for i in range(64):
        t = int((ep.obs["state"][:-1] == batch.obs["state"][i]).all(1).nonzero()[0])
        ahead = min(t + 2, 4)
        assert torch.equal(batch.next_obs["state"][i], ep.obs["state"][ahead])
        assert torch.equal(batch.next_candidates[i], ep.candidates[ahead])
    with pytest.raises(ValueError, match="n_step"):
        Replay(0.9, n_step=0)


def test_bad_episodes_are_refused():
    agent = _agent()
    ep = _episode(agent)
    with pytest.raises(ValueError, match="T \\+ 1"):
        Episode({"state": ep.obs["state"][:-1]}, ep.actions, ep.rewards, True, ep.candidates)
    bad = ep.actions.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        Episode(ep.obs, bad, ep.rewards, True, ep.candidates)


def test_stale_candidates_are_resampled():
    agent = _agent(candidate_max_age=2)
    agent.add_episode(_episode(agent), online=False)
    frames = agent.replay.offline.frames
    stored = frames.columns["candidates"].clone()
    agent.counters["policy_version"] = 2
    agent._batch()
    assert torch.equal(frames.columns["candidates"], stored)  # age 2 is not stale
    agent.counters["policy_version"] = 3
    agent._batch()
    fresh = frames.columns["versions"] == 3
    assert fresh.any()
    assert not torch.equal(frames.columns["candidates"][fresh], stored[fresh])


def test_offline_then_online_schedule():
    agent = _agent(warmup_episodes=1, critic_utd=1.0, distill_utd=0.5)
    agent.add_episode(_episode(agent), online=False)
    agent.train_offline(3)
    assert agent.counters["critic_updates"] == 3 and agent.counters["distill_updates"] == 0
    assert agent.critic_optimizer.state  # Adam moments exist
    agent.start_online()
    assert not agent.critic_optimizer.state  # reset at the switch
    with pytest.raises(RuntimeError):
        agent.train_offline(1)
    assert agent.train_online() == {}  # warm-up: no online episode yet
    agent.add_episode(_episode(agent, seed=2), online=True)
    agent.train_online()  # 5 online steps: 5 critic updates, 2.5 distillation updates owed
    assert agent.counters["critic_updates"] == 8 and agent.counters["online_critic_updates"] == 5
    assert agent.counters["distill_updates"] == 2  # the half carries over ...
    assert agent.train_online() == {}
    agent.add_episode(_episode(agent, seed=4, t=1), online=True)
    agent.train_online()
    assert agent.counters["distill_updates"] == 3  # ... to the next step of data
    assert agent.counters["policy_version"] == 3 and agent.counters["online_critic_updates"] == 6


def test_one_update_at_a_time_makes_the_same_updates_as_all_at_once():
    # the learner process trains one update (of each kind) per turn; an in-process run trains all owed at once
    totals = []
    for per_turn in (None, 1):
        agent = _agent(critic_utd=1.0, distill_utd=0.4)
        agent.add_episode(_episode(agent), online=False)
        agent.start_online()
        agent.add_episode(_episode(agent, seed=2), online=True)
        while agent.owed().critic or agent.owed().distill:
            agent.train_online(per_turn)
        totals.append((agent.counters["online_critic_updates"], agent.counters["distill_updates"]))
    assert totals == [(5, 2), (5, 2)]


def test_distillation_moves_the_policy_towards_optimized_actions():
    agent = _agent()
    agent.add_episode(_episode(agent), online=False)
    agent.start_online()
    before = {k: v.clone() for k, v in agent.policy.sync_state().items()}
    metrics = agent.distill_update()
    assert "distill_loss" in metrics
    after = agent.policy.sync_state()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_gain_z_ranks_the_arms_returns_and_never_favours_a_lower_success_rate():
    # returns -(steps to success): the critic arm succeeded faster in 3 of 4 and failed once; the policy arm slower
    critic = [(True, True, -5.0), (True, True, -6.0), (True, True, -7.0), (True, False, -60.0)]
    policy = [(False, True, -20.0), (False, True, -30.0), (False, False, -60.0), (False, False, -60.0)]
    # U: 3 faster successes beat all 4 (12), the failure ties 2 failures (1): 13 of 16
    assert gain_z(critic + policy) == pytest.approx((13 - 8) / math.sqrt(16 * 9 / 12))
    assert gain_z([(not a, ok, r) for a, ok, r in critic + policy]) == pytest.approx(-(13 - 8) / math.sqrt(12))
    # faster, but successful less often: not better
    quick = [(True, True, -2.0), (True, False, -60.0), (False, True, -30.0), (False, True, -40.0)]
    assert gain_z(quick) == 0.0
    assert gain_z([(True, True, -1.0), (True, False, -9.0)]) == 0.0  # one arm only


def test_probation_arms_split_episode_ids_evenly():
    arms = [probation_arm(f"episode-{i}") for i in range(2000)]
    assert 900 < sum(arms) < 1100
    assert arms == [probation_arm(f"episode-{i}") for i in range(2000)]  # fixed: the learner reads the actor's
    for share in (0.0625, 0.125, 0.5):
        controls = [watch_control(f"episode-{i}", share) for i in range(2000)]
        assert abs(sum(controls) - 2000 * share) < 60
        # a control acts on the policy on probation too: an actor behind on the trust flag acts alike
        assert not any(c and a for c, a in zip(controls, arms))
    assert not any(watch_control(f"episode-{i}", 0.0) for i in range(2000))


def test_revoke_z_is_the_trust_tests_z_the_other_way_and_counts_a_lower_success_rate():
    critic = [(True, True, -5.0), (True, True, -6.0), (True, True, -7.0), (True, False, -60.0)]
    policy = [(False, True, -20.0), (False, True, -30.0), (False, False, -60.0), (False, False, -60.0)]
    assert revoke_z(critic + policy) == pytest.approx(-gain_z(critic + policy))
    flipped = [(not a, ok, r) for a, ok, r in critic + policy]
    assert revoke_z(flipped) == pytest.approx((13 - 8) / math.sqrt(12))
    # the critic arm faster where it succeeds but succeeding in 3 of 12 against the controls' 8 of 12: the
    # two-proportion z, (8/12 - 3/12) / sqrt(11/24 * 13/24 * 2/12)
    quick = [(True, True, -2.0)] * 3 + [(True, False, -60.0)] * 9 + [(False, True, -59.0)] * 8 \
        + [(False, False, -60.0)] * 4
    assert revoke_z(quick) == pytest.approx((8 / 12 - 3 / 12) / math.sqrt(11 / 24 * 13 / 24 * 2 / 12))


def test_acting_follows_the_critic_where_asked_and_where_trusted():
    agent = _agent(trust_min_z=2.0)
    obs = {"state": torch.randn(4, 3, generator=torch.Generator().manual_seed(5))}
    candidates = agent.sample_candidates(obs)
    untrusted = agent.act(obs, candidates)
    assert torch.equal(untrusted.actions, candidates[:, 0]) and not untrusted.critic_acted.any()
    mixed = agent.act(obs, candidates, critic=torch.tensor([True, False, True, False]))
    assert torch.equal(mixed.actions[::2], mixed.optimized.actions[::2].cpu())
    assert torch.equal(mixed.actions[1::2], candidates[1::2, 0])
    assert mixed.critic_acted.tolist() == [True, False, True, False]
    assert [agent.critic_acts(f"e{i}") for i in range(20)] == [probation_arm(f"e{i}") for i in range(20)]
    agent.critic.trusted.fill_(1.0)
    trusted = agent.act(obs, candidates)
    assert torch.equal(trusted.actions, trusted.optimized.actions.cpu()) and trusted.critic_acted.all()
    # once trusted, the critic acts in every episode but the watch's controls
    assert [agent.critic_acts(f"e{i}") for i in range(20)] == [not watch_control(f"e{i}", 0.125) for i in range(20)]


@pytest.mark.parametrize("critic", ["better", "worse"])
def test_the_critic_acts_and_teaches_only_once_its_choices_beat_the_policy(critic, tmp_path):
    agent = _agent(trust_min_z=2.0, critic_utd=0.0)
    agent.add_episode(_episode(agent), online=False)
    agent.start_online()
    rates = {True: 0.8, False: 0.3} if critic == "better" else {True: 0.3, False: 0.8}
    rng = torch.Generator().manual_seed(11)
    # neither an intervention nor an episode without an id says anything about the arms
    for source, episode_id in (("intervention", "x-1"), ("rollout", "")):
        episode = _episode(agent, seed=1)
        episode.source, episode.episode_id = source, episode_id
        agent.add_episode(episode, online=True)
    assert not agent.trial
    for i in range(80):
        episode = _episode(agent, t=6, seed=100 + i)
        episode.episode_id = f"ep-{i}"
        episode.terminated = bool(torch.rand((), generator=rng) < rates[agent.critic_acts(episode.episode_id)])
        episode.rewards[-1] = 0.0 if episode.terminated else -1.0
        agent.add_episode(episode, online=True)
        metrics = agent.train_online()
        if agent.trusted:
            break
    if critic == "worse":
        assert not agent.trusted and agent.trust_z < -2
        assert agent.counters["distill_updates"] == 0 and agent.counters["distill_waived"] > 0
        # the evidence survives a checkpoint: a resumed run goes on testing it
        agent.save(tmp_path / "ckpt", replay=False)
        resumed = _agent(trust_min_z=2.0, critic_utd=0.0)
        resumed.load(tmp_path / "ckpt")
        assert list(resumed.trial) == list(agent.trial) and len(resumed.trial) == 32  # the window
        return
    assert metrics["critic_trusted"] == 1.0 and i < 79 and agent.trust_z >= 2.0
    assert len(agent.trial) == 32  # never on less than a whole window
    waived = agent.counters["distill_waived"]
    agent.add_episode(_episode(agent, seed=999), online=True)
    agent.train_online()
    assert agent.counters["distill_updates"] > 0 and agent.counters["distill_waived"] == waived
    assert agent.critic.state_dict()["trusted"].item() == 1.0  # it travels with the critic's weights


def test_checkpoint_resume_is_exact(tmp_path):
    agent = _agent()
    agent.add_episode(_episode(agent), online=False)
    agent.train_offline(2)
    agent.start_online()
    agent.add_episode(_episode(agent, seed=3), online=True)
    agent.save(tmp_path / "ckpt")
    expected = [agent.train_online(1) for _ in range(3)]
    resumed = _agent(seed=7)
    resumed.load(tmp_path / "ckpt")
    assert resumed.online and resumed.counters["online_episodes"] == 1
    got = [resumed.train_online(1) for _ in range(3)]
    assert expected[0]  # there were updates owed
    assert got == expected


def test_each_observation_is_stored_once_and_transitions_point_at_it():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 8, 8, 3), generator=g, dtype=torch.uint8)
    episode = Episode({"images": {"front": images}}, torch.zeros(5, 2), -torch.ones(5), False, torch.zeros(6, 3, 2))
    replay = Replay(0.9, n_step=2)
    replay.add_episode(episode, online=True)
    assert replay.online.frames.columns["obs/images/front"].shape[0] == 6  # T + 1 frames, not 2T observations
    batch = replay.sample(64, 0.0, g)
    steps = replay.online.transitions.columns
    for i in range(64):  # every sampled pair is (s_t, s_{t+k}) of the episode, k = min(2, T - t)
        t = next(j for j in range(6) if torch.equal(batch.obs["images"]["front"][i], images[j]))
        assert torch.equal(batch.next_obs["images"]["front"][i], images[min(t + 2, 5)])
    assert steps["next_frame"].tolist() == [2, 3, 4, 5, 5]


def test_online_capacity_evicts_the_oldest_episodes_and_keeps_offline_data():
    replay = Replay(0.9, online_capacity=20)
    replay.add_episode(_state_episode(4, 0.0), online=False)
    for i in range(1, 8):  # 7 episodes of 5 transitions, each state's value its episode's number
        replay.add_episode(_state_episode(5, float(i)), online=True)
    # over 20 transitions the oldest go, down to 90% of the capacity
    assert replay.online.size <= 20 and replay.online.evicted == 35 - replay.online.size
    kept = sorted({int(v) for v in replay.online.frames.columns["obs/state"][:, 0].tolist()})
    assert kept == list(range(8 - len(kept), 8)) and kept[-1] == 7  # the newest episodes, in order
    assert replay.offline.size == 4
    steps = replay.online.transitions.columns
    frames = replay.online.frames.columns["obs/state"][:, 0]
    # after the move every transition still points into its own episode
    assert torch.equal(frames[steps["frame"]], frames[steps["next_frame"]])
    batch = replay.sample(32, 0.5, torch.Generator().manual_seed(0))
    assert {int(v) for v in batch.obs["state"][:, 0].tolist()} <= set(kept) | {0}


def _state_episode(t: int, value: float) -> Episode:
    return Episode({"state": torch.full((t + 1, 3), value)}, torch.zeros(t, 2), -torch.ones(t), False,
                   torch.zeros(t + 1, 3, 2))


def _play(agent, rates, first, count, rng):
    """``count`` online rollouts ep-first.. whose success follows the arm each acted in, trained on as they come."""
    for i in range(first, first + count):
        episode = _episode(agent, t=6, seed=100 + i)
        episode.episode_id = f"ep-{i}"
        episode.terminated = bool(torch.rand((), generator=rng) < rates[agent.critic_acts(episode.episode_id)])
        episode.rewards[-1] = 0.0 if episode.terminated else -1.0
        agent.add_episode(episode, online=True)
        agent.train_online()
        if not agent.trusted:
            return i
    return None


@pytest.mark.parametrize("critic", ["worse", "better"])
def test_a_trusted_critic_whose_choices_fall_behind_its_controls_goes_back_on_probation(critic, tmp_path):
    agent = _agent(trust_min_z=2.0, critic_utd=0.0)
    agent.add_episode(_episode(agent), online=False)
    agent.start_online()
    agent.critic.trusted.fill_(1.0)  # as after a passed trust test
    rates = {True: 0.3, False: 0.9} if critic == "worse" else {True: 0.9, False: 0.6}
    rng = torch.Generator().manual_seed(3)
    revoked_at = _play(agent, rates, 0, 400, rng)
    if critic == "better":
        assert revoked_at is None and agent.counters["trust_revoked"] == 0
        assert len(agent.watch_controls) == 16 and len(agent.watch_critic) == 64  # windows of the same stretch
        assert agent.watch_z < 0  # the evidence favours the critic
        agent.save(tmp_path / "ckpt", replay=False)  # the watch's evidence survives a checkpoint
        resumed = _agent(trust_min_z=2.0, critic_utd=0.0)
        resumed.load(tmp_path / "ckpt")
        assert (list(resumed.watch_controls), list(resumed.watch_critic)) == (list(agent.watch_controls),
                                                                             list(agent.watch_critic))
        return
    # caught within a few dozen rollouts: from 8 controls on (a quarter window), about one rollout in eight
    assert revoked_at is not None and revoked_at < 150 and agent.watch_z >= 2.0
    assert agent.counters["trust_revoked"] == 1 and not agent.trial
    assert [agent.critic_acts(f"x{i}") for i in range(40)] == [probation_arm(f"x{i}") for i in range(40)]
    distilled, waived = agent.counters["distill_updates"], agent.counters["distill_waived"]
    _play(agent, rates, 1000, 3, rng)
    assert agent.counters["distill_updates"] == distilled and agent.counters["distill_waived"] > waived


def test_no_controls_without_a_watch_or_a_trust_test():
    for agent in (_agent(trust_min_z=2.0, watch_share=0.0), _agent(trust_min_z=0.0)):
        agent.critic.trusted.fill_(1.0)
        assert all(agent.critic_acts(f"e{i}") for i in range(200))
