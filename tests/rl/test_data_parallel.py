"""The data-parallel learner's updates (rl/data_parallel.py): 2 gloo ranks launched by torchrun on loopback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from data_parallel_run import sample_batch

from robot_parl.tensor_tree import load_tree
from robot_parl.transport.session import free_loopback_endpoint

RUN = Path(__file__).with_name("data_parallel_run.py")
REPO = Path(__file__).parents[2]


def _run(out: Path, ranks: int, *flags: str) -> subprocess.CompletedProcess:
    out.mkdir(parents=True, exist_ok=True)
    port = free_loopback_endpoint().rsplit(":", 1)[1]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks), "--nnodes", "1",
                "--master-addr", "127.0.0.1", "--master-port", port] if ranks > 1 else [sys.executable]
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return subprocess.run([*launcher, str(RUN), str(out), *flags], env=env, capture_output=True, text=True,
                          timeout=180)


def _params(path: Path) -> dict[str, torch.Tensor]:
    tree = load_tree(path)
    return {f"{part}.{k}": v for part in ("critic", "policy") for k, v in tree[part].items()}


def test_two_ranks_match_one_process_on_the_same_global_batch(tmp_path):
    for ranks in (1, 2):
        done = _run(tmp_path / str(ranks), ranks)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    single = _params(tmp_path / "1" / "rank0.safetensors")
    lead, other = (_params(tmp_path / "2" / f"rank{r}.safetensors") for r in (0, 1))
    start = _params(tmp_path / "1" / "start0.safetensors")
    moved = max((single[k] - start[k]).abs().max().item() for k in start if k in single)
    assert moved > 1e-3  # the updates changed the weights, so agreeing below means something
    for name, value in single.items():
        # the same updates; only the order of floating-point sums differs (two half-batch means, then their mean)
        torch.testing.assert_close(lead[name], value, rtol=1e-4, atol=1e-5, msg=name)
        assert torch.equal(lead[name], other[name]), name  # the ranks never drift apart
    counters = load_tree(tmp_path / "2" / "rank1.safetensors")["counters"]
    assert counters["critic_updates"] == 6 and counters["distill_updates"] == 4


def test_ranks_with_their_own_noise_stay_identical(tmp_path):
    """CQL's random actions and a diffusion policy's noise differ per rank; the averaged gradients do not."""
    done = _run(tmp_path, 2, "--noisy")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    lead, other = (_params(tmp_path / f"rank{r}.safetensors") for r in (0, 1))
    assert lead.keys() == other.keys()
    for name in lead:
        assert torch.equal(lead[name], other[name]), name


def test_each_rank_gets_its_rows_of_images_proprio_and_instructions(tmp_path):
    done = _run(tmp_path, 2, "--share")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    whole = sample_batch()
    for rank, rows in ((0, slice(0, 3)), (1, slice(3, 6))):
        got = load_tree(tmp_path / f"share{rank}.safetensors")
        assert got["images"].dtype == torch.uint8
        assert torch.equal(got["images"], whole.obs["images"]["front"][rows])
        assert torch.equal(got["next_proprio"], whole.next_obs["proprio"][rows])
        assert torch.equal(got["candidates"], whole.candidates[rows])
        assert json.loads((tmp_path / f"share{rank}.json").read_text()) == whole.obs["instruction"][rows]


def test_a_batch_that_does_not_split_over_the_ranks_is_refused_by_name(tmp_path):
    done = _run(tmp_path, 2, "--batch", "15")
    assert done.returncode != 0
    assert "config key 'parl.critic.batch_size': expected a multiple of the 2 learner ranks, got 15" in \
        done.stdout + done.stderr


@pytest.fixture(autouse=True)
def _cpu_only(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
