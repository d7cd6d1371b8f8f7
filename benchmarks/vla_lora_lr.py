"""The VLA's LoRA learning rate for distillation, measured on the tiny VLA (loss and token accuracy vs steps).

What PA-RL asks of the adapter: move a policy that already acts (a pretrained VLA) towards the critic's refined
actions, which sit near its own. Here a tiny VLA (OpenVLA's architecture and token ids, 28 px images, LoRA r=32
alpha=16 as on the 7B card) is first behaviour-cloned (lr 2e-3, fixed, 300 steps) on 64 states of the kinematic
arm, acting towards the goal it sees; that adapter is the "pretrained policy". Then, for each learning rate, from
that adapter with a fresh AdamW (batch 16, as the 7B memory plan), distillation towards refined targets: the
BC actions shifted by +0.15 on x (19 bins, in normalized space). Every 25 steps: the distillation loss, and
how far the greedy tokens are from the targets' (mean distance in bins, and exact-token accuracy) on the 64
training states and on 64 held-out states, for x (what moved) and for the other six dimensions (what must
not move).

    python -m benchmarks.vla_lora_lr --json benchmarks/results/vla_lora_lr.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from robot_parl.files import atomic_write
from robot_parl.models.vla.card import LoRASettings, SamplerConfig, VLACard
from robot_parl.models.vla.checkpoint import tiny_config, write_random_checkpoint
from robot_parl.models.vla.policy import VLAPolicy
from robot_parl.robots.sim.kinematic_arm import KinematicArm
from robot_parl.robots.spec import load_spec

LRS = (2e-5, 1e-4, 5e-4, 1e-3, 2e-3)
SHIFT = 0.15
INSTRUCTION = "move to the green marker"


def states(count: int, seed: int) -> tuple[dict, torch.Tensor]:
    """Kinematic-arm frames and the action towards the goal each shows (within [-0.8, 0.8]; gripper open)."""
    spec = load_spec("widowx", ["cameras=[{name: front, width: 28, height: 28}]"])
    arm = KinematicArm(spec, seed=seed)
    images, actions = [], []
    for _ in range(count):
        arm.reset()
        images.append(arm.read().images["front"])
        actions.append(np.r_[np.clip((arm.goal - arm.pos) / 0.3, -0.8, 0.8), np.zeros(3), 1.0])
    obs = {"images": {"front": torch.from_numpy(np.stack(images))}, "instruction": [INSTRUCTION] * count}
    return obs, torch.tensor(np.array(actions), dtype=torch.float32)


def _rows(obs: dict, idx: torch.Tensor) -> dict:
    return {"images": {"front": obs["images"]["front"][idx]}, "instruction": [INSTRUCTION] * len(idx)}


@torch.no_grad()
def evaluate(policy: VLAPolicy, obs: dict, targets: torch.Tensor) -> dict:
    """Loss, greedy token accuracy and mean distance in bins (x, and the other dimensions) against ``targets``."""
    policy.model.eval()
    loss = policy.loss(obs, targets).item()
    greedy = policy.sample_with_info(obs, 1, sampler=SamplerConfig(temperature=0.0)).token_ids[:, 0].cpu().numpy()
    wanted = policy.action_tokens.encode(targets.numpy())
    hit, bins = greedy == wanted, np.abs(greedy - wanted)
    return {"loss": loss, "x_token_accuracy": float(hit[:, 0].mean()), "other_token_accuracy": float(hit[:, 1:].mean()),
            "x_bins_off": float(bins[:, 0].mean()), "other_bins_off": float(bins[:, 1:].mean())}


def run(steps: int, seed: int) -> dict:
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = write_random_checkpoint(Path(tmp) / "vla", tiny_config(image_size=28), seed=seed)
        card = VLACard(checkpoint=str(checkpoint), dtype="float32", lora=LoRASettings(r=32, alpha=16),
                       instruction=INSTRUCTION, lr=2e-3)
        policy = VLAPolicy.from_card(card)
        train, bc_targets = states(64, seed)
        held, held_bc = states(64, seed + 1000)
        g = torch.Generator().manual_seed(seed)
        for _ in range(300):  # the "pretrained" policy
            idx = torch.randint(0, 64, (16,), generator=g)
            policy.sl_update(_rows(train, idx), bc_targets[idx])
        pretrained = policy.sync_state()
        shift = torch.tensor([SHIFT] + [0.0] * 6)
        targets, held_targets = (bc_targets + shift).clamp(-1, 1), (held_bc + shift).clamp(-1, 1)
        out = {"bc": {"train": evaluate(policy, train, bc_targets), "held_out": evaluate(policy, held, held_bc)},
               "runs": []}
        for lr in LRS:
            policy.load_sync_state(pretrained)
            policy.optimizer = torch.optim.AdamW(list(policy._trainable().values()), lr=lr)
            g = torch.Generator().manual_seed(seed + 1)
            curve = [{"step": 0, "train": evaluate(policy, train, targets),
                      "held_out": evaluate(policy, held, held_targets)}]
            started = time.perf_counter()
            for step in range(1, steps + 1):
                idx = torch.randint(0, 64, (16,), generator=g)
                policy.sl_update(_rows(train, idx), targets[idx])
                if step % 25 == 0:
                    curve.append({"step": step, "train": evaluate(policy, train, targets),
                                  "held_out": evaluate(policy, held, held_targets)})
            last = curve[-1]
            first, tr, ho = curve[0]["train"], last["train"], last["held_out"]
            print(f"lr {lr:.0e}: loss {first['loss']:.3f} -> {tr['loss']:.3f}; x bins off "
                  f"{first['x_bins_off']:.1f} -> {tr['x_bins_off']:.1f} (held out {ho['x_bins_off']:.1f}); other bins "
                  f"off {first['other_bins_off']:.1f} -> {tr['other_bins_off']:.1f} (held out "
                  f"{ho['other_bins_off']:.1f}) ({time.perf_counter() - started:.0f} s)", flush=True)
            out["runs"].append({"lr": lr, "curve": curve})
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result = {"benchmark": "vla_lora_lr", "torch_threads": 1, "shift": SHIFT, "steps": args.steps,
              "lora": {"r": 32, "alpha": 16}, "batch": 16, **run(args.steps, args.seed)}
    if args.json:
        atomic_write(args.json, lambda f: f.write(json.dumps(result, indent=1)), mode="w")
    return result


if __name__ == "__main__":
    main()
