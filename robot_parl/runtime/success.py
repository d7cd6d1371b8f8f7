"""Training a success classifier (models/success.py) from episode stores, and checking its episode outcomes
against the stored ones.

Labels come from what a store already holds, each episode's outcome: the last ``positive_frames`` frames of a
successful episode show success (its final frame always does: a simulator or an operator ended it there); frames of
failed episodes, and frames of successful ones more than ``negative_gap`` frames before their end, do not; the frames
between are left out (when success began is known only to within an operator's reaction). Episodes cut short by a
crash (partial) have no outcome and are skipped. Training draws balanced batches (half successes) with DrQ random
shifts; the threshold is then chosen on held-out episodes of each outcome as the one whose episode outcomes agree
with the stored ones most often.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError

from robot_parl.data.episode_store import EpisodeStore, StoreError
from robot_parl.models.encoders import IMAGE_ENCODERS, unflatten_obs
from robot_parl.models.success import SuccessClassifier
from robot_parl.tensor_tree import load_tree
from robot_parl.typed_config import ConfigError, require


@dataclass
class SuccessTrainConfig:
    cameras: tuple[str, ...] = ()  # which cameras it reads; empty: every camera of the stores
    proprio: bool = True  # read proprio too, where the stores have it
    image_size: int = 64
    augment_pad: int = 4
    steps: int = 1500
    batch_size: int = 64
    lr: float = 1e-3
    positive_frames: int = 1
    negative_gap: int = 5
    consecutive: int = 3  # an episode succeeds once this many frames in a row reach the threshold
    holdout: float = 0.2  # share of each outcome's episodes held out to choose the threshold
    seed: int = 0
    # A checkpoint directory of a session or run (its agent.safetensors): the critic's CNN for each camera, trained
    # on this robot's frames, starts the classifier's (which takes the critic's kind of CNN); "": the small CNN from
    # scratch. With freeze_encoder, those CNNs stay as the critic left them and only the head is trained.
    critic_encoder: str = ""
    freeze_encoder: bool = False

    def validate(self) -> None:
        require(self.image_size >= 16, "image_size", "an integer >= 16", self.image_size)
        require(self.augment_pad >= 0, "augment_pad", "an integer >= 0", self.augment_pad)
        require(self.steps >= 1, "steps", "an integer >= 1", self.steps)
        require(self.batch_size >= 2, "batch_size", "an integer >= 2", self.batch_size)
        require(self.lr > 0, "lr", "a positive number", self.lr)
        require(self.positive_frames >= 1, "positive_frames", "an integer >= 1", self.positive_frames)
        require(self.negative_gap >= self.positive_frames, "negative_gap", f"an integer >= positive_frames "
                f"({self.positive_frames})", self.negative_gap)
        require(self.consecutive >= 1, "consecutive", "an integer >= 1", self.consecutive)
        require(0 < self.holdout < 1, "holdout", "a share in (0, 1)", self.holdout)
        require(bool(self.critic_encoder) or not self.freeze_encoder, "freeze_encoder",
                "false without critic_encoder (a frozen random CNN learns nothing)", self.freeze_encoder)


@dataclass
class _Stored:
    store: EpisodeStore
    index: int
    success: bool


def observed_keys(stores: Sequence[EpisodeStore], cfg: SuccessTrainConfig) -> dict[str, tuple[int, ...]]:
    """The flat keys the classifier reads (cameras, then proprio) and their per-frame shapes, the same in every
    store; a store that lacks one or shapes it otherwise is refused, naming both."""
    schema = stores[0].schema
    cameras = list(cfg.cameras) or [k.removeprefix("images/") for k, s in schema.items() if s.is_image]
    keys = [f"images/{c}" for c in cameras] + (["proprio"] if cfg.proprio and "proprio" in schema else [])
    if not cameras:
        raise StoreError(f"{stores[0].path} has no camera frames; a success classifier reads at least one camera")
    for store in stores:
        for key in keys:
            if key not in store.schema:
                raise StoreError(f"{store.path} has no {key!r} (it has {sorted(store.schema)})")
            if store.schema[key].shape != schema[key].shape:
                raise StoreError(f"{store.path}: {key!r} is {list(store.schema[key].shape)} per frame, "
                                 f"{stores[0].path} has {list(schema[key].shape)}")
    return {k: tuple(schema[k].shape) for k in keys}


def labels(length: int, success: bool, cfg: SuccessTrainConfig) -> np.ndarray:
    """Per frame: 1 success, 0 not, -1 left out (see the module docstring)."""
    out = np.zeros(length, np.float32)
    if success:
        out[max(0, length - cfg.negative_gap):] = -1
        out[max(0, length - cfg.positive_frames):] = 1
    return out


def _batch(obs: dict[str, np.ndarray], rows: np.ndarray | slice) -> dict:
    return unflatten_obs({k: torch.from_numpy(np.ascontiguousarray(v[rows])) for k, v in obs.items()})


def _frames(episodes: Sequence[_Stored], keys: Sequence[str]) -> list[dict[str, np.ndarray]]:
    return [ep.store.episode(ep.index, list(keys)) for ep in episodes]


def probabilities(classifier: SuccessClassifier, frames: dict[str, np.ndarray], batch: int = 256) -> np.ndarray:
    """The classifier's probability for every frame of one episode (flat keys -> [T, ...])."""
    n = len(next(iter(frames.values())))
    return np.concatenate([classifier.probability(_batch(frames, slice(i, i + batch))).numpy()
                           for i in range(0, n, batch)]) if n else np.zeros(0, np.float32)


