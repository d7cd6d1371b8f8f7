"""Two instructions in one session reach the VLA: the actor's task list picks one per episode, it is journaled with
the episode, and the model sees its prompt when acting and when the learner trains on the episode.

The robot side sends an instruction of its own, which the task list overrides. Expected token ids are written out
here from the offline tokenizer's rules (Llama's ids: BOS 1, "▁" 29871, byte fallback 3 + byte).
"""

import threading

import numpy as np
import pytest

from robot_parl import typed_config
from robot_parl.data.episode_store import EpisodeStore
from robot_parl.models.vla.checkpoint import tiny_config, write_random_checkpoint
from robot_parl.models.vla.model import OpenVLAModel
from robot_parl.models.vla.sampler import CandidateSampler
from robot_parl.rl.store_episodes import StoreFeed
from robot_parl.robots.side import RobotSide
from robot_parl.robots.sim.kinematic_arm import KinematicArm
from robot_parl.runtime.actor import Actor
from robot_parl.runtime.config import FinetuneConfig, build_agent
from robot_parl.transport.keys import KeySpace
from robot_parl.typed_config import ConfigError

TASKS = ["pick up the cube", "open the drawer"]


def expected_prompt(task: str) -> list[int]:
    text = f"In: What action should the robot take to {task}?\nOut:"
    return [1, 29871] + [29871 if c == " " else 3 + ord(c) for c in text] + [29871]


def test_two_instructions_reach_the_model_when_acting_and_training(zenoh_pair, tmp_path, monkeypatch, learner_link):
    robot_session, actor_session = zenoh_pair
    checkpoint = write_random_checkpoint(tmp_path / "vla", tiny_config(image_size=28), seed=0)
    cfg = typed_config.load(FinetuneConfig, "configs/finetune-tiny-vla.yaml", [
        "robot_spec=widowx", "robot_overrides=['cameras=[{name: front, width: 32, height: 24}]', 'control_rate_hz=20']",
        f"policy.vla.checkpoint={checkpoint}", "policy.vla.instruction=''", "link.session=tasks", "actor.horizon=3",
        f"actor.instructions={TASKS}", "actor.live_view=null", "parl.critic.batch_size=12"])
    spec = cfg.spec()
    side = RobotSide(KinematicArm(spec, seed=1), robot_session, KeySpace("tasks", "robot0"), synchronous=True,
                     instruction="the robot side's own task")
    stop = threading.Event()
    thread = threading.Thread(target=side.run, args=(stop,), daemon=True)
    thread.start()
    seen: list[list[int]] = []
    sample = CandidateSampler.sample

    def spy_sample(self, prompts, *args, **kwargs):
        seen.extend(list(p) for p in prompts)
        return sample(self, prompts, *args, **kwargs)

    monkeypatch.setattr(CandidateSampler, "sample", spy_sample)
    actor = Actor(cfg, tmp_path / "actor", actor_session, log=lambda line: None)
    publisher = learner_link(robot_session, "tasks")
    learner, action_space = build_agent(cfg, spec)
    try:
        assert publisher.weights.matched(10)
        publisher.publish("policy", "L", 0, learner.policy.sync_state())
        publisher.publish("critic", "L", 0, learner.critic.state_dict())
        actor.wait_for_weights(threading.Event())
        per_episode = []
        for _ in TASKS:
            seen.clear()
            actor.episode()
            per_episode.append({tuple(p) for p in seen})
        # no instruction from anywhere: the actor stops with one line naming where one can come from
        cfg.actor.instructions = []
        side.instruction = ""
        with pytest.raises(ConfigError, match="actor.instructions.*--instruction.*policy.vla.instruction"):
            actor.episode()
    finally:
        actor.close()
        stop.set()
        thread.join(10)
        side.close()
    # acting: every prompt of episode i is task i's, never the robot side's
    assert per_episode == [{tuple(expected_prompt(task))} for task in TASKS]

    # training: the journaled episodes carry their instructions into replay and into the distillation loss
    journal = EpisodeStore(tmp_path / "actor" / "journal" / "episodes")
    assert [e.instruction for e in journal.episodes()] == TASKS
    for episode, online in StoreFeed(journal, list(spec.observation_keys()), action_space).new_episodes():
        learner.add_episode(episode, online)
    trained: list[list[int]] = []
    embed = OpenVLAModel.embed

    def spy_embed(self, input_ids, *args, **kwargs):
        trained.extend(row.tolist() for row in input_ids)
        return embed(self, input_ids, *args, **kwargs)

    monkeypatch.setattr(OpenVLAModel, "embed", spy_embed)
    learner.start_online()
    learner.distill_update()
    prefixes = {tuple(row[:len(expected_prompt(task))]) for row in trained for task in TASKS
                if row[:len(expected_prompt(task))] == expected_prompt(task)}
    assert prefixes == {tuple(expected_prompt(task)) for task in TASKS}
    assert len(trained) == 12 and np.all([row[0] == 1 for row in trained])
