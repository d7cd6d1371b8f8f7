"""Learned success detection (HIL-SERL's reward classifier): the probability that a robot observation (its camera
frames, optionally with proprio) shows the task done, and the rule that turns those per-frame probabilities into an
episode's outcome: success once ``consecutive`` frames in a row score at least ``threshold``.

A classifier is saved as one safetensors file holding its weights, the threshold, the rule and what it reads (each
camera's name and frame size, the proprio size), so a session for another robot is refused at start, naming what
differs (:meth:`SuccessClassifier.check_fits`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from torch import nn

from robot_parl.models.encoders import Obs, ObservationEncoder, obs_to
from robot_parl.tensor_tree import load_tree, save_tree

FORMAT = "robot-parl success classifier v1"


class SuccessClassifier(nn.Module):
    """A CNN per camera (+ proprio) -> one success logit per observation: the small CNN, or the critic's kind when
    it starts from a critic's encoder (``image_encoder``)."""

    def __init__(self, cameras: Mapping[str, Sequence[int]], proprio_dim: int = 0, image_size: int = 64,
                 augment_pad: int = 4, threshold: float = 0.5, consecutive: int = 3, version: int = 0,
                 image_encoder: str = "small_cnn"):
        super().__init__()
        if not cameras:
            raise ValueError("a success classifier reads at least one camera")
        self.cameras = {name: (int(size[0]), int(size[1])) for name, size in cameras.items()}
        self.proprio_dim = proprio_dim
        self.image_size = image_size
        self.augment_pad = augment_pad
        self.image_encoder = image_encoder
        self.threshold = threshold
        self.consecutive = consecutive
        self.version = version  # the training run that made it (stored with the outcomes it gives)
        self.encoder = ObservationEncoder(proprio_dim=proprio_dim, cameras=tuple(self.cameras),
                                          image_encoder=image_encoder, image_size=image_size, augment_pad=augment_pad,
                                          hidden_dims=(128,), out_dim=1)

    def forward(self, obs: Obs, augment: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """[B] success logits."""
        return self.encoder(obs, augment, generator)[:, 0]

    @torch.no_grad()
    def probability(self, obs: Obs) -> torch.Tensor:
        """[B] probabilities that each observation shows success (observations from host memory are moved to the
        classifier's device)."""
        was = self.training
        self.eval()
        try:
            return torch.sigmoid(self(obs_to(obs, next(self.parameters()).device)))
        finally:
            self.train(was)

    def outcome(self, probabilities: Sequence[float]) -> tuple[bool, int]:
        """(success, the frame at which it was decided, -1 for none) for an episode's per-frame probabilities."""
        watch = SuccessWatch(self)
        return next(((True, t) for t, p in enumerate(probabilities) if watch.feed(float(p))), (False, -1))

    def expects(self) -> dict:
        """What it reads: cameras (name -> [height, width]) and the proprio size."""
        return {"cameras": {k: list(v) for k, v in self.cameras.items()}, "proprio_dim": self.proprio_dim}

    def check_fits(self, observation_keys: Mapping[str, tuple[str, tuple[int, ...]]]) -> None:
        """Refuse a robot (its flat observation keys -> (dtype, shape), as ``RobotSpec.observation_keys``) whose
        cameras or proprio differ from what this classifier was trained on, naming what differs."""
        differ = []
        for name, (h, w) in self.cameras.items():
            got = observation_keys.get(f"images/{name}")
            if got is None:
                have = sorted(k.removeprefix("images/") for k in observation_keys if k.startswith("images/"))
                differ.append(f"camera {name!r} is missing (the robot has {have})")
            elif tuple(got[1][:2]) != (h, w):
                differ.append(f"camera {name!r} gives {list(got[1][:2])} frames, the classifier was trained on "
                              f"{[h, w]}")
        if self.proprio_dim:
            got = observation_keys.get("proprio")
            size = int(np.prod(got[1])) if got is not None else 0
            if size != self.proprio_dim:
                differ.append(f"proprio has {size} values, the classifier was trained on {self.proprio_dim}")
        if differ:
            raise ValueError("the success classifier does not fit this robot: " + "; ".join(differ))

    def save(self, path: str | Path) -> None:
        """One safetensors file: weights, threshold, rule and what it reads."""
        save_tree(path, {"format": FORMAT, **self.expects(), "image_size": self.image_size,
                         "augment_pad": self.augment_pad, "image_encoder": self.image_encoder,
                         "threshold": self.threshold,
                         "consecutive": self.consecutive, "version": self.version, "weights": self.state_dict()})

    @classmethod
    def load(cls, path: str | Path) -> SuccessClassifier:
        """A classifier saved by :meth:`save`; another kind of file is refused, naming it."""
        try:
            tree = load_tree(path)
            if tree.get("format") != FORMAT:
                raise ValueError(f"format {tree.get('format')!r}, expected {FORMAT!r}")
            # files from before the critic's encoder could be reused hold the small CNN
            model = cls(tree["cameras"], tree["proprio_dim"], tree["image_size"], tree["augment_pad"],
                        tree["threshold"], tree["consecutive"], tree["version"], tree.get("image_encoder", "small_cnn"))
            model.load_state_dict(tree["weights"])
        except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as err:  # missing, truncated, foreign
            raise ValueError(f"{path}: not a success classifier ({err})") from None
        return model


class SuccessWatch:
    """A classifier watching one episode frame by frame: the probabilities so far and whether it has decided
    (``consecutive`` frames in a row at or above the threshold)."""

    def __init__(self, classifier: SuccessClassifier):
        self.classifier = classifier
        self.trace: list[float] = []
        self.run = 0
        self.decided = False

    def see(self, obs: Obs) -> bool:
        """Score one observation (a batch of one); returns whether the episode has succeeded."""
        return self.feed(float(self.classifier.probability(obs)[0]))

    def feed(self, probability: float) -> bool:
        """The next frame's probability; returns whether the episode has succeeded."""
        self.trace.append(round(probability, 4))
        self.run = self.run + 1 if probability >= self.classifier.threshold else 0
        self.decided = self.decided or self.run >= self.classifier.consecutive
        return self.decided
