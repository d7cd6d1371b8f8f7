"""PA-RL against its baselines on one environment, from one shared pretraining (the same demonstrations, BC
policy and offline critic): the BC policy alone (the base), critic re-ranking of the frozen base policy's samples,
and filtered BC (the base trained on its own successful episodes). Every online method gets the same episode
budget and is evaluated on the same fixed layouts.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

from robot_parl.eval.rollouts import Rollout, run_episodes
from robot_parl.models.bc import train_bc
from robot_parl.runtime.local_run import LocalRun, LocalRunConfig, bc_pairs, collect_demos


def filtered_bc(cfg: LocalRunConfig, pretrained: Path, out_dir: Path, final_episodes: int = 0,
                log: Callable[[str], None] = print) -> dict:
    """The self-imitation baseline: the BC policy acts alone for the online budget and, after each
    evaluation interval, is trained on its demonstrations plus its own successful episodes, one
    supervised step per new environment step (PA-RL's distillation rate)."""
    session = LocalRun(dataclasses.replace(cfg, method="rerank"), out_dir, log=log)
    session.agent.load(pretrained)
    demos = collect_demos(cfg, log)
    successes: list[Rollout] = []
    online = cfg.online
    started = time.monotonic()
    curve = [{"online_episodes": 0, "agent_success": session.evaluate(session.act_policy), "seconds": 0.0}]
    done = 0
    while done < online.episodes:
        chunk = min(online.eval_every, online.episodes - done)
        rollouts = run_episodes(session.train_env, cfg.online_seeds(done, chunk), session.act_policy)
        done += chunk
        successes += [r for r in rollouts if r.success]
        obs, actions = bc_pairs(demos + successes, session.agent.device)
        train_bc(session.policy, obs, actions, sum(len(r) for r in rollouts), cfg.demos.bc_batch_size,
                 session.agent.generator)
        curve.append({"online_episodes": done, "agent_success": session.evaluate(session.act_policy),
                      "successful_episodes": len(successes), "seconds": round(time.monotonic() - started, 1)})
        log(f"filtered BC: episodes {done}: {curve[-1]['agent_success']:.1%}")
    result = {"curve": curve, "seconds": round(time.monotonic() - started, 1)}
    if final_episodes:
        result["final_eval"] = session.evaluate(session.act_policy, cfg.final_eval_seeds(final_episodes))
    return result


def compare_methods(cfg: LocalRunConfig, out_dir: str | Path, log: Callable[[str], None] = print,
                    final_episodes: int = 0, filtered: bool = False) -> dict:
    """BC base vs critic re-ranking vs PA-RL (and, with ``filtered``, filtered BC) from one shared pretraining.

    With ``final_episodes``, the final policies are also evaluated on that many further layouts.
    """
    out = Path(out_dir)
    started = time.monotonic()
    parl = LocalRun(dataclasses.replace(cfg, method="parl"), out / "parl", log)
    pre = parl.pretrain()
    parl.agent.save(out / "pretrained")
    rerank = LocalRun(dataclasses.replace(cfg, method="rerank"), out / "rerank", log)
    rerank.agent.load(out / "pretrained")
    result = {"seed": cfg.seed, "policy": cfg.policy.kind, "pretrain": pre,
              "pretrain_seconds": round(time.monotonic() - started, 1)}
    for name, session in (("parl", parl), ("rerank", rerank)):
        t0 = time.monotonic()
        result[name] = session.finetune()
        result[f"{name}_seconds"] = round(time.monotonic() - t0, 1)
    result["final"] = {"base": pre["bc_success"], "rerank": result["rerank"][-1]["agent_success"],
                       "parl": result["parl"][-1]["agent_success"],
                       "parl_policy_alone": result["parl"][-1]["policy_success"]}
    if final_episodes:
        seeds = cfg.final_eval_seeds(final_episodes)
        # The re-ranking session's policy is never trained online: it is the BC base policy.
        result["final_eval"] = {"episodes": final_episodes, "base": rerank.evaluate(rerank.act_policy, seeds),
                                "rerank": rerank.evaluate(rerank.act_agent, seeds),
                                "parl": parl.evaluate(parl.act_agent, seeds),
                                "parl_policy_alone": parl.evaluate(parl.act_policy, seeds)}
    if filtered:
        fbc = filtered_bc(cfg, out / "pretrained", out / "filtered_bc", final_episodes, log)
        result["filtered_bc"] = fbc["curve"]
        result["filtered_bc_seconds"] = fbc["seconds"]
        result["final"]["filtered_bc"] = fbc["curve"][-1]["agent_success"]
        if final_episodes:
            result["final_eval"]["filtered_bc"] = fbc["final_eval"]
    result["seconds"] = round(time.monotonic() - started, 1)
    return result
