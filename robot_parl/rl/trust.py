"""When the critic may act and teach: only once it ranks the policy's own samples better than chance on online data.

Until then the robot acts with the policy alone (its first candidate) and nothing is distilled, while the critic
trains on those episodes. Each such episode is a fair test of the critic: the executed action is one of the policy's
own samples, drawn at random, so if the critic ranks samples well, the episodes whose executed actions it scores
above the policy's average (a positive mean advantage) succeed more often than the others. The test is a
Mann-Whitney U on the per-episode mean advantage, successes against failures, over the policy-acted online
episodes so far (the newest ``parl.trust_window``). Each episode is scored once, on arrival, by the critic of that
moment: scored later, by a critic trained on its outcome, it would pass any critic. The critic is trusted from the
first time z >= ``parl.trust_min_z`` and stays trusted (the flag travels with its weights). The test is repeated as
episodes come in, so its false-trust rate is higher than one test's 2.3% at z = 2. A critic that cannot tell good
samples from bad, or ranks them backwards (an offline critic on a task it was not tuned on), never acts: the robot
is no worse than its policy.
"""

from __future__ import annotations

import math

import torch

from robot_parl.models.encoders import obs_rows
from robot_parl.rl.replay import Episode


@torch.no_grad()
def mean_advantage(critic, episode: Episode) -> float:
    """Mean over the episode of Q(s, executed action) - the mean Q of the candidates at s (ensemble means)."""
    z = critic.encode(obs_rows(episode.obs, 0, episode.actions.shape[0]))
    taken = critic.q(z, episode.actions).mean(0)  # [T]
    candidates = critic.q(z, episode.candidates[:-1]).mean(0).mean(-1)  # [T]
    return (taken - candidates).mean().item()


def rank_z(scores: list[float], successes: list[bool]) -> float:
    """Mann-Whitney z of ``scores`` for successes against failures (ties count half); 0 without both outcomes."""
    wins = [s for s, ok in zip(scores, successes) if ok]
    losses = [s for s, ok in zip(scores, successes) if not ok]
    n1, n2 = len(wins), len(losses)
    if not n1 or not n2:
        return 0.0
    u = sum((w > lo) + 0.5 * (w == lo) for w in wins for lo in losses)
    return (u - n1 * n2 / 2) / math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
