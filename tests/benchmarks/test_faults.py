"""The fault benchmark on a small budget: writer kills, a controller killed mid-episode, garbage and e-stop floods
on a live robot side, garbage, wrong steps and a long pause at a learner process. Nothing may be lost."""

import math

import pytest

from benchmarks.faults import run

pytestmark = pytest.mark.slow


def test_kills_floods_garbage_and_pauses_lose_nothing():
    result = run(kills=3, garbage=600, estops=3, seed=1)
    summary = result["summary"]
    assert summary["processes_lost"] == 0, result
    assert summary["episodes_lost"] == 0 and summary["episodes_altered"] == 0, result
    assert summary["estops_dropped"] == 0 and result["estops"]["controls_dropped"] > 0  # the flood did overflow
    assert result["writer"]["episodes_reported_committed"] > 0
    # the robot side held after every kill (how soon is the benchmark's number, not a test's)
    assert math.isfinite(result["death_to_hold_ms"]["max"])
    assert result["robot_side_garbage"]["refused"] >= 0.9 * 600
    assert result["learner"]["undecodable"] > 0 and result["learner"]["refused_steps"] >= 3
