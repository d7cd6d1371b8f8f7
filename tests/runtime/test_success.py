"""Learned success detection: frame labels from stored outcomes, the consecutive-frames rule, training that finds a
visible success cue and a threshold, saving with what it reads, refusals naming what differs, and the
`robot-parl reward` commands on real zarr stores."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from robot_parl import typed_config
from robot_parl.data.episode_store import EpisodeStore, KeySpec, rl_schema
from robot_parl.models.success import SuccessClassifier
from robot_parl.runtime.success import SuccessTrainConfig, _choose_threshold, check_store, labels, train_success
from robot_parl.typed_config import ConfigError

SIZE = 32


def frame_image(rng, shown: bool):
    """Noise, with a bright block somewhere when the task is done."""
    img = rng.integers(0, 120, (SIZE, SIZE, 3), dtype=np.uint8)
    if shown:
        r, c = rng.integers(2, SIZE - 10, 2)
        img[r:r + 8, c:c + 8] = 250
    return img


def make_store(path, episodes, seed, done_frames=5):
    """Episodes of 12-20 frames; the successful ones show the cue in their last ``done_frames`` frames."""
    rng = np.random.default_rng(seed)
    store = EpisodeStore.create(path, rl_schema({"images/front": KeySpec("uint8", (SIZE, SIZE, 3)),
                                                 "proprio": KeySpec("float32", (4,))}, 7))
    with store.writer("test") as w:
        for e in range(episodes):
            success, n = e % 2 == 0, int(rng.integers(12, 21))
            w.begin("rollout")
            for t in range(n):
                w.add({"images/front": frame_image(rng, success and t >= n - done_frames),
                       "proprio": rng.normal(size=4).astype(np.float32), "action": np.zeros(7, np.float32),
                       "reward": np.float32(-1.0), "timestamp": float(t)})
            w.end(success)
    store.refresh()
    return store


CFG = SuccessTrainConfig(image_size=SIZE, steps=150, batch_size=32, positive_frames=3, negative_gap=6, consecutive=2)


def test_frame_labels_and_the_consecutive_rule():
    cfg = SuccessTrainConfig(positive_frames=2, negative_gap=4)
    assert labels(7, True, cfg).tolist() == [0, 0, 0, -1, -1, 1, 1]
    assert labels(7, False, cfg).tolist() == [0] * 7
    model = SuccessClassifier({"front": (SIZE, SIZE)}, threshold=0.6, consecutive=3)
    assert model.outcome([0.7, 0.7, 0.1, 0.6, 0.9, 0.61, 0.99]) == (True, 5)
    assert model.outcome([0.7, 0.7, 0.1, 0.6, 0.9, 0.59]) == (False, -1)


def test_threshold_choice_agrees_with_trying_every_frame():
    """The threshold is chosen from each episode's decisive value; trying every frame's probability (and 0.5)
    finds no better agreement and no equally good threshold nearer 0.5."""
    rng = np.random.default_rng(3)
    model = SuccessClassifier({"front": (SIZE, SIZE)}, consecutive=3)
    for trial in range(20):
        probs = [rng.random(int(rng.integers(1, 15))).astype(np.float32) for _ in range(12)]
        outcomes = [bool(b) for b in rng.random(12) < 0.5]

        def agreement(t, probs=probs, outcomes=outcomes):
            model.threshold = float(t)
            return sum(model.outcome(p)[0] == ok for p, ok in zip(probs, outcomes))

        every = np.unique(np.concatenate(probs + [np.array([0.5], np.float32)]))
        best = max(agreement(t) for t in every)
        nearest = min((float(t) for t in every if agreement(t) == best), key=lambda t: abs(t - 0.5))
        chosen = _choose_threshold(model, probs, outcomes)
        assert agreement(chosen) == best, trial
        assert abs(chosen - 0.5) <= abs(nearest - 0.5), trial


def test_training_finds_the_cue_and_checks_held_out_episodes(tmp_path):
    torch.set_num_threads(1)
    train = [make_store(tmp_path / "a", 16, 0), make_store(tmp_path / "b", 8, 1)]
    model, report = train_success(train, CFG)
    # 12 successes and 12 failures, a fifth of each held out: 10 successful training episodes, 3 frames each
    assert (report["train_episodes"], report["holdout_episodes"], report["positive_frames"]) == (20, 4, 30)
    assert report["holdout"]["agreement"] == 1.0
    records = check_store(model, make_store(tmp_path / "held", 20, 2))
    assert [r["classifier"] for r in records] == [r["stored"] for r in records] == [e % 2 == 0 for e in range(20)]
    # a success is decided on its cue frames, never before them
    assert all(r["decided_at"] >= r["length"] - 5 for r in records if r["stored"])
    model.save(tmp_path / "clf.safetensors")
    again = SuccessClassifier.load(tmp_path / "clf.safetensors")
    assert (again.threshold, again.consecutive, again.version) == (model.threshold, 2, report["version"])
    obs = {"images": {"front": torch.from_numpy(frame_image(np.random.default_rng(5), True))[None]},
           "proprio": torch.zeros(1, 4)}
    assert torch.equal(again.probability(obs), model.probability(obs))


def test_a_classifier_for_other_cameras_or_files_of_another_kind_are_refused(tmp_path):
    model = SuccessClassifier({"front": (64, 64)}, proprio_dim=4)
    with pytest.raises(ValueError, match=r"camera 'front' gives \[128, 128\] frames, the classifier was trained on "
                                         r"\[64, 64\]; proprio has 7 values, the classifier was trained on 4"):
        model.check_fits({"images/front": ("uint8", (128, 128, 3)), "proprio": ("float32", (7,))})
    with pytest.raises(ValueError, match=r"camera 'front' is missing \(the robot has \['wrist'\]\)"):
        model.check_fits({"images/wrist": ("uint8", (64, 64, 3)), "proprio": ("float32", (4,))})
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="not a success classifier"):
        SuccessClassifier.load(tmp_path / "junk.safetensors")
    with pytest.raises(Exception, match="fewer than 2 failed episodes"):
        store = EpisodeStore.create(tmp_path / "s", rl_schema({"images/front": KeySpec("uint8", (8, 8, 3))}, 7))
        with store.writer("test") as w:
            for _ in range(3):
                w.begin("teleop")
                for t in range(3):
                    w.add({"images/front": np.zeros((8, 8, 3), np.uint8), "action": np.zeros(7, np.float32),
                           "reward": np.float32(-1), "timestamp": float(t)})
                w.end(True)
        store.refresh()
        train_success([store], CFG)


def _critic_checkpoint(path, cameras=("front",), kind="small_cnn"):
    """A checkpoint directory as a session writes it (agent.safetensors), its critic reading ``cameras``."""
    from robot_parl.models.base import ObsSpec
    from robot_parl.rl.config import CriticConfig
    from robot_parl.rl.critic import QEnsemble
    from robot_parl.tensor_tree import save_tree

    torch.manual_seed(7)
    cfg = CriticConfig(ensemble_size=2, hidden_dims=(16,), state_hidden_dims=(16,), embedding_dim=16,
                       image_encoder=kind, image_size=SIZE)
    critic = QEnsemble(ObsSpec(proprio_dim=4, cameras=tuple(cameras)), 7, cfg)
    save_tree(path / "agent.safetensors", {"critic": critic.state_dict()})
    return critic


def test_the_critics_encoder_starts_the_classifier_and_can_stay_frozen(tmp_path):
    torch.set_num_threads(1)
    critic = _critic_checkpoint(tmp_path / "ckpt")
    stores = [make_store(tmp_path / "a", 16, 0)]
    frozen, report = train_success(stores, dataclasses.replace(CFG, critic_encoder=str(tmp_path / "ckpt"),
                                                               freeze_encoder=True))
    theirs = critic.encoder.cnns["front"].state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in frozen.encoder.cnns["front"].state_dict().items())
    assert report["holdout"]["agreement"] >= 0.75  # the critic's (here random) features still carry the cue
    tuned, _ = train_success(stores, dataclasses.replace(CFG, critic_encoder=str(tmp_path / "ckpt"), steps=5))
    moved = [not torch.equal(v, theirs[k]) for k, v in tuned.encoder.cnns["front"].state_dict().items()]
    assert any(moved)  # fine-tuned from the critic's weights
    _critic_checkpoint(tmp_path / "wrist", cameras=("wrist",))
    with pytest.raises(ConfigError, match=r"has no CNN for camera 'front' \(it reads cameras \['wrist'\]\)"):
        train_success(stores, dataclasses.replace(CFG, critic_encoder=str(tmp_path / "wrist")))
    with pytest.raises(ConfigError, match="no critic in a checkpoint there"):
        train_success(stores, dataclasses.replace(CFG, critic_encoder=str(tmp_path / "nothing")))
    with pytest.raises(ConfigError, match="freeze_encoder"):
        typed_config.load(SuccessTrainConfig, overrides=["freeze_encoder=true"])


def test_a_critic_with_resnets_gives_the_classifier_resnets_that_save_and_load(tmp_path):
    _critic_checkpoint(tmp_path / "ckpt", kind="resnet18")
    model, _ = train_success([make_store(tmp_path / "a", 8, 0)],
                             dataclasses.replace(CFG, critic_encoder=str(tmp_path / "ckpt"), steps=1))
    assert model.image_encoder == "resnet18"
    model.save(tmp_path / "clf.safetensors")
    again = SuccessClassifier.load(tmp_path / "clf.safetensors")
    assert again.image_encoder == "resnet18"
    obs = {"images": {"front": torch.from_numpy(frame_image(np.random.default_rng(5), True))[None]},
           "proprio": torch.zeros(1, 4)}
    assert torch.equal(again.probability(obs), model.probability(obs))


def test_reward_commands_train_and_check(tmp_path):
    make_store(tmp_path / "train", 20, 0)
    make_store(tmp_path / "held", 10, 3)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "robot_parl.cli", "reward", *args], capture_output=True,
                              text=True, timeout=600)

    res = cli("train", str(tmp_path / "train"), f"image_size={SIZE}", "steps=150", "batch_size=32",
              "positive_frames=3", "negative_gap=6", "consecutive=2", "--out", str(tmp_path / "clf.safetensors"))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "step 150/150" in res.stdout and (tmp_path / "clf.safetensors").is_file()
    res = cli("check", str(tmp_path / "held"), "--classifier", str(tmp_path / "clf.safetensors"), "--json",
              str(tmp_path / "check.json"))
    assert res.returncode == 0, res.stderr[-2000:]
    metrics = json.loads((tmp_path / "check.json").read_text())["metrics"]
    assert metrics["episodes"] == 10 and metrics["precision"] == metrics["recall"] == 1.0
    res = cli("check", str(tmp_path / "held"), "--classifier", str(tmp_path / "check.json"))
    assert res.returncode == 2 and "not a success classifier" in res.stderr
    res = cli("train", str(tmp_path / "train"), "steps=0", "--out", str(tmp_path / "x.safetensors"))
    assert res.returncode == 2 and "steps" in res.stderr and not (tmp_path / "x.safetensors").exists()
