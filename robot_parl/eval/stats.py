"""Success rates with Wilson score intervals (better behaved than the normal approximation at the small
counts and extreme rates of robot evaluations)."""

from __future__ import annotations

import math


def wilson_interval(successes: int, trials: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of a success rate; (0, 1) for zero trials."""
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be within [0, trials], got {successes} of {trials}")
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    # at 0 or all successes a bound is exactly 0 or 1; the formula's rounding would put it a hair past the rate
    # (a negative error bar, which matplotlib refuses)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    return low, 1.0 if successes == trials else min(1.0, centre + half)
