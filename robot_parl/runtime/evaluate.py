"""`robot-parl eval`: evaluation rollouts of one or more policies on a robot side (sim or real).

Every policy under test runs in two modes: alone (one sample per step) and with critic selection (N
candidates scored and refined by the critic, as the actor acts). Modes are interleaved round by round
(the order rotates each round), so drift in the robot or the scene hits every mode alike. Success comes
from the robot side (simulators) or an operator's label on a real robot. Each episode is appended to
``episodes.jsonl`` as it ends, so an interrupted evaluation resumes where it stopped; ``results.json``
(success rates with Wilson 95% intervals, episode lengths) and ``report.html`` are rewritten at the end,
and every episode's camera frames are kept as MP4 files.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from robot_parl.data.episode_store import EpisodeStore
from robot_parl.data.video import write_mp4
from robot_parl.eval.report import write_report
from robot_parl.eval.stats import wilson_interval
from robot_parl.files import atomic_write
from robot_parl.models.encoders import robot_obs
from robot_parl.robots.remote import RemoteRobotEnv
from robot_parl.runtime.config import FinetuneConfig, build_agent
from robot_parl.transport.keys import KeySpace


def _check_checkpoint(name: str, path: str) -> None:
    if not path:
        return
    missing = [f for f in ("agent.safetensors", "policy.safetensors") if not (Path(path) / f).is_file()]
    if missing:
        raise FileNotFoundError(f"policy {name!r}: {path} is not a checkpoint directory (missing {missing}); give "
                                "a learner checkpoint such as runs/learner/checkpoints/update_00001000")


class Evaluation:
    """Rollouts of ``policies`` ({name: checkpoint directory, or "" for the policy as the config builds it})."""

    def __init__(self, cfg: FinetuneConfig, out: str | Path, policies: dict[str, str], critic: str, session,
                 episodes: int, log: Callable[[str], None] = print):
        if not policies:
            raise ValueError("name at least one policy to evaluate (--policy NAME=CHECKPOINT)")
        if episodes < 1:
            raise ValueError(f"episodes must be at least 1 per mode, got {episodes}")
        self.cfg, self.out, self.episodes, self.log = cfg, Path(out), episodes, log
        for name, path in {**policies, "critic": critic}.items():
            _check_checkpoint(name, path)
        if not critic:
            raise ValueError("the critic-selection modes need a critic checkpoint (--critic)")
        self.spec = cfg.spec()
        self.agents = {}
        for name, path in policies.items():  # loading checks architecture and action space before any rollout
            agent, self.actions = build_agent(cfg, self.spec, "actor")
            if path:
                agent.load_acting(path)
            agent.critic.load_state_dict(critic_state(critic))
            self.agents[name] = agent
        self.modes = [m for name in policies for m in (name, f"{name}+critic")]
        self.env = RemoteRobotEnv(session, KeySpace(cfg.link.session, cfg.link.robot), self.spec, timeout_s=60.0,
                                  horizon=cfg.actor.horizon)
        self.out.mkdir(parents=True, exist_ok=True)
        self.log_path = self.out / "episodes.jsonl"

    def done(self) -> list[dict]:
        """Episodes recorded so far (a line cut short by a crash is ignored and rerun)."""
        if not self.log_path.is_file():
            return []
        records = []
        for line in self.log_path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
        return records

    def _act(self, mode: str, obs: dict, instruction: str) -> np.ndarray:
        """The action in robot units: the policy's one sample, or the critic's choice (the actor's acting step,
        whether or not the critic has left probation: this is where it is judged)."""
        agent = self.agents[mode.removesuffix("+critic")]
        tobs = robot_obs({**obs, "instruction": instruction})
        action = agent.act(tobs, critic=True).actions if mode.endswith("+critic") else agent.policy_actions(tobs)
        return self.actions.to_robot(action[0].numpy())

    def _episode(self, round_index: int, mode: str) -> dict:
        obs, _ = self.env.reset()
        instruction = self.cfg.actor.instruction_for(round_index, obs.get("instruction", ""))
        frames = {name: [image] for name, image in obs.get("images", {}).items()}
        step_ms, success, labelled = [], False, False
        for _ in range(self.cfg.actor.horizon):
            started = time.perf_counter()
            action = self._act(mode, obs, instruction)
            step_ms.append((time.perf_counter() - started) * 1e3)
            obs, _, terminated, truncated, info = self.env.step(action)
            for name, image in obs.get("images", {}).items():
                frames[name].append(image)
            success, labelled = bool(info["success"]), bool(info["labelled"])
            if terminated or truncated:
                break
        self.env.hold()
        videos = {name: str(write_mp4(self.out / "videos" / mode / f"round{round_index:03d}_{name}.mp4",
                                      np.stack(images), fps=self.spec.control_rate_hz).relative_to(self.out))
                  for name, images in frames.items()}
        return {"round": round_index, "mode": mode, "success": success, "labelled": labelled, "length": len(step_ms),
                "step_ms": step_ms, "videos": videos}

    def run(self, journal: str | None = None) -> dict:
        """Run the missing episodes, then write results.json and report.html; returns the summary."""
        records = self.done()
        finished = {(r["round"], r["mode"]) for r in records}
        # drop a line cut short by a crash before appending after it
        atomic_write(self.log_path, lambda f: f.write("".join(json.dumps(r) + "\n" for r in records)), mode="w")
        if records:
            self.log(f"resuming: {len(records)} of {self.episodes * len(self.modes)} episodes already done")
        with open(self.log_path, "a") as log_file:
            for round_index in range(self.episodes):
                shift = round_index % len(self.modes)
                for mode in self.modes[shift:] + self.modes[:shift]:
                    if (round_index, mode) in finished:
                        continue
                    record = self._episode(round_index, mode)
                    log_file.write(json.dumps(record) + "\n")
                    log_file.flush()
                    os.fsync(log_file.fileno())
                    records.append(record)
                    self.log(f"round {round_index + 1}/{self.episodes} {mode}: "
                             f"{'success' if record['success'] else 'failure'} in {record['length']} steps")
        summary = summarize(records, self.modes)
        atomic_write(self.out / "results.json", lambda f: f.write(json.dumps(
            {"modes": summary, "episodes_per_mode": self.episodes, "robot": self.spec.name}, indent=1)), mode="w")
        write_report(self.out / "report.html", f"Evaluation on {self.spec.name}", summary, records,
                     journal_curve(journal) if journal else [], self._thumbnails(records))
        return summary

    def _thumbnails(self, records: list[dict]) -> dict[str, np.ndarray]:
        from robot_parl.data.video import read_mp4

        out = {}
        for mode in self.modes:
            last = [r for r in records if r["mode"] == mode][-1:]
            if last and last[0]["videos"]:
                out[mode] = read_mp4(self.out / next(iter(last[0]["videos"].values())))[-1]
        return out


def critic_state(directory: str) -> dict[str, torch.Tensor]:
    """The critic's weights in a learner checkpoint."""
    from robot_parl.tensor_tree import load_tree

    return load_tree(Path(directory) / "agent.safetensors")["critic"]


def summarize(records: list[dict], modes: list[str]) -> dict[str, dict]:
    """Per mode: episodes, successes, rate, Wilson 95% interval, mean episode length."""
    out = {}
    for mode in modes:
        rows = [r for r in records if r["mode"] == mode]
        successes = sum(r["success"] for r in rows)
        out[mode] = {"episodes": len(rows), "successes": successes,
                     "success_rate": successes / len(rows) if rows else 0.0,
                     "wilson95": list(wilson_interval(successes, len(rows))),
                     "mean_length": float(np.mean([r["length"] for r in rows])) if rows else 0.0}
    return out


def journal_curve(path: str, window: int = 10) -> list[tuple[int, float]]:
    """Success over a session's rollouts (an actor's journal or a learner's store), a moving mean."""
    outcomes = [e.success for e in EpisodeStore(path).episodes() if not e.partial]
    return [(i + 1, float(np.mean(outcomes[max(0, i + 1 - window): i + 1]))) for i in range(len(outcomes))]
