"""OpenVLA-7B on one GPU with random weights: the actor's step, a distillation step and an adapter swap.

The model is OpenVLA-7B's architecture (Llama-2 7B, DINOv2 ViT-L/14 + SigLIP So400m/14 at 224 px, the fused-GELU
projector; ``openvla_7b_config``) written as a random bf16 checkpoint in the release's layout and loaded through
the path a session takes (``VLAPolicy.from_checkpoint``: bf16, or 4-bit NF4 decoder layers). Nothing is
downloaded. It measures, with the device named in the JSON:

- actor: at N = 8, our sampler (p50/p99 over ``--steps`` steps) against transformers' ``generate()`` for the same
  N candidates, and the whole acting step (``ParlAgent.act``: sample, encode, optimize_actions with the
  session's image critic), in bf16 and in 4-bit, with the peak memory of each copy;
- learner: one distillation (LoRA r = 32) step at batch 16 with gradient checkpointing on a 4-bit base, whole
  and in micro-batches of 4: time and peak memory;
- sync: the learner's adapter packed as a weights transfer, unpacked and swapped into the actor (in process; the
  loopback transfer of an adapter of this size is in benchmarks/results/runtime.json);
- shared: the actor's step alone, then while a learner process runs distillation steps on the same device.
Goals on one H100: actor step at N = 8 <= 50 ms in bf16 and <= 100 ms in 4-bit; actor + learner peak <= 40 GB.

    python -m benchmarks.vla_gpu --json benchmarks/results/vla_gpu.json              # 7B, on cuda
    python -m benchmarks.vla_gpu --size tiny --device cpu --steps 3 --json out.json   # the CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.vla_sampling import INSTRUCTION, PeakMemory, _generate_baseline, _timed
from robot_parl.files import atomic_write
from robot_parl.models.base import ObsSpec
from robot_parl.models.vla.card import LoRASettings, VLACard
from robot_parl.models.vla.checkpoint import openvla_7b_config, tiny_config, write_random_checkpoint
from robot_parl.models.vla.policy import VLAPolicy
from robot_parl.rl.agent import ParlAgent
from robot_parl.rl.config import ParlConfig
from robot_parl.rl.critic import QEnsemble
from robot_parl.runtime.weights import Weights, pack, unpack

N = 8
DISTILL_BATCH = 16
SIZES = {"7b": openvla_7b_config, "tiny": tiny_config}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _percentiles(fn, steps: int, device: torch.device) -> dict:
    fn()  # warm-up
    times = []
    for _ in range(steps):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return {"p50_ms": round(float(np.percentile(times, 50)), 2), "p99_ms": round(float(np.percentile(times, 99)), 2)}


def _obs(batch: int) -> dict:
    images = np.random.default_rng(0).integers(0, 256, (batch, 256, 256, 3), dtype=np.uint8)
    return {"images": {"front": torch.from_numpy(images)}, "proprio": torch.zeros(batch, 7),
            "instruction": [INSTRUCTION] * batch}


def _load(checkpoint: Path, quantization: str, device: str, dtype: str) -> tuple[VLAPolicy, float, float]:
    card = VLACard(checkpoint=str(checkpoint), dtype=dtype, quantization=quantization, device=device,
                   lora=LoRASettings(r=32, alpha=16), gradient_checkpointing=True)
    dev = torch.device(device)
    start = time.perf_counter()
    with PeakMemory(dev) as mem:
        policy = VLAPolicy.from_card(card)
    return policy, time.perf_counter() - start, mem.peak_mb


def _agent(policy: VLAPolicy, device: str) -> ParlAgent:
    parl = ParlConfig(num_samples=N, top_k=4)  # the card's N and k; the critic is the session default's
    critic = QEnsemble(ObsSpec(proprio_dim=7, cameras=("front",)), 7, parl.critic)
    return ParlAgent(policy, critic, parl, -torch.ones(7), torch.ones(7), device=device)


def actor(checkpoint: Path, quantization: str, device: str, dtype: str, steps: int) -> dict:
    """Sampler, generate() and the whole acting step at N = 8 for one precision."""
    policy, load_s, weights_mb = _load(checkpoint, quantization, device, dtype)
    dev = policy.device
    obs = _obs(1)
    agent = _agent(policy, device)
    sampler = _percentiles(lambda: policy.sample_with_info(obs, N), steps, dev)
    generate_ms, _ = _timed(lambda: _generate_baseline(policy, obs, N), max(steps // 5, 1), dev)
    with PeakMemory(dev) as mem:
        step = _percentiles(lambda: agent.act(obs), steps, dev)
    out = {"quantization": quantization, "load_s": round(load_s, 1), "weights_mb": round(weights_mb),
           "sampler_n8": sampler, "generate_n8_ms": round(generate_ms, 1),
           "sampler_speedup": round(generate_ms / sampler["p50_ms"], 1), "actor_step_n8": step,
           "actor_step_peak_mb_above_weights": round(mem.peak_mb)}
    print(json.dumps(out), flush=True)
    return out


def learner(checkpoint: Path, device: str, dtype: str, steps: int) -> dict:
    """One distillation step at batch 16 on a 4-bit base with checkpointing, whole and in micro-batches of 4;
    then the adapter's trip to an actor copy."""
    quantization = "4bit" if device.startswith("cuda") else "none"  # bitsandbytes' 4-bit layers need CUDA
    policy, _, weights_mb = _load(checkpoint, quantization, device, dtype)
    dev = policy.device
    obs = _obs(DISTILL_BATCH)
    targets = torch.rand(DISTILL_BATCH, 7, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = {"quantization": quantization, "weights_mb": round(weights_mb), "batch": DISTILL_BATCH,
           "gradient_checkpointing": True}
    for micro in (0, 4):
        with PeakMemory(dev) as mem:
            timing = _percentiles(lambda micro=micro: policy.sl_update(obs, targets, micro), max(steps // 10, 2),
                                  dev)
        out[f"distill_micro_{micro or DISTILL_BATCH}"] = timing | {"peak_mb_above_weights": round(mem.peak_mb)}
    adapter = policy.sync_state()
    out["adapter_parameters"] = sum(t.numel() for t in adapter.values())
    actor_copy, _, _ = _load(checkpoint, quantization, device, dtype)
    start = time.perf_counter()
    payload = pack(Weights("policy", "bench", 1, adapter))
    packed = time.perf_counter()
    received = unpack("policy-bench-1", payload)
    unpacked = time.perf_counter()
    actor_copy.load_sync_state(received.state)
    _sync(dev)
    swapped = time.perf_counter()
    out["sync"] = {"bytes": len(payload), "pack_ms": round((packed - start) * 1e3, 1),
                   "unpack_ms": round((unpacked - packed) * 1e3, 1), "swap_ms": round((swapped - unpacked) * 1e3, 1)}
    print(json.dumps(out), flush=True)
    return out


def train_forever(checkpoint: Path, device: str, dtype: str) -> None:
    """A learner's distillation steps (batch 16, checkpointing) in a loop until killed; says when it trains."""
    policy, _, _ = _load(checkpoint, "4bit" if device.startswith("cuda") else "none", device, dtype)
    obs, targets = _obs(DISTILL_BATCH), torch.rand(DISTILL_BATCH, 7) * 2 - 1
    policy.sl_update(obs, targets)
    print("training", flush=True)
    while True:
        policy.sl_update(obs, targets)


def shared(checkpoint: Path, device: str, dtype: str, steps: int) -> dict:
    """The actor's step at N = 8 alone, then while a learner process trains on the same device (the session's
    one-GPU layout): how much the learner slows the robot's decisions."""
    import subprocess
    import sys

    quantization = "4bit" if device.startswith("cuda") else "none"
    policy, _, _ = _load(checkpoint, quantization, device, dtype)
    agent, obs = _agent(policy, device), _obs(1)
    alone = _percentiles(lambda: agent.act(obs), steps, policy.device)
    learner = subprocess.Popen([sys.executable, "-m", "benchmarks.vla_gpu", "--train-forever", str(checkpoint),
                                "--device", device], stdout=subprocess.PIPE, text=True)
    try:
        if "training" not in learner.stdout.readline():
            raise RuntimeError("the learner process did not start training")
        together = _percentiles(lambda: agent.act(obs), steps, policy.device)
    finally:
        learner.kill()
        learner.wait()
    out = {"quantization": quantization, "actor_step_alone": alone, "actor_step_with_learner": together,
           "slowdown_p50": round(together["p50_ms"] / alone["p50_ms"], 2)}
    print(json.dumps(out), flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--size", choices=list(SIZES), default="7b")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=50, help="timed acting steps per precision")
    parser.add_argument("--parts", nargs="+", choices=["actor", "learner", "shared"],
                        default=["actor", "learner", "shared"])
    parser.add_argument("--train-forever", type=Path, help=argparse.SUPPRESS)  # the learner process of "shared"
    parser.add_argument("--workdir", type=Path, help="where the random checkpoint goes (default: a temp dir)")
    args = parser.parse_args(argv)
    dtype = "bfloat16" if args.device.startswith("cuda") else "float32"
    if args.train_forever:
        train_forever(args.train_forever, args.device, dtype)
    precisions = ["none", "4bit"] if args.device.startswith("cuda") else ["none"]
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        start = time.perf_counter()
        checkpoint = write_random_checkpoint(Path(tmp) / args.size, SIZES[args.size](), seed=0,
                                             dtype=getattr(torch, dtype))
        result = {"size": args.size, "device": args.device,
                  "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
                  "dtype": dtype, "torch": torch.__version__, "n": N,
                  "checkpoint_write_s": round(time.perf_counter() - start, 1)}
        if "actor" in args.parts:
            result["actor"] = [actor(checkpoint, q, args.device, dtype, args.steps) for q in precisions]
        if "learner" in args.parts:
            result["learner"] = learner(checkpoint, args.device, dtype, args.steps)
        if "shared" in args.parts:
            result["shared"] = shared(checkpoint, args.device, dtype, args.steps)
    if args.json:
        atomic_write(args.json, lambda f: f.write(json.dumps(result, indent=2)), mode="w")
    return result


if __name__ == "__main__":
    main()
