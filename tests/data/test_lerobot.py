"""LeRobotDataset v3 export and import: a store survives the round trip (low-dimensional data exactly, frames
within H.264's loss and in order), the exported directory has the v3 layout, and broken or foreign datasets
are refused without leaving anything behind (real pyarrow, PyAV and zarr on disk)."""

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from robot_parl.data import lerobot
from robot_parl.data.episode_store import EpisodeStore, KeySpec
from robot_parl.data.lerobot import LeRobotError, export_lerobot, import_lerobot
from robot_parl.data.video import read_mp4, write_mp4

FPS = 10
LENGTHS = (5, 9, 12)
INSTRUCTIONS = ("pick up the red block", "open the drawer", "pick up the red block")
SCHEMA = {"timestamp": KeySpec("float64", ()), "images/front": KeySpec("uint8", (32, 32, 3)),
          "images/wrist": KeySpec("uint8", (32, 32, 3)), "proprio": KeySpec("float32", (4,)),
          "action": KeySpec("float32", (7,), units="robot"), "reward": KeySpec("float32", ()),
          "candidates": KeySpec("float32", (3, 7), optional=True, units="robot")}


def image(camera, e, j):
    """A smooth frame, different for every (camera, episode, step): gradients whose colour depends on the
    episode and camera, and a brighter block whose place moves with the step (smooth colour keeps yuv420p's
    halved chroma from dominating the error)."""
    y, x = np.mgrid[0:32, 0:32]
    tint = 30 * e + (60 if camera == "wrist" else 0)
    img = np.stack([20 + 2 * x + tint, 20 + 3 * y + 5 * j, 50 + x + y + tint // 2], -1)  # <= 252 with the block
    img[4 + 6 * e: 12 + 6 * e, 2 * j: 8 + 2 * j] += 50
    return img.astype(np.uint8)


def frame(e, j):
    rng = np.random.default_rng(100 * e + j)
    return {"timestamp": 1.7e9 + 100.0 * e + j * 0.1003 + rng.uniform(0, 0.01), "images/front": image("front", e, j),
            "images/wrist": image("wrist", e, j), "proprio": rng.normal(size=4).astype(np.float32),
            "action": rng.normal(size=7).astype(np.float32), "reward": np.float32(j == LENGTHS[e] - 1)}


def make_store(path):
    store = EpisodeStore.create(path, SCHEMA, robot_spec={"name": "widowx"})
    with store.writer("test") as w:
        for e, n in enumerate(LENGTHS):
            w.begin("rollout", instruction=INSTRUCTIONS[e], optional_keys=("candidates",) if e == 1 else ())
            for j in range(n):
                f = frame(e, j)
                if e == 1:
                    f["candidates"] = np.full((3, 7), j, np.float32)
                w.add(f)
            w.end(success=e != 1)
    return store


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("lerobot")
    make_store(root / "store")
    report = export_lerobot(root / "store", root / "lerobot", fps=FPS)
    return root, report


def test_round_trip_keeps_data_exactly_and_frames_in_order(exported, tmp_path):
    root, report = exported
    assert (report.episodes, report.frames) == (3, sum(LENGTHS))
    assert report.skipped == ["candidates"]
    back = import_lerobot(root / "lerobot", tmp_path / "back", source="sim")
    assert (back.episodes, back.frames) == (3, sum(LENGTHS))
    src, dst = EpisodeStore(root / "store"), EpisodeStore(tmp_path / "back")
    assert dst.schema == {k: v for k, v in SCHEMA.items() if k != "candidates"}
    assert dst.robot_spec == {"name": "widowx"} and len(dst) == 3
    sources = {cam: np.stack([src.episode(e)[f"images/{cam}"][j] for e in range(3) for j in range(LENGTHS[e])])
               for cam in ("front", "wrist")}
    position = 0
    for e in range(3):
        a, b, info = src.episode(e), dst.episode(e), dst.info(e)
        assert (info.instruction, info.success, info.source, len(info)) == (INSTRUCTIONS[e], e != 1, "sim", LENGTHS[e])
        for key in ("timestamp", "proprio", "action", "reward"):
            assert b[key].dtype == a[key].dtype
            np.testing.assert_array_equal(b[key], a[key], err_msg=key)
        for cam in ("front", "wrist"):
            decoded = b[f"images/{cam}"].astype(np.int32)
            assert np.abs(decoded - a[f"images/{cam}"]).mean() < 2.5  # a neighbouring frame is >= 3.4 off
            # each decoded frame is nearest to its own source frame among every frame of that camera
            errors = np.abs(decoded[:, None] - sources[cam][None].astype(np.int32)).mean(axis=(2, 3, 4))
            np.testing.assert_array_equal(errors.argmin(axis=1), position + np.arange(LENGTHS[e]))
        position += LENGTHS[e]


def test_export_writes_the_v3_layout(exported):
    root, _ = exported
    out = root / "lerobot"
    info = json.loads((out / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == FPS and info["robot_type"] == "widowx"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, sum(LENGTHS), 2)
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    assert info["splits"] == {"train": "0:3"} and info["chunks_size"] == 1000
    features = info["features"]
    assert features["observation.state"] == {"dtype": "float32", "shape": [4], "names": None}
    assert features["action"]["shape"] == [7] and features["next.reward"]["shape"] == [1]
    cam = features["observation.images.front"]
    assert cam["dtype"] == "video" and cam["shape"] == [32, 32, 3] and cam["names"] == ["height", "width", "channels"]
    assert cam["info"]["video.codec"] == "h264" and cam["info"]["video.pix_fmt"] == "yuv420p"
    for key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert features[key]["shape"] == [1]

    data = pq.read_table(out / "data/chunk-000/file-000.parquet")
    assert set(data.column_names) == {"observation.state", "action", "next.reward", "source_timestamp",
                                      "next.success", "timestamp", "frame_index", "episode_index", "index",
                                      "task_index"}
    assert data.num_rows == sum(LENGTHS)
    np.testing.assert_array_equal(data.column("index").to_numpy(), np.arange(sum(LENGTHS)))
    frame_index = data.column("frame_index").to_numpy()
    np.testing.assert_allclose(data.column("timestamp").to_numpy(), frame_index / FPS, rtol=1e-6)
    episode_index = data.column("episode_index").to_numpy()

    episodes = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [r["episode_index"] for r in episodes] == [0, 1, 2]
    for r, n in zip(episodes, LENGTHS):
        rows = np.flatnonzero(episode_index == r["episode_index"])
        assert r["length"] == n and (r["dataset_from_index"], r["dataset_to_index"]) == (rows[0], rows[-1] + 1)
        np.testing.assert_array_equal(frame_index[rows], np.arange(n))
        assert (r["data/chunk_index"], r["data/file_index"]) == (0, 0)
        assert r["tasks"] == [INSTRUCTIONS[r["episode_index"]]]
        for cam in ("front", "wrist"):
            start, end = (r[f"videos/observation.images.{cam}/{t}_timestamp"] for t in ("from", "to"))
            # one file per camera holds every episode: an episode starts where its rows start
            assert start == pytest.approx(r["dataset_from_index"] / FPS) and end - start == pytest.approx(n / FPS)
        assert r["stats/action/count"] == [n]
    for cam in ("front", "wrist"):
        video = read_mp4(out / f"videos/observation.images.{cam}/chunk-000/file-000.mp4")
        assert video.shape == (sum(LENGTHS), 32, 32, 3)

    tasks = pq.read_table(out / "meta/tasks.parquet")
    assert dict(zip(tasks.column("task").to_pylist(), tasks.column("task_index").to_pylist())) == {
        INSTRUCTIONS[0]: 0, INSTRUCTIONS[1]: 1}
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]
    np.testing.assert_array_equal(data.column("task_index").to_numpy(), np.repeat([0, 1, 0], LENGTHS))

    stats = json.loads((out / "meta/stats.json").read_text())
    state = np.stack(data.column("observation.state").to_pylist())
    np.testing.assert_allclose(stats["observation.state"]["min"], state.min(0), rtol=1e-6)
    np.testing.assert_allclose(stats["observation.state"]["max"], state.max(0), rtol=1e-6)
    np.testing.assert_allclose(stats["observation.state"]["mean"], state.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats["observation.state"]["std"], state.std(0), rtol=1e-5)
    assert stats["observation.state"]["count"] == [sum(LENGTHS)] and len(stats["observation.state"]["q99"]) == 4
    assert np.array(stats["observation.images.front"]["mean"]).shape == (3, 1, 1)
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []


def test_small_file_limits_spread_episodes_over_files(tmp_path):
    make_store(tmp_path / "store")
    export_lerobot(tmp_path / "store", tmp_path / "out", fps=FPS, data_file_mb=1e-4, video_file_mb=1e-4)
    assert len(list((tmp_path / "out/data").glob("chunk-000/file-*.parquet"))) == 3
    assert len(list((tmp_path / "out/videos/observation.images.wrist").glob("chunk-000/file-*.mp4"))) == 3
    episodes = pq.read_table(tmp_path / "out/meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [r["videos/observation.images.wrist/file_index"] for r in episodes] == [0, 1, 2]
    assert all(r["videos/observation.images.wrist/from_timestamp"] == 0.0 for r in episodes)
    import_lerobot(tmp_path / "out", tmp_path / "back")
    src, dst = EpisodeStore(tmp_path / "store"), EpisodeStore(tmp_path / "back")
    for e in range(3):
        np.testing.assert_array_equal(dst.episode(e)["action"], src.episode(e)["action"])
        assert np.abs(dst.episode(e)["images/wrist"].astype(int) - src.episode(e)["images/wrist"]).mean() < 2.5


def test_import_of_a_dataset_written_elsewhere(exported, tmp_path):
    """Without our extra features (LeRobot's own timestamps, no success) and with plain list columns."""
    import pyarrow as pa

    root, _ = exported
    src = broken_copy(exported, tmp_path)
    path = src / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path).drop_columns(["source_timestamp", "next.success"])
    for name in ("observation.state", "action"):
        table = table.set_column(table.column_names.index(name), name,
                                 pa.array(table.column(name).to_pylist(), pa.list_(pa.float32())))
    pq.write_table(table, path)
    edit_info(src, lambda info: [info["features"].pop(k) for k in ("source_timestamp", "next.success")])
    import_lerobot(src, tmp_path / "store", key_map={"observation.images.wrist": None})
    store, original = EpisodeStore(tmp_path / "store"), EpisodeStore(root / "store")
    assert "images/wrist" not in store.schema and "images/front" in store.schema
    for e in range(3):
        np.testing.assert_array_equal(store.episode(e)["timestamp"], np.float32(np.arange(LENGTHS[e]) / FPS))
        np.testing.assert_array_equal(store.episode(e)["proprio"], original.episode(e)["proprio"])
        assert not store.info(e).success and store.info(e).source == "teleop"


def broken_copy(exported, tmp_path):
    root, _ = exported
    shutil.copytree(root / "lerobot", tmp_path / "in")
    return tmp_path / "in"


def edit_info(path, change):
    info = json.loads((path / "meta/info.json").read_text())
    change(info)
    (path / "meta/info.json").write_text(json.dumps(info))


def refused(src, dest, match):
    with pytest.raises(LeRobotError, match=match):
        import_lerobot(src, dest)
    assert not dest.exists()
    assert [p.name for p in dest.parent.iterdir() if p.name.startswith(".")] == []


def test_import_refuses_a_v2_dataset(exported, tmp_path):
    src = broken_copy(exported, tmp_path)
    edit_info(src, lambda info: info.update(codebase_version="v2.1"))
    refused(src, tmp_path / "store", r"info\.json: codebase_version 'v2\.1'.*v3")


def test_import_refuses_a_truncated_video(exported, tmp_path):
    src = broken_copy(exported, tmp_path)
    video = src / "videos/observation.images.wrist/chunk-000/file-000.mp4"
    frames = read_mp4(video)
    write_mp4(video, frames[:-4], fps=FPS)
    refused(src, tmp_path / "store", r"file-000\.mp4 \(observation\.images\.wrist\): episode 2 needs 12 frames.* 8 ")


def test_import_refuses_a_shape_that_disagrees_with_the_data(exported, tmp_path):
    src = broken_copy(exported, tmp_path)
    edit_info(src, lambda info: info["features"]["observation.state"].update(shape=[5]))
    refused(src, tmp_path / "store", r"file-000\.parquet: column 'observation\.state' holds vectors of length \[4\]")
    src2 = broken_copy(exported, tmp_path / "b")
    edit_info(src2, lambda info: info["features"]["observation.images.front"].update(shape=[32, 48, 3]))
    refused(src2, tmp_path / "store", r"observation\.images\.front.*frames are \(32, 32, 3\).*\[32, 48, 3\]")


def test_import_refuses_missing_meta_files(exported, tmp_path):
    src = broken_copy(exported, tmp_path)
    (src / "meta/tasks.parquet").unlink()
    refused(src, tmp_path / "store", r"tasks\.parquet is missing")
    (src / "meta/info.json").unlink()
    refused(src, tmp_path / "store", r"info\.json is missing")


def test_existing_outputs_are_refused_and_left_alone(exported, tmp_path):
    root, _ = exported
    (tmp_path / "out").mkdir()
    (tmp_path / "out/keep.txt").write_text("mine")
    with pytest.raises(LeRobotError, match="already exists"):
        export_lerobot(root / "store", tmp_path / "out", fps=FPS)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]
    with pytest.raises(LeRobotError, match="already exists"):
        import_lerobot(root / "lerobot", tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_an_export_failing_midway_leaves_nothing(tmp_path, monkeypatch):
    make_store(tmp_path / "store")
    append = lerobot._Mp4Files.append
    calls = []

    def failing(self, frames):
        calls.append(self.key)
        if len(calls) == 4:  # the second episode's second camera: files are open, parquet rows written
            raise OSError("disk full")
        return append(self, frames)

    monkeypatch.setattr(lerobot._Mp4Files, "append", failing)
    with pytest.raises(OSError, match="disk full"):
        export_lerobot(tmp_path / "store", tmp_path / "out", fps=FPS)
    assert len(calls) == 4 and sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_bad_export_settings_are_refused_before_writing(tmp_path):
    odd = {"timestamp": KeySpec("float64", ()), "images/front": KeySpec("uint8", (31, 32, 3))}
    store = EpisodeStore.create(tmp_path / "store", odd)
    with store.writer("test") as w:
        w.begin("teleop")
        w.add({"timestamp": 0.0, "images/front": np.zeros((31, 32, 3), np.uint8)})
        w.end(success=False)
    with pytest.raises(LeRobotError, match=r"'images/front' has shape \(31, 32, 3\).*even"):
        export_lerobot(tmp_path / "store", tmp_path / "out", fps=FPS)
    with pytest.raises(LeRobotError, match="fps must be a positive integer"):
        export_lerobot(tmp_path / "store", tmp_path / "out", fps=7.5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]
