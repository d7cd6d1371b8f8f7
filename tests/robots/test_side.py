import threading
import time

import numpy as np
import pytest

from robot_parl.robots.side import RobotSide, SensorFrame
from robot_parl.robots.spec import load_spec
from robot_parl.transport.channel import Inbox, Publisher, subscribe
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.messages import Action, Control, Observation, Status


class PointArm:
    """A synthetic adapter: an end effector that integrates the commands it is given."""

    def __init__(self, rate_hz: float):
        self.spec = load_spec("widowx", [f"control_rate_hz={rate_hz}"])
        self.pos = np.array(self.spec.home_pose[:3])
        self.applied: list[np.ndarray] = []
        self.holds = 0
        self.resets = 0

    def read(self):
        return SensorFrame(time.monotonic_ns(), self.pos.astype(np.float32),
                           {"front": np.zeros((8, 8, 3), np.uint8)}, ee_pose=np.r_[self.pos, 0, 0, 0, 1])

    def apply(self, values):
        assert np.isfinite(values).all()
        self.applied.append(values)
        self.pos = self.pos + values[:3]

    def hold(self):
        self.holds += 1

    def reset(self):
        self.resets += 1
        self.pos = np.array(self.spec.home_pose[:3])


class Actor:
    """Answers every observation with ``respond(obs) -> (delay_s, Action | None)``."""

    def __init__(self, session, keys, respond):
        self.pub = Publisher(session, keys.action, block=True)
        self.control = Publisher(session, keys.control, block=True)
        self.status = Inbox(Status)
        self.respond = respond
        self.seen = 0
        self._subs = [subscribe(session, keys.obs, Inbox(Observation, on_message=self._on_obs)),
                      subscribe(session, keys.status, self.status)]

    def _on_obs(self, obs):
        self.seen += 1
        delay, action = self.respond(obs)
        if action is not None:
            if delay:
                time.sleep(delay)
            self.pub.put(action)

    def close(self):
        for s in self._subs:
            s.undeclare()


def _act(seq, x=0.01, **kw):
    return Action(seq=seq, values=np.array([x, 0, 0, 0, 0, 0, 1], np.float32), **kw)


@pytest.fixture
def rig(zenoh_pair, wait_for):
    robot_session, actor_session = zenoh_pair
    keys = KeySpace("test", "arm")
    made = []

    def make(respond, synchronous=False, rate_hz=5.0):
        # 5 Hz leaves a 180 ms deadline: on-time answers stay on time on a loaded CI machine
        arm = PointArm(rate_hz)
        side = RobotSide(arm, robot_session, keys, synchronous=synchronous, status_every=5, sync_timeout_s=5.0)
        actor = Actor(actor_session, keys, respond)
        made.append((side, actor))
        wait_for(lambda: False, 0.3)
        return arm, side, actor

    yield make
    for side, actor in made:
        side.close()
        actor.close()


def _start(side, actor, wait_for):
    actor.control.put(Control("start", episode_id="ep1"))
    assert wait_for(lambda: side.controls.received == 1, 5)


def test_timely_actions_are_applied_in_order(rig, wait_for):
    arm, side, actor = rig(lambda obs: (0.0, _act(obs.seq)))
    _start(side, actor, wait_for)
    side.run(max_ticks=16)
    assert side.running and side.episode_id == "ep1"
    assert len(arm.applied) == 16 and side.safety.counters["missed_deadline"] == 0
    # 16 steps of +1 cm from x = 0.30 would leave the workspace box at x = 0.45
    assert arm.pos[0] == pytest.approx(0.45, abs=1e-5)
    assert side.safety.counters["workspace_limited"] >= 1


def test_late_actions_hold_and_count_a_miss_and_stale_ones_are_dropped(rig, wait_for):
    # the deadline at 20 Hz is 45 ms; every third answer comes 80 ms late
    arm, side, actor = rig(lambda obs: (0.08 if obs.seq % 3 == 0 else 0.0, _act(obs.seq)), rate_hz=20.0)
    _start(side, actor, wait_for)
    side.run(max_ticks=15)
    misses = side.safety.counters["missed_deadline"]
    assert misses >= 4 and len(arm.applied) == 15 - misses
    assert arm.holds >= misses
    assert wait_for(lambda: side.actions.received >= 15, 2)
    side.run(max_ticks=1)  # late answers to old observations are now stale
    assert side.counters["stale_dropped"] >= 4


