"""A success classifier gives outcomes in a session: with reward=classifier an episode ends the step the classifier
has been confident for its K frames (success) or at the horizon (failure) and nobody labels; with reward=both an
operator's label overrides it, during the episode or just after it ended, and the disagreement is counted and stored
with the episode; a classifier for another camera stops the actor at start, naming it, before anything is written.
Real robot side (kinematic arm), real zenoh, the keyboard on a real pty; the classifier's last layer is set so its
probability is known (near 1 or near 0 for every frame)."""

import os
import threading
import time

import pytest
import torch

from robot_parl import typed_config
from robot_parl.data.episode_store import EpisodeStore, Outcome
from robot_parl.models.success import SuccessClassifier
from robot_parl.runtime.actor import Actor
from robot_parl.runtime.config import FinetuneConfig
from robot_parl.typed_config import ConfigError

CAMERA = "cameras=[{name: front, width: 32, height: 24}]"
HORIZON = 12


def classifier(path, logit: float, size=(24, 32), consecutive=3):
    """A classifier whose probability is sigmoid(logit) for every frame."""
    model = SuccessClassifier({"front": size}, consecutive=consecutive, version=42)
    last = model.encoder.head[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(logit)
    model.save(path)
    return path


def config(reward: str, path) -> FinetuneConfig:
    return typed_config.load(FinetuneConfig, "configs/finetune-tiny-vla.yaml", [
        "robot_spec=widowx", f"robot_overrides=['{CAMERA}', 'control_rate_hz=20']", "policy.kind=gaussian",
        "policy.gaussian.hidden_dims=[16]", "parl.num_samples=4", "parl.top_k=2", "link.session=rw",
        f"actor.horizon={HORIZON}", f"actor.reward={reward}", f"actor.classifier={path}", "actor.override_s=5"])


def _episode_steps(steps, actor, timeout=20.0):
    got, deadline = [], time.monotonic() + timeout
    while not (got and got[-1].final):
        assert time.monotonic() < deadline, "no final step"
        got += [s for s in steps.drain() if s.episode_id == actor.episode_id]
        time.sleep(0.01)
    return got


def test_the_classifier_ends_episodes_and_gives_their_outcome(actor_on_arm, tmp_path):
    actor, _, steps, keys = actor_on_arm(config("classifier", classifier(tmp_path / "sure.safetensors", 10.0)))
    os.write(keys, b"n")  # an operator's label is not an outcome here: ignored, counted
    assert actor.episode() is True
    episode = _episode_steps(steps, actor)
    # seen at s_0, s_1, s_2: three frames in a row at p ~ 1, so two steps were taken and s_2 is the last state
    assert [s.index for s in episode] == [0, 1, 2] and episode[-1].success and episode[-2].reward == 0.0
    assert (episode[-1].outcome_source, episode[-1].classifier_version, episode[-1].classifier_success) == \
        ("classifier", 42, 1)
    assert actor.counters["labels_ignored"] == 1 and actor.counters["robot_side_disagreed"] == 1  # the arm: no success
    assert "success" in actor.latency_ms
    journal = EpisodeStore(tmp_path / "actor" / "journal" / "episodes")
    assert journal.info(0).outcome == Outcome("classifier", 42, 1)
    # each frame keeps the probability the classifier gave it (sigmoid(10), to 4 places), on the wire and on disk
    assert [s.success_probability for s in episode] == [1.0, 1.0, 1.0]
    assert journal.episode(0, ["success_probability"])["success_probability"].tolist() == [1.0, 1.0, 1.0]
    resent = list(actor.journal.steps(actor.journal.unacknowledged(0.0)[0], actor.name))  # as a resend reads it
    assert [s.success_probability for s in resent] == [1.0, 1.0, 1.0]


def test_never_confident_is_a_failure_at_the_horizon(actor_on_arm, tmp_path):
    actor, _, steps, _ = actor_on_arm(config("classifier", classifier(tmp_path / "never.safetensors", -10.0)))
    assert actor.episode() is False
    episode = _episode_steps(steps, actor)
    assert len(episode) == HORIZON + 1 and not episode[-1].success
    assert (episode[-1].outcome_source, episode[-1].classifier_success) == ("classifier", 0)


def test_an_operator_overrides_the_classifier_and_the_disagreement_is_kept(actor_on_arm, tmp_path):
    actor, _, steps, keys = actor_on_arm(config("both", classifier(tmp_path / "sure.safetensors", 10.0)))
    result = {}
    thread = threading.Thread(target=lambda: result.update(success=actor.episode()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while actor.counters["override_windows"] == 0:  # the classifier ended it; the actor waits override_s for a label
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.write(keys, b"n")
    thread.join(20)
    assert result["success"] is False
    episode = _episode_steps(steps, actor)
    assert (episode[-1].outcome_source, episode[-1].classifier_success) == ("operator", 1)
    assert actor.counters["classifier_overridden"] == 1
    # a label during the episode ends it at once, the classifier's call so far kept beside it
    actor.classifier = SuccessClassifier.load(classifier(tmp_path / "never.safetensors", -10.0))
    thread = threading.Thread(target=lambda: result.update(success=actor.episode()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not steps.pending():  # the episode is under way
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.write(keys, b"y")
    thread.join(20)
    episode = _episode_steps(steps, actor)
    assert result["success"] is True and len(episode) < HORIZON + 1
    assert (episode[-1].outcome_source, episode[-1].classifier_success) == ("operator", 0)
    # the label came before the classifier saw the last frame: that one is stored as not scored
    assert [s.success_probability for s in episode] == [0.0] * (len(episode) - 1) + [-1.0]
    assert actor.counters["classifier_overridden"] == 2


def test_a_classifier_for_another_camera_stops_the_actor_before_anything_is_written(zenoh_pair, tmp_path):
    _, actor_session = zenoh_pair
    cfg = config("classifier", classifier(tmp_path / "big.safetensors", 0.0, size=(64, 64)))
    with pytest.raises(ConfigError, match=r"actor.classifier.*camera 'front' gives \[24, 32\] frames, the classifier "
                                          r"was trained on \[64, 64\]"):
        Actor(cfg, tmp_path / "actor", actor_session, log=lambda line: None)
    assert not (tmp_path / "actor").exists()
    cfg = config("classifier", tmp_path / "missing.safetensors")
    with pytest.raises(ConfigError, match=r"actor.classifier.*not a success classifier"):
        Actor(cfg, tmp_path / "actor", actor_session, log=lambda line: None)
    with pytest.raises(ConfigError, match=r"actor.classifier.*reward='both'"):
        typed_config.load(FinetuneConfig, "configs/finetune-tiny-vla.yaml", ["actor.reward=both"])
