"""PA-RL must beat both the frozen base policy and critic re-ranking of its samples, per policy class.

A shorter, seeded version of `python -m benchmarks.parl_state` (which runs 3 seeds and 100 online
episodes): one seed, 100 fixed evaluation layouts, and for each policy class an episode budget past
the point where its benchmark curves separate (the autoregressive policy starts weaker, at ~10%).
"""

import pytest

from robot_parl import typed_config
from robot_parl.runtime.compare import compare_methods
from robot_parl.runtime.local_run import LocalRunConfig


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "episodes"), [("diffusion", 40), ("autoregressive", 75)])
def test_parl_beats_base_and_rerank(kind, episodes, tmp_path):
    cfg = typed_config.load(LocalRunConfig, overrides=[
        f"policy.kind={kind}", "seed=0", f"online.episodes={episodes}", f"online.eval_every={episodes}",
        f"online.checkpoint_every={episodes}",
        # the critic acts from the start: this tests how fast PA-RL learns against re-ranking; the trust test
        # (rl/trust.py), which holds both back until acting on the critic has done better than the policy, is
        # measured by benchmarks/no_dip.py and benchmarks/results/parl_probation.json
        "parl.trust_min_z=0"])
    result = compare_methods(cfg, tmp_path, log=lambda _: None)
    final = result["final"]
    assert len(result["parl"]) == 2 and result["parl"][-1]["online_episodes"] == episodes
    print(kind, final)
    assert final["parl"] >= final["base"] + 0.15, final
    assert final["parl"] >= final["rerank"] + 0.15, final
    # Distillation, not only the critic's choice, made the policy better.
    assert final["parl_policy_alone"] >= final["base"] + 0.10, final
