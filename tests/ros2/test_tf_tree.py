"""The node's TF buffer (no rclpy): chains composed from the base frame to the end effector, checked against
hand-computed poses and MuJoCo's quaternion functions; unknown, disconnected, looping and stale chains are
refused with messages that name the frames."""

import mujoco
import numpy as np
import pytest
from robot_parl_ros.convert import quat_to_rpy, rpy_to_quat
from robot_parl_ros.tf_tree import TransformTree

NOW = 100_000_000_000  # ns


def _t(xyz, rpy) -> np.ndarray:
    return np.r_[xyz, rpy_to_quat(np.asarray(rpy, np.float64))]


def _pose6(pose: np.ndarray) -> np.ndarray:
    return np.r_[pose[:3], quat_to_rpy(pose[3:])]


def test_a_chain_from_the_base_composes_like_hand_computed():
    tree = TransformTree()
    tree.set("base", "shoulder", _t([0.2, 0.0, 0.1], [0, 0, np.pi / 2]), 0, static=True)
    tree.set("shoulder", "ee", _t([0.1, 0.0, 0.05], [0, 0.5, 0]), NOW)
    # the shoulder is turned 90 degrees about z: its x axis is the base's y axis
    np.testing.assert_allclose(_pose6(tree.lookup("base", "ee", NOW, 0.5)), [0.2, 0.1, 0.15, 0, 0.5, np.pi / 2],
                               atol=1e-12)
    np.testing.assert_allclose(tree.lookup("ee", "ee", NOW, 0.5), [0, 0, 0, 0, 0, 0, 1])
    # the base seen from the shoulder: 0.1 below it and, in the shoulder's turned axes, 0.2 along -y
    np.testing.assert_allclose(_pose6(tree.lookup("shoulder", "base", NOW, 0.5)), [0, 0.2, -0.1, 0, 0, -np.pi / 2],
                               atol=1e-12)


def _mj_compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a * b with MuJoCo's own quaternion code (w first)."""
    qa, qb = np.r_[a[6], a[3:6]], np.r_[b[6], b[3:6]]
    rotated, q = np.zeros(3), np.zeros(4)
    mujoco.mju_rotVecQuat(rotated, b[:3], qa)
    mujoco.mju_mulQuat(q, qa, qb)
    return np.r_[a[:3] + rotated, q[1:], q[0]]


def _mj_inverse(a: np.ndarray) -> np.ndarray:
    q, position = np.zeros(4), np.zeros(3)
    mujoco.mju_negQuat(q, np.r_[a[6], a[3:6]])
    mujoco.mju_rotVecQuat(position, -a[:3], q)
    return np.r_[position, q[1:], q[0]]


def _same_pose(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_allclose(a[:3], b[:3], atol=1e-12)
    np.testing.assert_allclose(abs(np.dot(a[3:], b[3:])), 1.0, atol=1e-12)  # q and -q are the same rotation


def test_random_trees_match_mujoco():
    rng = np.random.default_rng(0)
    for _ in range(20):
        links = {name: _t(rng.uniform(-1, 1, 3), rng.uniform(-np.pi, np.pi, 3)) for name in "abcde"}
        tree = TransformTree()
        # world -> a -> b -> ee, and world -> c -> base: base and ee meet at world
        tree.set("world", "a", links["a"], NOW)
        tree.set("a", "b", links["b"], NOW)
        tree.set("b", "ee", links["c"], NOW)
        tree.set("world", "c", links["d"], NOW, static=True)
        tree.set("c", "base", links["e"], NOW)
        world_ee = _mj_compose(_mj_compose(links["a"], links["b"]), links["c"])
        world_base = _mj_compose(links["d"], links["e"])
        _same_pose(tree.lookup("base", "ee", NOW, 1.0), _mj_compose(_mj_inverse(world_base), world_ee))
        # a base on the end effector's own chain: the common ancestor is the base itself
        _same_pose(tree.lookup("a", "ee", NOW, 1.0), _mj_compose(links["b"], links["c"]))


def test_missing_disconnected_looping_and_stale_chains_are_named():
    tree = TransformTree()
    with pytest.raises(LookupError, match=r"no transform names frame 'ee' \(frames seen: none\)"):
        tree.lookup("base", "ee", NOW, 0.5)
    tree.set("base", "shoulder", _t([0, 0, 0.1], [0, 0, 0]), 0, static=True)
    tree.set("elbow", "ee", _t([0.1, 0, 0], [0, 0, 0]), NOW)
    with pytest.raises(LookupError, match=r"frames 'ee' and 'base' are not connected: 'ee' leads up to 'elbow', "
                                          r"'base' has no parent"):
        tree.lookup("base", "ee", NOW, 0.5)
    # a frame published under another parent moves there (as in tf2): now connected
    tree.set("shoulder", "ee", _t([0.1, 0, 0], [0, 0, 0]), NOW - 400_000_000)
    np.testing.assert_allclose(tree.lookup("base", "ee", NOW, 0.5)[:3], [0.1, 0, 0.1])
    # the static link is old but never stale; the dynamic one is, past the allowed age
    with pytest.raises(LookupError, match=r"the transform 'shoulder' -> 'ee' is 0.40 s old \(allowed: 0.3 s\)"):
        tree.lookup("base", "ee", NOW, 0.3)
    tree.set("ee", "shoulder", _t([0, 0, 0], [0, 0, 0]), NOW)
    with pytest.raises(LookupError, match="TF frames form a loop through 'ee'"):
        tree.lookup("shoulder", "ee", NOW, 0.5)
