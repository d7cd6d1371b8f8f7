import numpy as np
import pytest
import torch

from robot_parl.models.vla.checkpoint import write_random_checkpoint


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A tiny random OpenVLA-layout checkpoint directory (real vocabulary, offline tokenizer)."""
    return write_random_checkpoint(tmp_path_factory.mktemp("tiny-vla") / "ckpt", seed=0)

@pytest.fixture
def tiny_policy(tiny_checkpoint):
    from robot_parl.models.vla.policy import VLAPolicy

    return VLAPolicy.from_checkpoint(tiny_checkpoint, dtype="float32")

def _image_obs(batch=2, seed=0, instructions=("pick up the red cube", "put the cube in the bin now")):
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.integers(0, 256, (batch, 96, 128, 3), dtype=np.uint8))
    return {"images": {"front": images}, "instruction": list(instructions[:batch])}

@pytest.fixture
def image_obs():
    """image_obs(batch, seed) -> an observation dict with random camera images and one instruction per state."""
    return _image_obs
