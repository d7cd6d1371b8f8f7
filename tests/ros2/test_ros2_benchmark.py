"""benchmarks.ros2 end to end with tiny settings (2 s per Fast DDS set-up, 64x48 frames): every path carries
data and the JSON holds each latency with plausible values (no timing thresholds)."""

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LATENCIES = ("camera_to_actor", "camera_to_node", "node_wait_for_tick", "tick_to_actor",
             "camera_to_actor_without_tick_wait", "direct_rclpy", "command_action_to_twist")
RATIOS = ("p50_ratio_node_over_direct", "p99_ratio_node_over_direct",
          "p50_ratio_node_without_tick_wait_over_direct", "p99_ratio_node_without_tick_wait_over_direct")


def test_ros2_benchmark_smoke(tmp_path):
    out = tmp_path / "ros2.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.ros2", "--json", str(out), "--seconds", "2",
                           "--width", "64", "--height", "48"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert (result["benchmark"], result["width"], result["height"], result["image_bytes"]) == ("ros2", 64, 48, 9216)
    assert set(result["runs"]) == {"fastdds_loopback_profile", "ros_localhost_default"}
    assert result["runs"]["fastdds_loopback_profile"]["fastdds_profile"] is True
    assert result["runs"]["ros_localhost_default"]["ros_automatic_discovery_range"] == "LOCALHOST"
    for name, run in result["runs"].items():
        for key in LATENCIES:
            stats = run[key]
            assert stats["n"] >= 10, (name, key, stats)  # 2 s at 30 Hz: about 60 of each
            assert 0 <= stats["p50_ms"] <= stats["p99_ms"] < 10_000, (name, key, stats)  # milliseconds, not ns
        # the parts add up to the whole, frame by frame
        parts = sum(run[key]["mean_ms"] for key in ("camera_to_node", "node_wait_for_tick", "tick_to_actor"))
        assert math.isclose(parts, run["camera_to_actor"]["mean_ms"], rel_tol=1e-6), name
        for key in RATIOS:
            assert math.isfinite(run[key]) and run[key] > 0, (name, key, run[key])
        frames, commands = run["frames"], run["commands"]
        assert 0 < frames["to_actor"] <= frames["published"] and 0 < frames["to_direct"] <= frames["published"]
        assert 0 < commands["received"] <= commands["sent"]
        assert run["camera_fps"] > result["fps"]
