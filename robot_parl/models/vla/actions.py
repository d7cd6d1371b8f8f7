"""OpenVLA's action tokens and un-normalization.

Each normalized action dimension in [-1, 1] is cut into 256 uniform bins (``np.linspace(-1, 1, 256)``
edges); a value's token id is ``vocab_size - digitize(value)``, so the 256 action ids are the last ones of
the Llama vocabulary (31744..31999). Decoding maps an id to one of the 255 bin centres. Robot units come
from the dataset's q01/q99 where the mask is set (the gripper is not normalized).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


class ActionTokenizer:
    """Normalized actions <-> action token ids, exactly as OpenVLA."""

    def __init__(self, vocab_size: int = 32000, n_bins: int = 256):
        self.vocab_size = vocab_size
        self.n_bins = n_bins
        self.bins = np.linspace(-1.0, 1.0, n_bins)
        self.centers = (self.bins[:-1] + self.bins[1:]) / 2.0

    @property
    def first_id(self) -> int:
        """The smallest action token id (31744 for OpenVLA); ids run to ``vocab_size - 1``."""
        return self.vocab_size - self.n_bins

    def encode(self, actions: np.ndarray) -> np.ndarray:
        """Actions in [-1, 1] (clipped outside) -> token ids (int64, same shape). NaN is refused."""
        actions = np.asarray(actions, dtype=np.float64)
        if np.isnan(actions).any():
            raise ValueError("actions contain NaN; cannot tokenize")
        return (self.vocab_size - np.digitize(np.clip(actions, -1.0, 1.0), self.bins)).astype(np.int64)

    def decode(self, token_ids: np.ndarray) -> np.ndarray:
        """Token ids -> bin centres (float64). Ids outside the action range clip to the nearest end, as OpenVLA."""
        index = np.clip(self.vocab_size - np.asarray(token_ids, dtype=np.int64) - 1, 0, len(self.centers) - 1)
        return self.centers[index]


class ActionNormalizer:
    """OpenVLA's q01/q99 un-normalization for one dataset's statistics (``norm_stats[key]["action"]``)."""

    def __init__(self, stats: Mapping):
        try:
            self.q01 = np.asarray(stats["q01"], dtype=np.float64)
            self.q99 = np.asarray(stats["q99"], dtype=np.float64)
        except KeyError:
            raise ValueError(f"action statistics need q01 and q99, got keys {sorted(stats)}") from None
        self.mask = np.asarray(stats.get("mask", np.ones_like(self.q01, dtype=bool)), dtype=bool)
        if not (self.q01.shape == self.q99.shape == self.mask.shape) or self.q01.ndim != 1:
            raise ValueError(f"action statistics disagree in shape: q01 {self.q01.shape}, q99 {self.q99.shape}, "
                             f"mask {self.mask.shape}")

    @classmethod
    def from_norm_stats(cls, norm_stats: Mapping, unnorm_key: str | None) -> ActionNormalizer:
        """Pick one dataset's statistics; the key may be omitted when there is exactly one."""
        if not norm_stats:
            raise ValueError("the checkpoint has no norm_stats; cannot map actions to robot units")
        if unnorm_key is None:
            if len(norm_stats) != 1:
                raise ValueError(f"the checkpoint has statistics for several datasets {sorted(norm_stats)}; "
                                 f"choose one with unnorm_key")
            unnorm_key = next(iter(norm_stats))
        if unnorm_key not in norm_stats:
            raise ValueError(f"unnorm_key {unnorm_key!r} is not in the checkpoint's norm_stats {sorted(norm_stats)}")
        return cls(norm_stats[unnorm_key]["action"])

    @property
    def action_dim(self) -> int:
        return self.q01.shape[0]

    def unnormalize(self, actions: np.ndarray) -> np.ndarray:
        """[..., A] in [-1, 1] -> robot units."""
        actions = np.asarray(actions, dtype=np.float64)
        return np.where(self.mask, 0.5 * (actions + 1.0) * (self.q99 - self.q01) + self.q01, actions)

    def normalize(self, actions: np.ndarray) -> np.ndarray:
        """Robot units -> [-1, 1] (clipped), the inverse of :meth:`unnormalize` inside the q01..q99 range."""
        actions = np.asarray(actions, dtype=np.float64)
        span = np.where(self.q99 > self.q01, self.q99 - self.q01, 1.0)
        return np.clip(np.where(self.mask, 2.0 * (actions - self.q01) / span - 1.0, actions), -1.0, 1.0)
