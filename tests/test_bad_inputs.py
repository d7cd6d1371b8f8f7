"""What a user gives a command that is broken: a malformed YAML file or override, a truncated VLA checkpoint, a
damaged journal or episode store. Each is one line naming the file or key (no traceback), exit code 2 at start,
and nothing written to --out."""

import shutil

import numpy as np
import pytest

from robot_parl import cli
from robot_parl.data.episode_store import EpisodeStore, KeySpec, StoreError
from robot_parl.models.vla.checkpoint import write_random_checkpoint
from robot_parl.transport.session import free_loopback_endpoint

CFG = "configs/finetune-tiny-vla.yaml"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_random_checkpoint(tmp_path_factory.mktemp("vla") / "ckpt", seed=0)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "episodes"
    s = EpisodeStore.create(path, {"timestamp": KeySpec("float64", ()), "proprio": KeySpec("float32", (3,)),
                                   "action": KeySpec("float32", (2,))})
    with s.writer("test") as w:
        for _ in range(2):
            w.begin("sim")
            for t in range(5):
                w.add({"timestamp": float(t), "proprio": np.ones(3, np.float32), "action": np.zeros(2, np.float32)})
            w.end(True)
    return path


def _one_line(capsys, code: int, *expected: str) -> str:
    """The command's exit code and its error: exactly one line, naming what was wrong."""
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "gemm_4bit" not in line]
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("robot-parl: "), err
    for text in expected:
        assert text in err[0], err[0]
    return err[0]


def _damaged(store, tmp_path, how: str):
    copy = tmp_path / how
    shutil.copytree(store, copy)
    if how == "truncated-metadata":
        (copy / "zarr.json").write_text((copy / "zarr.json").read_text()[:50])
    elif how == "removed-column":
        shutil.rmtree(copy / "meta" / "episodes" / "success")
    else:  # a truncated chunk of frames
        [chunk] = [p for p in (copy / "data" / "proprio").rglob("*") if p.is_file() and p.name != "zarr.json"]
        chunk.write_bytes(chunk.read_bytes()[:7])
    return copy


def test_malformed_yaml_file_and_override_values(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("policy: [unclosed\n")
    out = tmp_path / "out"
    _one_line(capsys, cli.main(["learner", "--config", str(bad), "--out", str(out)]), str(bad), "not valid YAML",
              "line 2")
    _one_line(capsys, cli.main(["learner", "--config", CFG, "--out", str(out), "parl.num_samples=[1,"]),
              "parl.num_samples", "'[1,' is not YAML")
    assert not out.exists()


def test_truncated_vla_weights_name_the_file(checkpoint, tmp_path, capsys):
    cut = shutil.copytree(checkpoint, tmp_path / "cut")
    weights = cut / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    out = tmp_path / "out"
    code = cli.main(["learner", "--config", CFG, "--out", str(out), f"policy.vla.checkpoint={cut}",
                     f"link.learner_endpoint={free_loopback_endpoint()}"])
    _one_line(capsys, code, "policy.vla", str(weights), "not a complete safetensors file")
    assert not out.exists()


@pytest.mark.parametrize("how", ["truncated-metadata", "removed-column", "truncated-chunk"])
def test_damaged_stores_are_refused_in_one_line(store, tmp_path, capsys, how):
    damaged = _damaged(store, tmp_path, how)
    if how == "truncated-chunk":  # the metadata reads; the frames do not
        with pytest.raises(StoreError, match="episode 0's frames cannot be read.*damaged"):
            EpisodeStore(damaged).episode(0)
        code = cli.main(["data", "stats", str(damaged), "--keys", "proprio"])
    else:
        code = cli.main(["data", "inspect", str(damaged)])
    _one_line(capsys, code, str(damaged), "cannot be read")


def test_learner_with_a_damaged_offline_store_writes_nothing(checkpoint, store, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(["learner", "--config", CFG, "--out", str(out), f"policy.vla.checkpoint={checkpoint}",
                     f"learner.offline_store={_damaged(store, tmp_path, 'removed-column')}",
                     f"link.learner_endpoint={free_loopback_endpoint()}"])
    _one_line(capsys, code, "meta/episodes/success")
    assert not out.exists()


@pytest.mark.parametrize("damage", ["journal store", "acknowledgements"])
def test_actor_with_a_damaged_journal_stops_in_one_line(checkpoint, tmp_path, capsys, damage):
    journal = tmp_path / "actor" / "journal"
    if damage == "journal store":
        (journal / "episodes").mkdir(parents=True)
        (journal / "episodes" / "zarr.json").write_text("{not json")
        expected = str(journal / "episodes")
    else:
        journal.mkdir(parents=True)
        (journal / "acked.json").write_text("[1, 2")
        expected = f"{journal / 'acked.json'} is not a JSON list of episode ids"
    code = cli.main(["actor", "--config", CFG, "--out", str(tmp_path / "actor"), f"policy.vla.checkpoint={checkpoint}",
                     "actor.live_view=null", f"link.robot_endpoint={free_loopback_endpoint()}",
                     f"link.learner_endpoint={free_loopback_endpoint()}"])
    _one_line(capsys, code, expected)
