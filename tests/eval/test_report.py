import numpy as np

from robot_parl.eval.report import write_report
from robot_parl.eval.stats import wilson_interval


def test_report_draws_modes_that_never_or_always_succeeded(tmp_path):
    """At 0 of 100 the Wilson formula's rounding put the lower bound a hair above 0, a negative error bar that
    matplotlib refuses (seen ending a 100-episode eval of a policy that never succeeded with the critic)."""
    summary = {mode: {"episodes": 100, "successes": k, "success_rate": k / 100, "wilson95": wilson_interval(k, 100),
                      "mean_length": 60.0} for mode, k in (("base+critic", 0), ("base", 11), ("oracle", 100))}
    assert summary["base+critic"]["wilson95"][0] == 0.0 and summary["oracle"]["wilson95"][1] == 1.0
    path = write_report(tmp_path / "report.html", "eval", summary, [], [],
                        {"base": np.zeros((8, 8, 3), np.uint8)})
    text = path.read_text()
    assert "<td>base+critic</td><td>100</td><td>0</td><td>0.0%</td><td>0.0% - 3.7%</td>" in text
