import numpy as np
import pytest

from robot_parl.models.vla.actions import ActionTokenizer, action_stats, dataset_action_space


def test_ids_are_openvla_action_ids_and_round_trip():
    tok = ActionTokenizer()
    assert tok.first_id == 31744
    assert tok.encode(np.array([-1.0]))[0] == 31999
    assert tok.encode(np.array([1.0]))[0] == 31744
    x = np.random.default_rng(0).uniform(-1, 1, (1000, 7))
    ids = tok.encode(x)
    assert ids.min() >= 31744 and ids.max() <= 31999
    # decoding lands within one bin width of the value (bins are 2/255 wide)
    assert np.abs(tok.decode(ids) - x).max() <= 2 / 255 + 1e-12
    # bin centres are fixed points
    assert np.array_equal(tok.encode(tok.decode(ids)), np.clip(ids, 31745, 31999))


def test_out_of_range_clips_and_nan_is_refused():
    tok = ActionTokenizer()
    assert np.array_equal(tok.encode(np.array([-5.0, 7.0])), tok.encode(np.array([-1.0, 1.0])))
    with pytest.raises(ValueError, match="NaN"):
        tok.encode(np.array([0.0, np.nan]))
    # ids outside the action range decode to the nearest end, as OpenVLA's decoder does
    assert tok.decode(np.array([5]))[0] == tok.centers[-1]
    assert tok.decode(np.array([32050]))[0] == tok.centers[0]


def test_unnormalize_uses_q01_q99_and_leaves_the_gripper():
    stats = {"d": {"action": {"q01": [-0.1, 0.0, -2.0], "q99": [0.1, 1.0, 2.0], "mask": [True, True, False]}}}
    norm = dataset_action_space(stats, "d")
    out = norm.to_robot(np.array([[-1.0, 1.0, 0.3], [0.0, 0.0, -0.7]]))
    np.testing.assert_allclose(out, [[-0.1, 1.0, 0.3], [0.0, 0.5, -0.7]], atol=1e-7)
    np.testing.assert_allclose(norm.from_robot(out), [[-1.0, 1.0, 0.3], [0.0, 0.0, -0.7]], atol=1e-6)


def test_statistics_choice_is_explicit():
    stats = {"a": {"action": {"q01": [0.0], "q99": [1.0]}}, "b": {"action": {"q01": [0.0], "q99": [2.0]}}}
    with pytest.raises(ValueError, match="several datasets"):
        action_stats(stats, None)
    with pytest.raises(ValueError, match="'c' is not in"):
        action_stats(stats, "c")
    assert action_stats(stats, "b")[1]["q99"][0] == 2.0
    assert action_stats({"only": stats["a"]}, None)[0] == "only"
    with pytest.raises(ValueError, match="q01 and q99"):
        action_stats({"a": {"action": {"mean": [0.0]}}}, "a")
