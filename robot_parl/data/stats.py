"""Normalization statistics of per-step keys, in OpenVLA's ``norm_stats`` layout.

Per dimension: q01, q99, mean, std, min, max over every committed frame (and the frame count they
cover). A VLA un-normalizes its actions with q01/q99; ``mask`` marks the dimensions that are
normalized at all (OpenVLA leaves the gripper alone).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def key_stats(values: np.ndarray, mask: Sequence[bool] | None = None) -> dict[str, list]:
    """Statistics of ``values`` [T, D] (or [T]) per dimension; NaN frames are refused."""
    x = np.asarray(values, dtype=np.float64)
    x = x.reshape(len(x), -1)
    if len(x) == 0:
        raise ValueError("statistics need at least one frame")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).any(axis=1).sum())
        raise ValueError(f"{bad} frames hold NaN or infinite values; statistics would be meaningless")
    out = {"q01": np.quantile(x, 0.01, axis=0), "q99": np.quantile(x, 0.99, axis=0), "mean": x.mean(axis=0),
           "std": x.std(axis=0), "min": x.min(axis=0), "max": x.max(axis=0)}
    stats: dict[str, list] = {k: [float(v) for v in a] for k, a in out.items()}
    if mask is not None:
        if len(mask) != x.shape[1]:
            raise ValueError(f"mask has {len(mask)} entries for {x.shape[1]} dimensions")
        stats["mask"] = [bool(m) for m in mask]
    stats["num_frames"] = [len(x)]
    return stats
