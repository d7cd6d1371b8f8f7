import pytest
import torch

from robot_parl.files import atomic_write
from robot_parl.tensor_tree import load_tree, save_tree


def test_tree_round_trip_with_optimizer_state(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.9))
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    tree = {"model": model.state_dict(), "opt": opt.state_dict(), "step": 7, "name": "x", "none": None,
            "gen": torch.Generator().manual_seed(3).get_state()}
    save_tree(tmp_path / "c.safetensors", tree)
    back = load_tree(tmp_path / "c.safetensors")
    assert back["step"] == 7 and back["name"] == "x" and back["none"] is None
    for k, v in tree["model"].items():
        assert torch.equal(back["model"][k], v)
    opt2 = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters(), lr=1.0)
    opt2.load_state_dict(back["opt"])
    assert opt2.param_groups[0]["betas"] == (0.8, 0.9)
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert list(tmp_path.iterdir()) == [tmp_path / "c.safetensors"]  # no temporary files left


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "f.txt"
    atomic_write(path, lambda f: f.write("old"), mode="w")

    def crash(f):
        f.write("half")
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(path, crash, mode="w")
    assert path.read_text() == "old"
    assert list(tmp_path.iterdir()) == [path]


def test_foreign_file_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match="not a robot-parl checkpoint"):
        load_tree(tmp_path / "plain.safetensors")
    with pytest.raises(FileNotFoundError):
        load_tree(tmp_path / "missing.safetensors")