def test_nan_actions_never_reach_the_adapter(rig, wait_for):
    arm, side, actor = rig(lambda obs: (0.0, _act(obs.seq, x=np.nan if obs.seq % 2 else 0.01)))
    _start(side, actor, wait_for)
    side.run(max_ticks=10)
    assert len(arm.applied) == 5 and all(np.isfinite(a).all() for a in arm.applied)
    assert side.safety.counters["nonfinite_rejected"] == 5


def test_estop_latch_holds_until_cleared_and_status_reports_it(rig, wait_for):
    arm, side, actor = rig(lambda obs: (0.0, _act(obs.seq, policy_version=3, critic_version=2)))
    _start(side, actor, wait_for)
    side.run(max_ticks=3)
    actor.control.put(Control("estop"))
    actor.control.put(Control("start"))  # a start does not clear an e-stop
    assert wait_for(lambda: side.controls.received == 3, 5)
    side.run(max_ticks=10)
    assert len(arm.applied) == 3 and side.safety.estopped
    assert wait_for(lambda: any(s.estop and s.versions == {"policy": 3, "critic": 2}
                                for s in actor.status.drain()), 5)
    actor.control.put(Control("clear_estop"))
    assert wait_for(lambda: side.controls.received == 4, 5)
    side.run(max_ticks=4)
    assert len(arm.applied) == 7 and not side.safety.estopped


def test_an_estop_in_a_flood_of_controls_is_never_dropped(rig, wait_for):
    arm, side, actor = rig(lambda obs: (0.0, _act(obs.seq)))
    _start(side, actor, wait_for)
    side.run(max_ticks=2)
    actor.control.put(Control("estop"))
    for _ in range(600):  # more than the control queue holds, within one tick
        actor.control.put(Control("label", value=True))
    assert wait_for(lambda: side.controls.received == 602, 10)
    side.run(max_ticks=3)
    assert side.safety.estopped and len(arm.applied) == 2
    assert side.all_counters()["controls_dropped"] == 601 - 256  # the overflow is counted, not silent


def test_synchronous_mode_waits_for_each_action(rig, wait_for):
    arm, side, actor = rig(lambda obs: (0.15, _act(obs.seq)), synchronous=True)
    _start(side, actor, wait_for)
    side.run(max_ticks=5)
    assert len(arm.applied) == 5 and side.safety.counters["missed_deadline"] == 0


def test_reset_goes_home_and_stop_holds(rig, wait_for):
    arm, side, actor = rig(lambda obs: (0.0, _act(obs.seq)))
    _start(side, actor, wait_for)
    side.run(max_ticks=5)
    actor.control.put(Control("reset"))
    assert wait_for(lambda: side.controls.received == 2, 5)
    side.run(max_ticks=3)
    assert arm.resets == 1 and not side.running and len(arm.applied) == 5
    assert arm.pos[0] == pytest.approx(arm.spec.home_pose[0])


def test_run_stops_on_event_within_a_tick(rig, wait_for):
    arm, side, actor = rig(lambda obs: (0.0, _act(obs.seq)))
    stop = threading.Event()
    thread = threading.Thread(target=side.run, kwargs={"stop": stop})
    thread.start()
    assert wait_for(lambda: side.seq >= 3, 5)
    stop.set()
    thread.join(timeout=1.0)
    assert not thread.is_alive()


def test_synchronous_wait_obeys_controls_without_losing_the_action(rig, wait_for):
    def respond(obs):
        if obs.seq == 2:  # the operator labels the episode while the robot waits; the late action still counts
            actor.control.put(Control("label", True, "ep1"))
            return 0.3, _act(obs.seq)
        if obs.seq == 5:  # no answer, an e-stop instead: the robot must not wait out its 5 s timeout
            actor.control.put(Control("estop"))
            return 0.0, None
        return 0.0, _act(obs.seq)

    arm, side, actor = rig(respond, synchronous=True)
    _start(side, actor, wait_for)
    side.run(max_ticks=4)
    assert len(arm.applied) == 4 and side.labels == {"ep1": True}
    thread = threading.Thread(target=side.run, kwargs={"max_ticks": 1})
    thread.start()
    thread.join(timeout=2)
    assert not thread.is_alive() and len(arm.applied) == 4 and side.safety.estopped
    assert side.safety.counters["missed_deadline"] == 0
