import numpy as np
import pytest

from robot_parl import typed_config
from robot_parl.robots.safety import Safety, Watchdog
from robot_parl.robots.spec import RobotSpec, load_spec

CENTRE = np.array([0.3, 0.0, 0.2])  # inside widowx's workspace box


def _spec():
    return load_spec("widowx")


def test_clipping_rate_limit_and_nonfinite():
    s = Safety(_spec())
    v = s.check(np.array([0.5, 0, 0, 0, 0, 0, 1], np.float32), CENTRE)
    assert v.values[0] == pytest.approx(0.02) and "clipped" in v.reasons
    v = s.check(np.array([-0.02, 0, 0, 0, 0, 0, 0], np.float32), CENTRE)  # max_change x = 0.02 from +0.02
    assert v.values[0] == pytest.approx(0.0) and "rate_limited" in v.reasons
    for bad in (np.nan, np.inf):
        v = s.check(np.array([bad, 0, 0, 0, 0, 0, 0], np.float32))
        assert v.hold and v.values is None
    assert s.check(np.zeros(3, np.float32)).hold  # wrong dimension
    assert s.counters["nonfinite_rejected"] == 2 and s.counters["malformed_rejected"] == 1
    assert s.counters["clipped"] == 1 and s.counters["rate_limited"] == 1 and s.counters["applied"] == 2


def test_rate_limit_ramps_up_from_rest_at_the_start_and_after_every_hold():
    spec = _spec()
    spec.action.max_change[0] = 0.005  # smoother than the bound: 0.02 takes four steps from rest
    s = Safety(spec)
    x = np.array([0.02, 0, 0, 0, 0, 0, 0.3], np.float32)
    ramp = [s.check(x, CENTRE).values for _ in range(5)]
    np.testing.assert_allclose([v[0] for v in ramp], [0.005, 0.01, 0.015, 0.02, 0.02], atol=1e-7)
    assert ramp[0][6] == pytest.approx(0.3)  # the gripper's first command is a position: not limited from 0
    s.hold("missed_deadline")  # the arm stopped: the next command starts from rest again
    assert s.check(x, CENTRE).values[0] == pytest.approx(0.005)
    s.reset()
    assert s.check(x, CENTRE).values[0] == pytest.approx(0.005)


def test_workspace_box_keeps_the_end_effector_inside():
    s = Safety(_spec())  # box x in [0.15, 0.45]
    v = s.check(np.array([0.02, 0, 0, 0, 0, 0, 0], np.float32), ee_position=np.array([0.44, 0.0, 0.2]))
    assert v.values[0] == pytest.approx(0.01) and "workspace_limited" in v.reasons
    s.reset()
    v = s.check(np.array([0.02, 0, 0, 0, 0, 0, 0], np.float32), ee_position=np.array([0.50, 0.0, 0.2]))
    assert v.values[0] == pytest.approx(-0.02)  # already outside: only back in, within bounds
    s.reset()
    # the pose unknown (not yet heard, or stale): the box cannot be checked, so the robot holds
    assert s.check(np.array([0.02, 0, 0, 0, 0, 0, 0], np.float32)).hold and s.counters["pose_unknown_holds"] == 1
    free = _spec()
    free.workspace = type(free.workspace)()  # no box: nothing to check, the pose is not needed
    assert Safety(free).check(np.array([0.02, 0, 0, 0, 0, 0, 0], np.float32)).values[0] > 0


def test_a_stale_camera_holds_until_its_images_are_current():
    s = Safety(_spec())
    home = np.asarray(s.spec.home_pose[:3])
    action = np.array([0.01, 0, 0, 0, 0, 0, 0], np.float32)
    verdict = s.check(action, home, ["wrist"])
    assert verdict.hold and verdict.reasons == ("camera_stale_holds",) and s.counters["applied"] == 0
    assert s.check(action, home, []).values[0] == pytest.approx(0.01)
    assert s.counters["camera_stale_holds"] == 1 and s.counters["holds"] == 1 and s.counters["applied"] == 1


def test_estop_latch_holds_until_cleared():
    s = Safety(_spec())
    s.estop("button")
    for _ in range(3):
        assert s.check(np.zeros(7, np.float32)).hold
    s.estop("again")
    assert s.counters["estops"] == 1 and s.counters["estop_holds"] == 3
    s.clear_estop()
    assert not s.check(np.zeros(7, np.float32), CENTRE).hold


def test_watchdog():
    w = Watchdog(0.1)
    w.arm(10.0)
    assert w.remaining(10.05) == pytest.approx(0.05) and w.remaining(10.2) < 0
    with pytest.raises(ValueError, match="timeout"):
        Watchdog(0)


@pytest.mark.parametrize(("overrides", "key"), [
    (["action.low=[1,0,0,0,0,0,0]"], "action.low"),
    (["action.units=[m]"], "action.units"),
    (["control_rate_hz=0"], "control_rate_hz"),
    (["home_pose=[0.9,0,0.2,0,0,0,1]"], "home_pose"),
    (["workspace.high=[0.1,0.3,0.35]"], "workspace.high"),
    (["cameras=[{name: a}, {name: a}]"], "cameras"),
    (["command_mode=torque"], "command_mode"),
    (["action.high=[.inf,0.02,0.02,0.1,0.1,0.1,1]"], "action.high"),
    (["action.max_change=[.nan,1,1,1,1,1,1]"], "action.max_change"),
    (["control_rate_hz=.inf"], "control_rate_hz"),
    (["home_pose=[.nan,0,0.2,0,0,0,1]", "workspace={low: [], high: []}"], "home_pose"),
])
def test_bad_specs_name_the_key(overrides, key):
    with pytest.raises(typed_config.ConfigError) as err:
        load_spec("widowx", overrides)
    assert err.value.key == key
    assert "widowx.yaml" in str(err.value)


def test_unknown_spec_name_lists_the_known_ones():
    with pytest.raises(typed_config.ConfigError, match="widowx"):
        load_spec("ur5e_unknown")
    assert RobotSpec().action.dim == 7