def _split(episodes: list[_Stored], share: float, rng: np.random.Generator) -> tuple[list[_Stored], list[_Stored]]:
    train, held = [], []
    for outcome in (True, False):
        mine = [e for e in episodes if e.success == outcome]
        order = rng.permutation(len(mine))
        cut = int(round(share * len(mine)))
        held += [mine[i] for i in order[:cut]]
        train += [mine[i] for i in order[cut:]]
    return train, held


def _choose_threshold(classifier: SuccessClassifier, probs: list[np.ndarray], outcomes: list[bool]) -> float:
    """The threshold whose episode outcomes agree with ``outcomes`` most often (ties: the one nearest 0.5).

    An episode succeeds at threshold t exactly when its decisive value (over windows of ``consecutive`` frames,
    the largest window minimum) is >= t: agreement is flat between those values, so trying each, the float just
    above each, and 0.5 finds the best threshold nearest 0.5, linear in frames."""
    k = classifier.consecutive
    decisive = np.array([float(np.lib.stride_tricks.sliding_window_view(p, k).min(1).max()) if len(p) >= k
                         else -np.inf for p in probs])
    truth = np.asarray(outcomes, bool)
    finite = decisive[np.isfinite(decisive)].astype(np.float32)
    candidates = np.unique(np.concatenate([finite, np.nextafter(finite, np.float32(2)), [0.5]]).astype(np.float64))
    scores = ((decisive[None, :] >= candidates[:, None]) == truth[None, :]).sum(1)
    best = candidates[scores == scores.max()]
    return float(best[np.argmin(np.abs(best - 0.5))])


def train_success(stores: Sequence[EpisodeStore], cfg: SuccessTrainConfig,
                  progress: Callable[[int, int, float], None] | None = None) -> tuple[SuccessClassifier, dict]:
    """Train a classifier on ``stores``' episodes; returns it (threshold chosen, version set) and a report.
    ``progress`` gets (step, steps, loss)."""
    started = time.monotonic()
    keys = observed_keys(stores, cfg)
    episodes = [_Stored(s, e.index, e.success) for s in stores for e in s.episodes() if not e.partial and len(e)]
    for outcome, name in ((True, "successful"), (False, "failed")):
        if sum(e.success == outcome for e in episodes) < 2:
            raise StoreError(f"{[str(s.path) for s in stores]} hold fewer than 2 {name} episodes; the classifier "
                             f"needs both outcomes to learn and to choose its threshold")
    rng = np.random.default_rng(cfg.seed)
    train, held = _split(episodes, cfg.holdout, rng)
    frames = _frames(train, keys)
    y = np.concatenate([labels(len(next(iter(f.values()))), ep.success, cfg) for f, ep in zip(frames, train)])
    obs = {k: np.concatenate([f[k] for f in frames]) for k in keys}
    positives, negatives = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if not len(negatives):
        raise StoreError("no frame to learn 'not yet succeeded' from: every episode is too short for negative_gap "
                         f"({cfg.negative_gap}) and no episode failed")
    torch.manual_seed(cfg.seed)
    cameras = {k.removeprefix("images/"): shape[:2] for k, shape in keys.items() if k.startswith("images/")}
    cnns = critic_cnns(cfg.critic_encoder, list(cameras)) if cfg.critic_encoder else {}
    kind = next(iter(cnns.values()))[0] if cnns else "small_cnn"
    model = SuccessClassifier(cameras, keys["proprio"][0] if "proprio" in keys else 0, cfg.image_size,
                              cfg.augment_pad, consecutive=cfg.consecutive, image_encoder=kind)
    for camera, (_, state) in cnns.items():
        model.encoder.cnns[camera].load_state_dict(state)
        model.encoder.cnns[camera].requires_grad_(not cfg.freeze_encoder)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    generator = torch.Generator().manual_seed(cfg.seed)
    half = cfg.batch_size // 2
    target = torch.cat([torch.ones(half), torch.zeros(cfg.batch_size - half)])
    loss_value = 0.0
    model.train()
    for step in range(1, cfg.steps + 1):
        rows = np.concatenate([rng.choice(positives, half), rng.choice(negatives, cfg.batch_size - half)])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(_batch(obs, rows), True, generator), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_value = loss.item()
        if progress is not None:
            progress(step, cfg.steps, loss_value)
    held_probs = [probabilities(model, f) for f in _frames(held, keys)]
    model.threshold = _choose_threshold(model, held_probs, [e.success for e in held])
    digest = hashlib.sha256(b"".join(t.numpy().tobytes() for t in model.state_dict().values()))
    model.version = int(digest.hexdigest()[:12], 16)
    report = {"frames": int(len(y)), "positive_frames": int(len(positives)), "negative_frames": int(len(negatives)),
              "train_episodes": len(train), "holdout_episodes": len(held), "threshold": round(model.threshold, 4),
              "consecutive": model.consecutive, "final_loss": round(loss_value, 4), "version": model.version,
              "holdout": outcome_metrics([model.outcome(p)[0] for p in held_probs], [e.success for e in held]),
              "seconds": round(time.monotonic() - started, 1)}
    return model, report


