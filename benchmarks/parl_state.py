"""PA-RL on the state-based PointReach task: BC base vs critic re-ranking vs PA-RL, per policy class
and seed, with success curves on fixed evaluation layouts.

    python -m benchmarks.parl_state --json out.json [--quick] [--seeds 0 1 2] [--policies diffusion]
"""

from __future__ import annotations

import statistics

from benchmarks import learning_grid
from robot_parl import typed_config
from robot_parl.runtime.compare import compare_methods


def summarize(runs: list[dict]) -> dict:
    """Per policy class, means over seeds: final success of each method, and the PA-RL margins at every
    evaluation point (the margin over re-ranking shrinks as both approach 100%)."""
    summary = {}
    for kind in dict.fromkeys(r["policy"] for r in runs):
        mine = [r for r in runs if r["policy"] == kind]
        finals = [r["final"] for r in mine]
        s = {m: statistics.mean(f[m] for f in finals) for m in finals[0]}
        s["parl_minus_base"] = s["parl"] - s["base"]
        s["parl_minus_rerank"] = s["parl"] - s["rerank"]
        s["seeds"] = [r["seed"] for r in mine]
        s["by_episodes"] = []
        for i, point in enumerate(mine[0]["parl"]):
            parl = statistics.mean(r["parl"][i]["agent_success"] for r in mine)
            rerank = statistics.mean(r["rerank"][i]["agent_success"] for r in mine)
            base = statistics.mean(r["final"]["base"] for r in mine)
            s["by_episodes"].append({"online_episodes": point["online_episodes"], "parl": parl, "rerank": rerank,
                                     "parl_minus_base": parl - base, "parl_minus_rerank": parl - rerank,
                                     "parl_policy_alone": statistics.mean(r["parl"][i]["policy_success"]
                                                                          for r in mine)})
        summary[kind] = s
    return summary


def main() -> None:
    args = learning_grid.parser(__doc__).parse_args()
    overrides = list(args.overrides)
    seeds, policies = args.seeds, args.policies
    if args.quick:
        seeds, policies = seeds[:1], policies[:1]
        overrides = ["online.episodes=40", "online.eval_every=20", "demos.bc_steps=500",
                     "parl.schedule.offline_steps=200", *overrides]

    def save(runs: list[dict], cfg) -> None:
        out = {"benchmark": "parl_state", "config": typed_config.to_dict(cfg), "overrides": overrides,
               "summary": summarize(runs), "runs": runs}
        learning_grid.write_results(args.json, out, ("parl", "rerank"), "PointReach: PA-RL vs re-ranking")

    learning_grid.run_grid(policies, seeds, overrides, compare_methods, save,
                           learning_grid.kept_runs(args, overrides=overrides))


if __name__ == "__main__":
    main()
