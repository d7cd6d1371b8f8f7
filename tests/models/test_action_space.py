"""Action spaces map policy actions to robot units and back; a VLA's gripper mapping is explicit."""

import numpy as np
import pytest

from robot_parl.models.action_space import GripperConvention, LinearActionSpace, vla_action_space
from robot_parl.robots.spec import load_spec
from robot_parl.typed_config import ConfigError

NAMES = ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]
# Bridge-like statistics: asymmetric q01/q99, gripper un-normalized in [0, 1]
BRIDGE = {"q01": [-0.03, -0.05, -0.02, -0.1, -0.2, -0.15, 0.0], "q99": [0.03, 0.04, 0.035, 0.1, 0.12, 0.2, 1.0],
          "mask": [True] * 6 + [False], "min": [-0.1] * 6 + [0.0], "max": [0.1] * 6 + [1.0]}


def test_linear_space_is_the_spec_bounds_both_ways():
    space = LinearActionSpace([-0.02, 0.0], [0.02, 1.0])
    np.testing.assert_allclose(space.to_robot(np.array([[-1.0, 1.0], [0.0, 0.0]])), [[-0.02, 1.0], [0.0, 0.5]])
    np.testing.assert_allclose(space.from_robot(np.array([0.01, 0.25])), [0.5, -0.5], atol=1e-6)
    assert space.from_robot(np.array([1.0, 7.0]))[1] == 1.0  # outside the bounds: clipped


def test_vla_space_unnormalizes_with_the_statistics_and_maps_the_gripper():
    robot = GripperConvention(closed=0.04, open=0.0)  # a robot with the opposite convention: 0.04 closes
    space = vla_action_space(BRIDGE, "bridge_orig", GripperConvention(0.0, 1.0), NAMES, robot)
    a = np.array([0.0, 0.0, 0.0, -1.0, 1.0, 0.0, 1.0])
    out = space.to_robot(a)
    q01, q99 = np.array(BRIDGE["q01"]), np.array(BRIDGE["q99"])
    np.testing.assert_allclose(out[:6], (0.5 * (a + 1) * (q99 - q01) + q01)[:6], atol=1e-7)
    assert out[2] == pytest.approx(0.0075)  # OpenVLA's "no z motion" is q01/q99's midpoint, not 0
    assert out[6] == pytest.approx(0.0)  # dataset 1 = open -> the robot's open value
    assert space.to_robot(np.r_[a[:6], 0.0])[6] == pytest.approx(0.04)  # dataset 0 = closed
    back = space.from_robot(out)
    np.testing.assert_allclose(back, a, atol=1e-6)


def test_a_missing_or_contradictory_gripper_mapping_is_refused():
    robot = GripperConvention(0.0, 1.0)
    with pytest.raises(ConfigError, match="policy.vla.gripper.*missing.*leave it un-normalized.*closed: 0.0"):
        vla_action_space(BRIDGE, "bridge_orig", None, NAMES, robot)
    with pytest.raises(ConfigError, match="action.gripper.*does not say"):
        vla_action_space(BRIDGE, "bridge_orig", GripperConvention(0.0, 1.0), NAMES, None)
    with pytest.raises(ConfigError, match="no 'gripper'"):
        vla_action_space(BRIDGE, "bridge_orig", GripperConvention(0.0, 1.0), NAMES[:6] + ["tool"], None)
    with pytest.raises(ConfigError, match="within the 'bridge_orig' data's gripper range \\[0.0, 1.0\\]"):
        vla_action_space(BRIDGE, "bridge_orig", GripperConvention(-1.0, 1.0), NAMES, robot)
    with pytest.raises(ConfigError, match="7 action dimensions, the robot 6"):
        vla_action_space(BRIDGE, "bridge_orig", GripperConvention(0.0, 1.0), NAMES[:6], robot)


def test_a_robot_spec_refuses_a_gripper_outside_its_bounds():
    assert load_spec("widowx").action.gripper == GripperConvention(0.0, 1.0)
    with pytest.raises(ConfigError, match="action.gripper.*within the gripper's bounds"):
        load_spec("widowx", ["action.gripper={closed: 0.0, open: 2.0}"])
