"""When the critic may act and teach: only once acting on its choice has been seen to do better than acting on
the policy alone, on the robot, in the same stretch of the session.

Until then the critic is on probation. Each online rollout is assigned, by a hash of its episode id, to one of two
arms: in one the robot acts on the critic's choice, in the other on the policy's first sample (the policy alone).
The assignment is random and fixed before the episode starts, so the two arms see the same kinds of layouts and
the same moment of training: a randomised trial of the acting rule itself. Nothing is distilled and evaluations act
on the policy alone meanwhile, so a critic that picks worse than the policy (an offline critic on a task it was not
tuned on, or one exploiting its own errors) never becomes what the robot does.

The test, once the newest ``parl.trust_window`` probation rollouts are in: the critic arm's returns must beat the
policy arm's by a Mann-Whitney z >= ``parl.trust_min_z``, with a success rate no lower. The critic is then trusted
and stays so (the flag travels with its weights). Why each part, measured on pick:
- returns, not only outcomes: with sparse rewards they also say how fast an episode succeeded. Success alone over
  64 rollouts never told a critic acting at 81% (forced, 100 layouts) from a policy at 52%;
- a full window: 5 critic-arm successes against 4 of 6 passed z = 2, and the critic then acted 14 points below
  the base;
- no lower success rate: a critic may trade success for speed, and success is what the robot is for.
The test is repeated as episodes come in, so its false-trust rate is higher than one test's 2.3% at z = 2.

An earlier rule ranked the policy's own samples by the critic's advantage against outcomes; on pick it never passed
on one seed of three, and each time it did pass, acting on the critic was 7-17 points below the policy at the next
evaluation: ranking random samples well is not the same as choosing well.
"""

from __future__ import annotations

import math
import zlib


def probation_arm(episode_id: str) -> bool:
    """Whether the critic's choice is acted on in this episode while the critic is on probation (half the ids)."""
    return zlib.crc32(episode_id.encode()) % 2 == 1


def gain_z(trial: list[tuple[bool, bool, float]]) -> float:
    """How much better the critic arm did, from (critic acted, success, return) per episode: the Mann-Whitney z
    of the critic arm's returns over the policy arm's (ties count half), which sees both how often and how fast
    each arm succeeded; but never above 0 while the critic arm's success rate is below the policy arm's (a
    critic may trade success for speed, and success is what the robot is for). 0 while an arm is empty."""
    critic = [(ok, ret) for acted, ok, ret in trial if acted]
    policy = [(ok, ret) for acted, ok, ret in trial if not acted]
    n1, n2 = len(critic), len(policy)
    if not n1 or not n2:
        return 0.0
    u = sum((a > b) + 0.5 * (a == b) for _, a in critic for _, b in policy)
    z = (u - n1 * n2 / 2) / math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
    worse = sum(ok for ok, _ in critic) / n1 < sum(ok for ok, _ in policy) / n2
    return min(z, 0.0) if worse else z
