"""OpenVLA's action tokens and un-normalization.

Each normalized action dimension in [-1, 1] is cut into 256 uniform bins (``np.linspace(-1, 1, 256)``
edges); a value's token id is ``vocab_size - digitize(value)``, so the 256 action ids are the last ones of
the Llama vocabulary (31744..31999). Decoding maps an id to one of the 255 bin centres. The dataset's units
come from its q01/q99 where the mask is set (the gripper is not normalized); robot units add the gripper
mapping (models/action_space.py).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from robot_parl.models.action_space import VLAActionSpace


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


def action_stats(norm_stats: Mapping, unnorm_key: str | None) -> tuple[str, dict]:
    """(key, ``norm_stats[key]["action"]``) for one dataset; the key may be omitted when there is exactly one."""
    if not norm_stats:
        raise ValueError("the checkpoint has no norm_stats; cannot map actions to robot units")
    if unnorm_key is None:
        if len(norm_stats) != 1:
            raise ValueError(f"the checkpoint has statistics for several datasets {sorted(norm_stats)}; "
                             f"choose one with unnorm_key")
        unnorm_key = next(iter(norm_stats))
    if unnorm_key not in norm_stats:
        raise ValueError(f"unnorm_key {unnorm_key!r} is not in the checkpoint's norm_stats {sorted(norm_stats)}")
    stats = dict(norm_stats[unnorm_key].get("action", {}))
    if "q01" not in stats or "q99" not in stats:
        raise ValueError(f"the {unnorm_key!r} action statistics need q01 and q99, got keys {sorted(stats)}")
    n = len(stats["q01"])
    stats.setdefault("mask", [True] * n)
    if not (len(stats["q99"]) == len(stats["mask"]) == n) or n == 0:
        raise ValueError(f"the {unnorm_key!r} action statistics disagree in length: q01 {len(stats['q01'])}, "
                         f"q99 {len(stats['q99'])}, mask {len(stats['mask'])}")
    return unnorm_key, stats


def dataset_action_space(norm_stats: Mapping, unnorm_key: str | None) -> VLAActionSpace:
    """Normalized actions <-> the dataset's units (OpenVLA's own q01/q99 un-normalization, no gripper mapping)."""
    _, stats = action_stats(norm_stats, unnorm_key)
    return VLAActionSpace(stats["q01"], stats["q99"], stats["mask"], None)
