"""benchmarks/vla_gpu.py at tiny size on the CPU: the 7B run's code path (a random checkpoint in the release layout,
the acting step at N = 8, a distillation step at batch 16 whole and in micro-batches, the adapter's trip, the
actor beside a learner process); and the
7B architecture it builds has OpenVLA-7B's parameter count."""

import json

import torch

from benchmarks.vla_gpu import main
from robot_parl.models.vla.checkpoint import openvla_7b_config
from robot_parl.models.vla.model import OpenVLAModel


def test_the_7b_config_is_openvla_7b_sized():
    with torch.device("meta"):
        model = OpenVLAModel(openvla_7b_config())
    assert sum(p.numel() for p in model.parameters()) == 7_541_237_184  # openvla/openvla-7b's safetensors


def test_the_gpu_benchmark_runs_at_tiny_size_on_cpu(tmp_path):
    out = tmp_path / "vla_gpu.json"
    main(["--size", "tiny", "--device", "cpu", "--steps", "2", "--json", str(out)])
    result = json.loads(out.read_text())
    assert (result["size"], result["device"], result["n"]) == ("tiny", "cpu", 8)
    [actor] = result["actor"]  # bitsandbytes' 4-bit layers need CUDA: bf16/float only here
    assert actor["sampler_n8"]["p50_ms"] > 0 and actor["actor_step_n8"]["p50_ms"] > 0 and actor["generate_n8_ms"] > 0
    learner = result["learner"]
    assert learner["batch"] == 16 and learner["gradient_checkpointing"]
    assert learner["distill_micro_16"]["p50_ms"] > 0 and learner["distill_micro_4"]["p50_ms"] > 0
    assert learner["sync"]["bytes"] > 4 * learner["adapter_parameters"]  # float32 adapter plus its header
    shared = result["shared"]  # the actor's step while a learner process trains beside it
    assert shared["actor_step_alone"]["p50_ms"] > 0 and shared["actor_step_with_learner"]["p50_ms"] > 0
