"""The learner watches a trusted critic (rl/trust.py) on the episodes its actors send: when the watch's controls (the
policy alone) do better than the critic's choices, it says so and sends the critic, flag off, at once."""

import time

import numpy as np

from robot_parl import typed_config
from robot_parl.rl.trust import probation_arm, watch_control
from robot_parl.runtime.config import FinetuneConfig
from robot_parl.runtime.learner import Learner
from robot_parl.transport.channel import Publisher
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.messages import Step
from robot_parl.transport.session import TransportConfig, free_loopback_endpoint, open_session

N = 4
CONFIG = ["robot_overrides=['cameras=[{name: front, width: 32, height: 32}]']", "policy.kind=gaussian",
          "policy.gaussian.hidden_dims=[16]", f"parl.num_samples={N}", "parl.top_k=2", "parl.trust_min_z=2",
          "parl.schedule.offline_steps=0", "link.session=watch"]


def _episode(episode_id: str, success: bool, steps: int = 3) -> list[Step]:
    def step(index: int, **fields) -> Step:
        return Step(actor="actor0", episode_id=episode_id, index=index, stamp_ns=1_000_000 * (index + 1),
                    images={"front": np.zeros((32, 32, 3), np.uint8)}, proprio=np.zeros(4, np.float32),
                    action=np.zeros(7, np.float32), candidates=np.zeros((N, 7), np.float32), robot="robot0", **fields)

    rewards = [-1.0] * (steps - 1) + [0.0 if success else -1.0]
    return [step(i, reward=r) for i, r in enumerate(rewards)] + [step(steps, final=True, success=success)]


def test_the_learner_takes_back_the_trust_of_a_critic_its_controls_beat_and_sends_it_at_once(tmp_path):
    cfg = typed_config.load(FinetuneConfig, "configs/finetune-tiny-vla.yaml", CONFIG)
    session = open_session(TransportConfig(listen=[free_loopback_endpoint()], connect=[]))
    lines: list[str] = []
    learner = Learner(cfg, tmp_path / "learner", session, log=lines.append)
    try:
        agent = learner.agent
        agent.start_online()
        agent.critic.trusted.fill_(1.0)  # as after a passed trust test
        steps = Publisher(session, KeySpace("watch", "robot0").step, block=True)
        assert steps.matched(30)
        published = learner.counters["critic_published"]
        # the critic's choices fail, the policy alone succeeds; ids the watch does not count act alike
        for i in range(200):
            episode_id = f"ep-{i}"
            for step in _episode(episode_id, success=watch_control(episode_id, 0.125)):
                steps.put(step)
            deadline = time.monotonic() + 10
            while agent.counters["online_episodes"] < i + 1:
                assert time.monotonic() < deadline, f"episode {episode_id} was not committed"
                learner.pump()
                learner.ingest()
                time.sleep(0.001)
            if not agent.trusted:
                break
        assert not agent.trusted and agent.counters["trust_revoked"] == 1
        controls = [j for j in range(i + 1) if watch_control(f"ep-{j}", 0.125)]
        assert len(controls) == 8  # decided on the first quarter window of controls
        assert len(agent.watch_critic) == sum(probation_arm(f"ep-{j}") for j in range(i + 1))
        assert learner.counters["critic_published"] == published + 1
        assert any(line.startswith(f"critic back on probation after {i + 1} online episodes") for line in lines)
    finally:
        learner.close()
        session.close()
