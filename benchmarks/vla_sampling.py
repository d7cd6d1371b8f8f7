"""VLA candidate sampling against transformers' generate(), plus adapter export and hot-swap times.

For each model size (the CI "tiny" VLA and a "small" one of about 80M parameters, both with the real
32064-token vocabulary and 256 image patches) and N = 1, 8, 32 candidates of one state, in one process:
- ours: ``VLAPolicy.sample_with_info`` (image + prompt once, KV cache repeated N times, 7 decode steps
  over the 256 action tokens);
- baseline: ``LlamaForCausalLM.generate`` on N copies of the multimodal prompt (vision towers and
  prompt run N times, full-vocabulary logits), i.e. what OpenVLA's predict_action does per sample.
Both include image preprocessing. Reports median ms, peak memory above the idle process (CPU: resident
set sampled every millisecond after returning freed memory to the OS; CUDA: the allocator's peak), and
the speed-up ratio. Goal: >= 20x at N = 32.

    python -m benchmarks.vla_sampling --json out.json [--repeats 5] [--sizes tiny small]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from robot_parl.files import atomic_write
from robot_parl.models.vla.checkpoint import tiny_config, write_random_checkpoint
from robot_parl.models.vla.policy import VLAPolicy
from robot_parl.models.vla.prompt import PAD_ID, prompt_ids
from robot_parl.models.vla.towers import TowerSpec

SIZES = {
    "tiny": tiny_config(),
    "small": tiny_config(hidden_size=512, layers=8, head_dim=64,
                         towers=(TowerSpec(256, 6, 4, 14, 1024, num_registers=4, layer_scale=True, pool="token"),
                                 TowerSpec(288, 6, 4, 14, 1152, pool="map"))),
}
NS = (1, 8, 32)
INSTRUCTION = "put the red block in the bin"


class PeakMemory:
    """Peak memory (MB) above the level at entry while the block runs."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_mb = 0.0

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
            return self
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        self._base = self._rss()
        self._peak = self._base
        self._running = True

        def watch():
            while self._running:
                self._peak = max(self._peak, self._rss())
                time.sleep(0.001)

        self._thread = threading.Thread(target=watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak_mb = (torch.cuda.max_memory_allocated() - self._base) / 2**20
        else:
            self._running = False
            self._thread.join()
            self.peak_mb = (max(self._peak, self._rss()) - self._base) / 2**20


def _timed(fn, repeats: int, device: torch.device) -> tuple[float, float]:
    """(median ms, peak MB) of fn(): one warm-up call, ``repeats`` timed calls, then one measuring memory
    (the memory watcher thread would slow the timed calls down)."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    with PeakMemory(device) as mem:
        fn()
    return float(np.median(times)), mem.peak_mb


def _generate_baseline(policy: VLAPolicy, obs: dict, n: int) -> torch.Tensor:
    """transformers generate() on n copies of the multimodal prompt, sampling 7 tokens."""
    pixels = policy.preprocess(obs["images"]["front"]).repeat(n, 1, 1, 1)
    ids = torch.tensor([prompt_ids(policy.tokenizer, INSTRUCTION)] * n, device=policy.device)
    with torch.no_grad():
        embeds, mask = policy.model.embed(ids, pixels)
        return policy.model.language_model.generate(inputs_embeds=embeds, attention_mask=mask, do_sample=True,
                                                    max_new_tokens=policy.action_dim, min_new_tokens=policy.action_dim,
                                                    top_k=0, pad_token_id=PAD_ID)


def measure_size(name: str, repeats: int, device: str, dtype: str, workdir: Path) -> dict:
    cfg = SIZES[name]
    ckpt = write_random_checkpoint(workdir / name, cfg, seed=0)
    start = time.perf_counter()
    policy = VLAPolicy.from_checkpoint(ckpt, dtype=dtype, device=device)
    load_s = time.perf_counter() - start
    params = sum(p.numel() for n, p in policy.model.named_parameters() if "lora_" not in n)
    image = np.random.default_rng(0).integers(0, 256, (1, 256, 256, 3), dtype=np.uint8)
    obs = {"images": {"front": torch.from_numpy(image)}, "instruction": [INSTRUCTION]}
    dev = policy.device
    rows = []
    for n in NS:
        ours_ms, ours_mb = _timed(lambda n=n: policy.sample_with_info(obs, n), repeats, dev)
        base_ms, base_mb = _timed(lambda n=n: _generate_baseline(policy, obs, n), repeats, dev)
        rows.append({"n": n, "sampler_ms": ours_ms, "generate_ms": base_ms, "speedup": base_ms / ours_ms,
                     "sampler_peak_mb": ours_mb, "generate_peak_mb": base_mb})
        print(f"{name:5s} N={n:2d}: sampler {ours_ms:8.1f} ms ({ours_mb:6.0f} MB)  generate() {base_ms:8.1f} ms "
              f"({base_mb:6.0f} MB)  x{base_ms / ours_ms:.1f}", flush=True)
    # A learner's adapter replaces the actor's between control steps.
    learner = VLAPolicy.from_checkpoint(ckpt, dtype=dtype, device=device)
    adapter = learner.sync_state()
    swap_ms, _ = _timed(lambda: policy.load_sync_state(adapter), repeats, dev)
    export_ms, _ = _timed(lambda: learner.export_adapter(workdir / f"{name}-adapter"), 1, dev)
    adapter_params = sum(t.numel() for t in adapter.values())
    return {"size": name, "parameters": params, "load_s": load_s, "adapter_parameters": adapter_params,
            "hot_swap_ms": swap_ms, "adapter_export_ms": export_ms, "sampling": rows,
            "speedup_at_32": rows[-1]["speedup"], "goal_20x_at_32_met": rows[-1]["speedup"] >= 20.0}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1: the machine is shared)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dtype = "bfloat16" if args.device.startswith("cuda") else "float32"
    with tempfile.TemporaryDirectory() as tmp:
        sizes = [measure_size(name, args.repeats, args.device, dtype, Path(tmp)) for name in args.sizes]
    result = {"device": args.device, "dtype": dtype, "threads": args.threads, "torch": torch.__version__,
              "repeats": args.repeats, "sizes": sizes}
    if args.json:
        atomic_write(args.json, lambda f: f.write(json.dumps(result, indent=2)), mode="w")
    return result


if __name__ == "__main__":
    main()