def critic_cnns(checkpoint: str | Path, cameras: Sequence[str]) -> dict[str, tuple[str, dict[str, torch.Tensor]]]:
    """camera -> (its CNN's kind, weights) of the critic in a checkpoint directory, for each of ``cameras``; a
    directory without a critic, or a critic that lacks a camera, is refused naming what it has."""
    path = Path(checkpoint) / "agent.safetensors"
    try:
        critic = load_tree(path)["critic"]
    except (OSError, ValueError, KeyError, SafetensorError) as err:
        raise ConfigError("critic_encoder", f"{checkpoint}: no critic in a checkpoint there ({err})") from None
    found = {}
    for camera in cameras:
        prefix = f"encoder.cnns.{camera}."
        state = {k.removeprefix(prefix): v for k, v in critic.items() if k.startswith(prefix)}
        kind = next((name for name, cnn in IMAGE_ENCODERS.items() if set(cnn().state_dict()) == set(state)), None)
        if kind is None:
            have = sorted({k.split(".")[2] for k in critic if k.startswith("encoder.cnns.")})
            raise ConfigError("critic_encoder", f"the critic in {checkpoint} has no CNN for camera {camera!r} (it "
                                                f"reads cameras {have})")
        found[camera] = (kind, state)
    return found


def check_store(classifier: SuccessClassifier, store: EpisodeStore) -> list[dict]:
    """Per committed episode with an outcome: the stored outcome, the classifier's, the frame it decided at, and
    the highest probability it gave."""
    keys = [f"images/{c}" for c in classifier.cameras] + (["proprio"] if classifier.proprio_dim else [])
    classifier.check_fits({k: (s.dtype, s.shape) for k, s in store.schema.items()})
    out = []
    for info in store.episodes():
        if info.partial or not len(info):
            continue
        probs = probabilities(classifier, store.episode(info.index, keys))
        success, at = classifier.outcome(probs)
        out.append({"index": info.index, "stored": info.success, "classifier": success, "decided_at": at,
                    "length": len(info), "max_probability": round(float(probs.max()), 4)})
    return out


def outcome_metrics(predicted: Sequence[bool], actual: Sequence[bool]) -> dict:
    """Precision and recall of predicted successes, and agreement, over episodes."""
    tp = sum(p and a for p, a in zip(predicted, actual))
    fp = sum(p and not a for p, a in zip(predicted, actual))
    fn = sum(a and not p for p, a in zip(predicted, actual))
    n = len(actual)
    return {"episodes": n, "precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "recall": round(tp / (tp + fn), 4) if tp + fn else None,
            "agreement": round(sum(p == a for p, a in zip(predicted, actual)) / n, 4) if n else None,
            "false_successes": fp, "missed_successes": fn}
