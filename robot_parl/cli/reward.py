"""`robot-parl reward ...`: a learned success classifier (train it from episode stores, check its outcomes)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def add_parser(sub) -> None:
    """Register the command's parser."""
    reward_parser = sub.add_parser("reward", help="learned success detection: train a classifier on episode stores, "
                                                  "check its episode outcomes against stored ones")
    reward = reward_parser.add_subparsers(dest="reward", required=True)
    train = reward.add_parser("train", help="train a success classifier from stores' outcomes (demos, labelled "
                                            "rollouts)")
    train.add_argument("stores", nargs="+", metavar="STORE|KEY=VALUE",
                       help="episode store directories, and dotted SuccessTrainConfig overrides (steps=3000, "
                            "cameras=[wrist], positive_frames=3)")
    train.add_argument("--out", required=True, help="the classifier file to write (.safetensors)")
    train.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    train.set_defaults(run=_train)
    check = reward.add_parser("check", help="the classifier's outcome of every episode of a store against the "
                                            "stored one: precision, recall, disagreements")
    check.add_argument("store", help="episode store directory")
    check.add_argument("--classifier", required=True, help="a file written by `robot-parl reward train`")
    check.add_argument("--json", help="also write every episode's outcomes here")
    check.set_defaults(run=_check)


def _train(args: argparse.Namespace) -> int:
    import torch

    from robot_parl import typed_config
    from robot_parl.data.episode_store import EpisodeStore
    from robot_parl.runtime.success import SuccessTrainConfig, train_success

    torch.set_num_threads(args.threads)
    paths, overrides = [a for a in args.stores if "=" not in a], [a for a in args.stores if "=" in a]
    cfg = typed_config.load(SuccessTrainConfig, overrides=overrides)
    stores = [EpisodeStore(p) for p in paths]
    said = [0.0]

    def progress(step: int, steps: int, loss: float) -> None:
        if time.monotonic() - said[0] >= 10.0 or step == steps:
            said[0] = time.monotonic()
            print(f"step {step}/{steps}: loss {loss:.4f}", flush=True)

    classifier, report = train_success(stores, cfg, progress)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    classifier.save(out)
    print(json.dumps(report, indent=1))
    print(f"wrote {out}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from robot_parl.data.episode_store import EpisodeStore
    from robot_parl.files import atomic_write
    from robot_parl.models.success import SuccessClassifier
    from robot_parl.runtime.success import check_store, outcome_metrics

    classifier = SuccessClassifier.load(args.classifier)
    records = check_store(classifier, EpisodeStore(args.store))
    metrics = outcome_metrics([r["classifier"] for r in records], [r["stored"] for r in records])
    for r in records:
        if r["stored"] != r["classifier"]:
            print(f"episode {r['index']}: stored {'success' if r['stored'] else 'failure'}, classifier "
                  f"{'success at frame ' + str(r['decided_at']) if r['classifier'] else 'failure'} "
                  f"(highest probability {r['max_probability']})")
    print(json.dumps(metrics))
    if args.json:
        atomic_write(args.json, lambda f: f.write(json.dumps({"metrics": metrics, "episodes": records}, indent=1)),
                     mode="w")
    return 0
