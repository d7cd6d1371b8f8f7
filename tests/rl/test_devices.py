"""Device placement, exercised on this CPU-only machine: draws come from the agent's one CPU generator and land on
the device that uses them (the same numbers as before on CPU); an agent on another device keeps replay in host
memory and hands the critic its batches there ("meta": a device with shapes and no data, so no GPU is needed)."""

import pytest
import torch

from robot_parl import typed_config
from robot_parl.models import noise
from robot_parl.models.base import ObsSpec
from robot_parl.models.diffusion import DiffusionConfig, DiffusionPolicy
from robot_parl.rl.agent import ParlAgent
from robot_parl.rl.config import CriticConfig, ParlConfig
from robot_parl.rl.critic import QEnsemble
from robot_parl.rl.replay import Episode
from robot_parl.runtime.config import FinetuneConfig, build_agent
from robot_parl.typed_config import ConfigError


def test_draws_are_the_generators_numbers_on_the_device_that_uses_them():
    draws = {"randn": lambda g, d: noise.randn((3, 4), g, d), "rand": lambda g, d: noise.rand((3, 4), g, d),
             "randint": lambda g, d: noise.randint(9, (3, 4), g, d)}
    own = {"randn": lambda g: torch.randn((3, 4), generator=g), "rand": lambda g: torch.rand((3, 4), generator=g),
           "randint": lambda g: torch.randint(0, 9, (3, 4), generator=g)}
    for name, draw in draws.items():
        assert torch.equal(draw(torch.Generator().manual_seed(1), "cpu"), own[name](torch.Generator().manual_seed(1)))
        on_meta = draw(torch.Generator().manual_seed(1), "meta")
        assert on_meta.device.type == "meta" and on_meta.shape == (3, 4)
    probs = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert noise.multinomial(probs, torch.Generator().manual_seed(0)).tolist() == [[1], [2]]


def test_an_agent_on_another_device_keeps_replay_in_host_memory_and_batches_there():
    spec = ObsSpec(state_dim=3)
    critic = CriticConfig(ensemble_size=2, hidden_dims=(8,), state_hidden_dims=(8,), embedding_dim=8, batch_size=6)
    cfg = ParlConfig(num_samples=4, top_k=2, critic=critic)
    policy = DiffusionPolicy(spec, 2, DiffusionConfig(hidden_dim=8, num_blocks=1, obs_hidden_dims=(8,), obs_dim=8))
    agent = ParlAgent(policy.to("meta"), QEnsemble(spec, 2, cfg.critic), cfg, -torch.ones(2), torch.ones(2),
                      device="meta")
    assert agent.generator.device.type == "cpu" and agent.low.device.type == "meta"
    assert all(p.device.type == "meta" for p in [*agent.critic.parameters(), *agent.target.parameters()])
    obs = {"state": torch.randn(6, 3)}  # observations arrive in host memory
    candidates = agent.sample_candidates(obs)
    assert candidates.device.type == "meta" and candidates.shape == (6, 4, 2)
    agent.add_episode(Episode(obs, torch.zeros(5, 2), -torch.ones(5), False, torch.zeros(6, 4, 2)), online=False)
    assert all(v.device.type == "cpu" for v in agent.replay.offline.frames.columns.values())
    batch = agent._batch()
    assert batch.obs["state"].device.type == "meta" and batch.candidates.device.type == "meta"
    q = agent.critic.q(agent.critic.encode(batch.obs), batch.actions)
    assert q.device.type == "meta" and q.shape[-1] == 6


def test_process_devices_follow_the_vla_card_and_refuse_a_conflict():
    cfg = typed_config.load(FinetuneConfig, overrides=["policy.kind=gaussian"])
    assert cfg.device("actor") == "cpu"
    cfg.learner.device = "cuda:1"
    assert cfg.device("learner") == "cuda:1"
    vla = typed_config.load(FinetuneConfig, "configs/finetune-tiny-vla.yaml", ["policy.vla.device=cuda"])
    assert vla.device("actor") == "cuda"  # the card places the VLA, and the rest follows it
    vla.actor.device = "cpu"
    with pytest.raises(ConfigError, match="actor.device.*policy.vla.device = 'cuda'"):
        vla.device("actor")
    bad = typed_config.load(FinetuneConfig, overrides=["policy.kind=gaussian", "learner.device=gpu0"])
    with pytest.raises(ConfigError, match="learner.device.*not a torch device"):
        build_agent(bad, bad.spec())


def test_the_success_classifier_scores_host_frames_on_its_own_device():
    from robot_parl.models.success import SuccessClassifier

    classifier = SuccessClassifier({"front": (32, 32)}, proprio_dim=3, image_size=32).to("meta")
    obs = {"images": {"front": torch.zeros(2, 32, 32, 3, dtype=torch.uint8)}, "proprio": torch.zeros(2, 3)}
    p = classifier.probability(obs)  # the frames arrive in host memory, as the robot sends them
    assert p.device.type == "meta" and p.shape == (2,)


def test_an_in_process_run_is_placed_by_the_same_rule():
    from robot_parl.runtime.local_run import LocalRunConfig

    with pytest.raises(ConfigError, match=r"'device'.*'gpu0' is not a torch device"):
        typed_config.load(LocalRunConfig, overrides=["device=gpu0"])
    with pytest.raises(ConfigError, match=r"'device'.*'cuda', but the VLA loads on policy.vla.device = 'cpu'"):
        typed_config.load(LocalRunConfig, overrides=["policy.kind=vla", "policy.vla.device=cpu", "device=cuda"])
