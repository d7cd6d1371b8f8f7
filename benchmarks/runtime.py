"""The asynchronous runtime, measured in one run on this machine:

- weight sync: a learner-side publish (safetensors, sha256-checked chunks) until the actor has the
  payload verified, parsed and copied into its live tensors, for the tiny VLA's LoRA adapter and for a
  209 MiB adapter (a 7B OpenVLA's rank-32 LoRA in bf16: 109,563,904 parameters), over loopback zenoh
  between two sessions of this process (benchmarks.protocol measures raw transfers between processes);
- the actor's step breakdown at N = 8 with the tiny VLA (sample, encode, optimize), in ms;
- learner updates/s with the tiny VLA (critic, distillation);
- the share of wall-clock the robot spent waiting on the learner: the same short session on a real-time
  simulated robot (10 Hz) twice, asynchronous (the actor never waits) and lock-step (after each episode
  the robot waits until the learner has done its updates for the data so far, as in the paper's release).

    python -m benchmarks.runtime --json out.json [--episodes 4]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from robot_parl import typed_config
from robot_parl.files import atomic_write
from robot_parl.models.vla.checkpoint import write_random_checkpoint
from robot_parl.rl.replay import Episode
from robot_parl.runtime.actor import Actor
from robot_parl.runtime.config import FinetuneConfig, build_agent
from robot_parl.runtime.supervisor import ENTRY
from robot_parl.runtime.weights import WeightInbox, WeightPublisher, Weights
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.session import TransportConfig, free_loopback_endpoint, open_session

CONFIG = "configs/finetune-tiny-vla.yaml"
CAMERA = "cameras=[{name: front, width: 64, height: 64}]"
LORA_7B_PARAMS = 109_563_904


def _config(checkpoint: Path, *overrides: str) -> FinetuneConfig:
    return typed_config.load(FinetuneConfig, CONFIG, [f"robot_overrides=['{CAMERA}']",
                                                      f"policy.vla.checkpoint={checkpoint}", *overrides])


def weight_sync(state: dict[str, torch.Tensor], repeats: int) -> dict:
    endpoint = free_loopback_endpoint()
    learner, actor = open_session(TransportConfig(listen=[endpoint], connect=[])), \
        open_session(TransportConfig(connect=[endpoint]))
    keys = KeySpace("bench", "learner")
    publisher, inbox = WeightPublisher(learner, keys), WeightInbox(actor, keys)
    live = {k: torch.zeros_like(v) for k, v in state.items()}
    time.sleep(0.5)
    times = []
    for version in range(repeats):
        started = time.perf_counter()
        size = publisher.publish(Weights("policy", "bench", version, state))
        while not (got := inbox.take()):
            time.sleep(0.0005)
        with torch.no_grad():
            for k, v in live.items():
                v.copy_(got[0].state[k])
        times.append(time.perf_counter() - started)
    publisher.close()
    inbox.close()
    actor.close()
    learner.close()
    assert all(torch.equal(live[k], state[k]) for k in state)
    return {"bytes": size, "tensors": len(state), "ms_median": float(np.median(times) * 1e3),
            "ms_min": float(np.min(times) * 1e3), "refused": inbox.refused}


def adapter_7b() -> dict[str, torch.Tensor]:
    """Random bf16 tensors totalling a 7B OpenVLA's rank-32 LoRA (A: 32 x 4096 and B: 4096 x 32 pairs)."""
    pairs = LORA_7B_PARAMS // (2 * 32 * 4096)
    state = {}
    for i in range(pairs):
        state[f"layer{i}.lora_A.weight"] = torch.randn(32, 4096, dtype=torch.bfloat16)
        state[f"layer{i}.lora_B.weight"] = torch.randn(4096, 32, dtype=torch.bfloat16)
    rest = LORA_7B_PARAMS - pairs * 2 * 32 * 4096
    state["rest.lora_A.weight"] = torch.randn(rest, dtype=torch.bfloat16)
    return state


def actor_step(cfg: FinetuneConfig, out: Path, steps: int) -> dict:
    session = open_session(TransportConfig(listen=[free_loopback_endpoint()], connect=[]))
    actor = Actor(cfg, out / "actor_step", session)
    rng = np.random.default_rng(0)
    obs = {"images": {"front": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)},
           "proprio": np.zeros(4, np.float32)}
    actor.decide(obs)
    parts = {"sample": [], "encode": [], "optimize": []}
    for _ in range(steps):
        actor.decide(obs)
        for k in parts:
            parts[k].append(actor.latency_ms[k])
    actor.close()
    session.close()
    out = {k: float(np.median(v)) for k, v in parts.items()}
    out["total"] = sum(out.values())
    out["num_samples"] = actor.agent.cfg.num_samples
    return out


