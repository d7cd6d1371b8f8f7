"""Weights from learner to actor over real zenoh: a hot swap changes the actor's outputs to the learner's;
a corrupt transfer, a mislabelled payload and an adapter for another base are refused and counted."""

import time

import numpy as np
import pytest
import torch

from robot_parl import typed_config
from robot_parl.models.vla.checkpoint import write_random_checkpoint
from robot_parl.runtime import actor as actor_module
from robot_parl.runtime.actor import Actor
from robot_parl.runtime.config import FinetuneConfig, build_agent
from robot_parl.runtime.weights import WeightInbox, WeightPublisher, Weights, pack
from robot_parl.transport.chunks import split_payload
from robot_parl.transport.keys import KeySpace

OVERRIDES = ["robot_overrides=['cameras=[{name: front, width: 32, height: 32}]']", "actor.episodes=1"]


@pytest.fixture(scope="module")
def vla_config(tmp_path_factory):
    checkpoint = write_random_checkpoint(tmp_path_factory.mktemp("vla") / "ckpt", seed=0)
    return typed_config.load(FinetuneConfig, "configs/finetune-tiny-vla.yaml",
                             OVERRIDES + [f"policy.vla.checkpoint={checkpoint}", "link.session=weights"])


def _wait(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _actions(agent, obs, seed=0):
    with torch.no_grad():
        return agent.policy.sample(obs, 4, generator=torch.Generator().manual_seed(seed))


def _loss(agent, obs):
    with torch.no_grad():
        return agent.policy.loss(obs, torch.full((2, 7), 0.8)).item()


def test_hot_swap_refusals_and_versions(vla_config, zenoh_pair, tmp_path, learner_link, robot_side, monkeypatch):
    learner_session, actor_session = zenoh_pair
    monkeypatch.setattr(actor_module, "ANNOUNCE_WAIT_S", 0.5)
    robot_side(learner_session, vla_config)  # the actor hears its robot before anything else
    actor = Actor(vla_config, tmp_path / "actor", actor_session)
    learner, _ = build_agent(vla_config, vla_config.spec())
    link = learner_link(learner_session, "weights")
    publisher = link.weights
    assert publisher.matched(10)  # the actor's subscriptions reached the publishing session
    rng = np.random.default_rng(0)
    obs = {"images": {"front": torch.from_numpy(rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8))},
           "proprio": torch.zeros(2, 4)}
    try:
        before = _loss(actor.agent, obs)
        # the learner takes a few distillation-like steps, then publishes its adapter and critic
        for _ in range(3):
            learner.policy.sl_update(obs, torch.full((2, 7), 0.8))
        link.publish("policy", "L1", 3, learner.policy.sync_state())
        link.publish("critic", "L1", 7, learner.critic.state_dict())
        _wait(lambda: actor.apply_weights() or min(actor.versions.values()) >= 0)
        _wait(lambda: actor.apply_weights() or actor.versions == {"policy": 3, "critic": 7})
        assert _loss(actor.agent, obs) < before - 0.05  # the swap changed the actor's policy ...
        assert _loss(actor.agent, obs) == _loss(learner, obs)  # ... into exactly the learner's
        after = _actions(actor.agent, obs)
        torch.testing.assert_close(after, _actions(learner, obs))
        z = actor.agent.critic.encode(obs)
        torch.testing.assert_close(actor.agent.critic.q(z, after), learner.critic.q(learner.critic.encode(obs), after))

        # a transfer whose bytes were changed in flight: the sha256 check refuses it whole
        data = bytearray(pack(Weights("policy", "L1", 4, learner.policy.sync_state())))
        data[-1] ^= 0xFF
        chunks = list(split_payload(pack(Weights("policy", "L1", 4, learner.policy.sync_state())), "policy-L1-4",
                                    chunk_bytes=4096))
        tampered = list(split_payload(bytes(data), "policy-L1-4", chunk_bytes=4096))
        chunks[-1] = tampered[-1]  # the last chunk disagrees with the whole's hash
        for chunk in chunks:
            publisher._pubs["policy"].put_bytes(chunk)
        _wait(lambda: actor.weights.refused >= 1)
        # a payload under another name (version 5 claimed, version 6 inside)
        for chunk in split_payload(pack(Weights("policy", "L1", 6, learner.policy.sync_state())), "policy-L1-5"):
            publisher._pubs["policy"].put_bytes(chunk)
        _wait(lambda: actor.weights.refused >= 2)
        assert "disagree" in actor.weights.last_error
        # an adapter of another shape (another base or LoRA rank): refused by the actor, weights kept
        wrong = {k: torch.zeros(v.shape[0] + 1, *v.shape[1:]) for k, v in learner.policy.sync_state().items()}
        link.publish("policy", "L1", 8, wrong)
        _wait(lambda: actor.apply_weights() or actor.weights.refused >= 3)
        assert "do not fit" in actor.weights.last_error and actor.versions["policy"] == 3
        torch.testing.assert_close(_actions(actor.agent, obs), after)
        # weights with NaN or inf: refused before the swap, the actor keeps acting on what it has
        poisoned = {k: torch.full_like(v, float("nan")) if i == 0 else v
                    for i, (k, v) in enumerate(learner.policy.sync_state().items())}
        link.publish("policy", "L1", 9, poisoned)
        _wait(lambda: actor.apply_weights() or actor.weights.refused >= 4)
        assert "non-finite values" in actor.weights.last_error and actor.versions["policy"] == 3
        torch.testing.assert_close(_actions(actor.agent, obs), after)
        # a version the learner never published (under its name): never applied, refused once its wait is over,
        # and the learner's next real version still goes in
        link.publish("policy", "L1", 2**62, wrong, announce=False)
        _wait(lambda: actor.apply_weights() or actor.weights.refused >= 5)
        assert "never announced" in actor.weights.last_error and actor.versions["policy"] == 3
        link.publish("policy", "L1", 10, learner.policy.sync_state())
        _wait(lambda: actor.apply_weights() or actor.versions["policy"] == 10)
        # an older version from the same learner, delivered late, is ignored; a new learner's is taken
        link.publish("policy", "L1", 2, wrong)
        link.publish("critic", "L2", 1, learner.critic.state_dict())
        _wait(lambda: actor.apply_weights() or actor.versions["critic"] == 1)
        assert actor.versions["policy"] == 10 and actor.weights.refused == 5
    finally:
        actor.close()


def test_incomplete_transfers_are_dropped_after_their_timeout(zenoh_pair):
    learner_session, actor_session = zenoh_pair
    inbox = WeightInbox(actor_session, KeySpace("expire", "learner"), transfer_timeout_s=0.5)
    publisher = WeightPublisher(learner_session, KeySpace("expire", "learner"))
    try:
        assert publisher.matched(10)
        state = {"w": torch.zeros(4096)}
        for version in range(300):  # every transfer's last chunk never comes
            chunks = list(split_payload(pack(Weights("policy", "L", version, state)), f"policy-L-{version}",
                                        chunk_bytes=4096))
            for chunk in chunks[:-1]:
                publisher._pubs["policy"].put_bytes(chunk)
        _wait(lambda: inbox.pending_transfers == 300)
        time.sleep(0.6)
        assert inbox.take() == [] and inbox.pending_transfers == 0 and inbox.refused == 300
        assert "dropped incomplete" in inbox.last_error
    finally:
        publisher.close()
        inbox.close()
