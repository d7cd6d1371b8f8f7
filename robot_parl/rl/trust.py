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

Once trusted, the critic is watched: a share ``parl.watch_share`` (1/8 by default) of the later rollouts act on the
policy alone, as controls. The same test, the other way round, runs on them against the rollouts the critic acts
in: controls whose returns beat the critic's by z >= ``parl.trust_min_z`` (over up to ``trust_window / 2`` controls,
from ``trust_window / 4`` on), or a critic arm succeeding less often with z <= -trust_min_z, revoke the trust; the
critic goes back on probation with fresh evidence and nothing is distilled until it passes again. That catches a
critic that goes wrong after it was trusted (exploiting its own errors as it trains on its own choices), which
nothing else in a session would see before the robot got worse.

Arms come from one hash of the episode id into 16 slots. On probation the critic acts in the odd slots; once trusted
in every slot but the ``16 x watch_share`` lowest even ones. Both sides (actor and learner) derive an episode's arm
from its id and the trust flag; where they disagree (an actor still acting on weights from before the flag turned),
only slots that act alike either way are counted: the controls and the odd slots. So the watch's evidence is exact
across the turn, and the probation after a revocation may count at most one episode per robot (per environment of
an in-process run) in a wrong arm: the one under way when the flag turned.

An earlier rule ranked the policy's own samples by the critic's advantage against outcomes; on pick it never passed
on one seed of three, and each time it did pass, acting on the critic was 7-17 points below the policy at the next
evaluation: ranking random samples well is not the same as choosing well.
"""

from __future__ import annotations

import math
import zlib

SLOTS = 16


def _slot(episode_id: str) -> int:
    return zlib.crc32(episode_id.encode()) % SLOTS


def probation_arm(episode_id: str) -> bool:
    """Whether the critic's choice is acted on in this episode while the critic is on probation (half the ids)."""
    return _slot(episode_id) % 2 == 1


def watch_control(episode_id: str, share: float) -> bool:
    """Whether this episode acts on the policy alone although the critic is trusted (``share`` of the ids, all of
    them in the policy's arm on probation as well)."""
    slot = _slot(episode_id)
    return slot % 2 == 0 and slot < 2 * round(share * SLOTS)


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


def revoke_z(watch: list[tuple[bool, bool, float]]) -> float:
    """The watch's evidence against a trusted critic, from (critic acted, success, return) per episode: how much
    better the controls (the policy alone) did, as :func:`gain_z` measures the critic arm's gain the other way
    round, with a critic arm that succeeds less often counted at least as far as its returns say. Positive: the
    controls did better."""
    z = -gain_z(watch)
    critic = [ok for acted, ok, _ in watch if acted]
    policy = [ok for acted, ok, _ in watch if not acted]
    if critic and policy and sum(critic) / len(critic) < sum(policy) / len(policy):
        z = max(z, _proportion_z(policy, critic))
    return z


def _proportion_z(a: list[bool], b: list[bool]) -> float:
    """Two-proportion z of a's success rate over b's (0 when every episode had the same outcome)."""
    p = (sum(a) + sum(b)) / (len(a) + len(b))
    if p in (0.0, 1.0):
        return 0.0
    return (sum(a) / len(a) - sum(b) / len(b)) / math.sqrt(p * (1 - p) * (1 / len(a) + 1 / len(b)))