def learner_rates(cfg: FinetuneConfig, updates: int) -> dict:
    agent, _ = build_agent(cfg, cfg.spec())
    rng = np.random.default_rng(0)
    for _ in range(4):
        obs = {"images": {"front": torch.from_numpy(rng.integers(0, 256, (21, 64, 64, 3), dtype=np.uint8))},
               "proprio": torch.zeros(21, 4)}
        agent.add_episode(Episode(obs, torch.rand(20, 7) * 2 - 1, -torch.ones(20), False,
                                  agent.sample_candidates(obs)), True)
    agent.start_online()
    agent.critic_update()
    agent.distill_update()
    started = time.perf_counter()
    for _ in range(updates):
        agent.critic_update()
    critic = updates / (time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(max(updates // 4, 1)):
        agent.distill_update()
    distill = max(updates // 4, 1) / (time.perf_counter() - started)
    return {"critic_updates_per_s": critic, "distill_updates_per_s": distill,
            "critic_batch": agent.cfg.critic.batch_size}


def waiting_share(checkpoint: Path, out: Path, episodes: int, lock_step: bool) -> dict:
    robot_ep, learner_ep = free_loopback_endpoint(), free_loopback_endpoint()
    name = "lockstep" if lock_step else "async"
    overrides = [f"link.session={name}", f"link.robot_endpoint={robot_ep}", f"link.learner_endpoint={learner_ep}",
                 f"actor.episodes={episodes}", "actor.horizon=20",
                 "parl.schedule.critic_utd=1.0", "actor.max_pause_s=300",
                 f"parl.schedule.min_critic_utd={1.0 if lock_step else 0.0}"]
    cfg = _config(checkpoint, *overrides)
    config_file = out / f"{name}.yaml"
    typed_config.save(cfg, config_file)
    logs = [open(out / f"{name}_{p}.log", "w") for p in ("robot", "learner")]  # noqa: SIM115
    robot = subprocess.Popen([sys.executable, "-c", ENTRY, "robot", "--sim", "pick", "--listen", robot_ep,
                              "--session", name, "--robot", "robot0", CAMERA, "control_rate_hz=10"],
                             stdout=logs[0], stderr=subprocess.STDOUT)
    learner = subprocess.Popen([sys.executable, "-c", ENTRY, "learner", "--config", str(config_file),
                                "--out", str(out / f"{name}_learner")], stdout=logs[1], stderr=subprocess.STDOUT)
    session = open_session(TransportConfig(connect=[robot_ep, learner_ep]))
    actor = Actor(cfg, out / f"{name}_actor", session, log=lambda line: None)
    try:
        actor.wait_for_weights(threading.Event())
        started = time.monotonic()
        summary = actor.run()
        wall = time.monotonic() - started
    finally:
        actor.close()
        session.close()
        for proc in (learner, robot):
            proc.terminate()
            proc.wait(timeout=60)
    waited = summary["counters"].get("waited_for_learner_ms", 0) / 1e3
    acting = episodes * cfg.actor.horizon / 10.0
    return {"wall_s": wall, "acting_s_at_10hz": acting, "waited_for_learner_s": waited,
            "waiting_share": waited / wall, "policy_version": summary["versions"]["policy"],
            "critic_version": summary["versions"]["critic"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", required=True)
    parser.add_argument("--episodes", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        checkpoint = write_random_checkpoint(out / "vla", seed=0)
        cfg = _config(checkpoint)
        tiny = build_agent(cfg, cfg.spec())[0].policy.sync_state()
        results = {
            "benchmark": "runtime", "torch_threads": 1,
            "weight_sync": {"tiny_vla_adapter": weight_sync(tiny, 20),
                            "lora_7b_r32_bf16": weight_sync(adapter_7b(), 3)},
            "actor_step_ms_tiny_vla": actor_step(cfg, out, 30),
            "learner_tiny_vla": learner_rates(cfg, 20),
        }
        async_run = waiting_share(checkpoint, out, args.episodes, lock_step=False)
        lock_step = waiting_share(checkpoint, out, args.episodes, lock_step=True)
        results["robot_waiting"] = {"async": async_run, "lock_step": lock_step,
                                    "wall_ratio_lock_step_to_async": lock_step["wall_s"] / async_run["wall_s"]}
    atomic_write(args.json, lambda f: f.write(json.dumps(results, indent=1)), mode="w")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
