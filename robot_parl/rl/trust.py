"""When the critic may act and teach: only once acting on its choice has been seen to succeed more often than
acting on the policy alone, on the robot, in the same stretch of the session.

Until then the critic is on probation. Each online rollout is assigned, by a hash of its episode id, to one of two
arms: in one the robot acts on the critic's choice, in the other on the policy's first sample (the policy alone).
The assignment is random and fixed before the episode starts, so the two arms see the same kinds of layouts and
the same moment of training: a randomised trial of the acting rule itself. The critic is trusted from the first
time the critic arm's success rate beats the policy arm's by ``parl.trust_min_z`` standard errors (a two-proportion
z over the newest ``parl.trust_window`` probation episodes), and stays trusted (the flag travels with its weights).
Nothing is distilled and evaluations act on the policy alone until then, so a critic that picks worse than the
policy (an offline critic on a task it was not tuned on, or one exploiting its own errors) never becomes what the
robot does. The test is repeated as episodes come in, so its false-trust rate is higher than one test's 2.3% at
z = 2.

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


def gain_z(trial: list[tuple[bool, bool]]) -> float:
    """Two-proportion z of the critic arm's success rate over the policy arm's, from (critic acted, success) per
    episode; 0 while an arm is empty or every episode had the same outcome."""
    critic = [ok for acted, ok in trial if acted]
    policy = [ok for acted, ok in trial if not acted]
    if not critic or not policy:
        return 0.0
    pooled = (sum(critic) + sum(policy)) / (len(critic) + len(policy))
    spread = math.sqrt(pooled * (1 - pooled) * (1 / len(critic) + 1 / len(policy)))
    return 0.0 if spread == 0 else (sum(critic) / len(critic) - sum(policy) / len(policy)) / spread
