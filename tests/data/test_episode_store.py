"""The episode store never loses or corrupts a committed episode: round trips, refused input, the writer
lock, SIGKILLed writers and readers racing a writer (real zarr on disk, real processes)."""

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from robot_parl.data.episode_store import EpisodeStore, KeySpec, StoreError, StoreLocked

SCHEMA = {"timestamp": KeySpec("float64", ()), "images/front": KeySpec("uint8", (16, 16, 3)),
          "proprio": KeySpec("float32", (4,)), "action": KeySpec("float32", (7,)),
          "candidates": KeySpec("float32", (3, 7), optional=True)}

# Episode e has 5 + e % 7 frames whose contents are a function of (e, j): a reader can check any of them.
WRITER = """
import sys, numpy as np
from robot_parl.data.episode_store import EpisodeStore
store = EpisodeStore(sys.argv[1])
with store.writer("test writer") as w:
    e = len(store)
    print("ready", flush=True)
    while True:
        w.begin("rollout", instruction=f"episode {e}", optional_keys=("candidates",) if e % 2 else ())
        for j in range(5 + e % 7):
            frame = {"timestamp": e * 1000.0 + j, "images/front": np.full((16, 16, 3), (e * 31 + j) % 256, np.uint8),
                     "proprio": np.full(4, e + j / 100, np.float32), "action": np.full(7, -e - j / 100, np.float32)}
            if e % 2:
                frame["candidates"] = np.full((3, 7), e * 10 + j, np.float32)
            w.add(frame)
        w.end(success=e % 3 == 0)
        e += 1
"""


def frame(e, j, candidates=False):
    f = {"timestamp": e * 1000.0 + j, "images/front": np.full((16, 16, 3), (e * 31 + j) % 256, np.uint8),
         "proprio": np.full(4, e + j / 100, np.float32), "action": np.full(7, -e - j / 100, np.float32)}
    if candidates:
        f["candidates"] = np.full((3, 7), e * 10 + j, np.float32)
    return f


def check_episode(store, e):
    """Episode e is complete and bit-identical to what the writer was given."""
    info = store.info(e)
    n = 5 + e % 7
    assert len(info) == n and info.instruction == f"episode {e}" and info.success == (e % 3 == 0)
    assert info.keys == (("candidates",) if e % 2 else ())
    data = store.episode(e)
    expected = [frame(e, j, bool(e % 2)) for j in range(n)]
    for key in expected[0]:
        np.testing.assert_array_equal(data[key], np.stack([f[key] for f in expected]), err_msg=key)
    assert set(data) == set(expected[0])


def spawn_writer(path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_round_trip_with_optional_keys(tmp_path):
    store = EpisodeStore.create(tmp_path / "s", SCHEMA, robot_spec={"name": "widowx"})
    with store.writer("me") as w:
        for e in range(4):
            w.begin("rollout", instruction=f"episode {e}", optional_keys=("candidates",) if e % 2 else ())
            for j in range(5 + e % 7):
                w.add(frame(e, j, bool(e % 2)))
            info = w.end(success=e % 3 == 0)
            assert info.index == e
    reader = EpisodeStore(tmp_path / "s")
    assert len(reader) == 4 and reader.robot_spec == {"name": "widowx"}
    for e in range(4):
        check_episode(reader, e)
    with pytest.raises(IndexError, match="not committed"):
        reader.info(4)


def test_bad_frames_are_refused_and_nothing_is_written(tmp_path):
    store = EpisodeStore.create(tmp_path / "s", SCHEMA)
    with store.writer("me") as w:
        w.begin("teleop", instruction="episode 0")
        w.add(frame(0, 0))
        bad = [({"action": np.zeros(6, np.float32)}, "shape"), ({"proprio": np.zeros(4, np.complex64)}, "dtype"),
               ({"action": np.full(7, np.nan, np.float32)}, "NaN"), ({"timestamp": -1.0}, "not after"),
               ({"candidates": np.zeros((3, 7), np.float32)}, "unexpected")]
        for change, message in bad:
            with pytest.raises(StoreError, match=message):
                w.add({**frame(0, 1), **change})
        f = frame(0, 1)
        del f["proprio"]
        with pytest.raises(StoreError, match="missing \\['proprio'\\]"):
            w.add(f)
        for j in range(1, 5):
            w.add(frame(0, j))
        w.end(success=True)
        with pytest.raises(StoreError, match="source"):
            w.begin("dream")
        with pytest.raises(StoreError, match="not an optional key"):
            w.begin("rollout", optional_keys=("action",))
    check_episode(EpisodeStore(tmp_path / "s"), 0)
    with pytest.raises(StoreError, match="already holds"):
        EpisodeStore.create(tmp_path / "s", SCHEMA)
    with pytest.raises(StoreError, match="not an episode store"):
        EpisodeStore(tmp_path)


def test_one_writer_at_a_time_and_discard(tmp_path):
    store = EpisodeStore.create(tmp_path / "s", SCHEMA)
    w = store.writer("learner on gpu-1")
    with pytest.raises(StoreLocked, match="learner on gpu-1"):
        store.writer("collector")
    w.begin("sim")
    w.add(frame(0, 0))
    w.discard()
    w.close()
    with store.writer("collector") as w2:
        w2.begin("sim", instruction="episode 0")
        for j in range(5):
            w2.add(frame(0, j))
        w2.end(success=True)
    store.refresh()
    assert len(store) == 1 and store.num_frames == 5


def test_sigkilled_writers_never_break_committed_episodes(tmp_path):
    path = tmp_path / "s"
    EpisodeStore.create(path, SCHEMA)
    rng = random.Random(0)
    committed_before = 0
    for i in range(12):
        proc = spawn_writer(path)
        if i % 2:  # every other writer commits at least one episode first, however loaded the machine is
            deadline = time.monotonic() + 30
            while len(EpisodeStore(path)) == committed_before and time.monotonic() < deadline:
                time.sleep(0.01)
        time.sleep(rng.uniform(0.02, 0.4))  # then dies at a random point, often mid-episode
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        store = EpisodeStore(path)  # opens without error after every kill
        assert len(store) >= committed_before
        for e in range(len(store)):
            check_episode(store, e)
        committed_before = len(store)
    assert committed_before >= 6  # the writers got real work done between kills
    with store.writer("after the crashes") as w:  # the partial episode is dropped, appending goes on
        assert w.frames == store.num_frames
        e = len(store)
        w.begin("rollout", instruction=f"episode {e}", optional_keys=("candidates",) if e % 2 else ())
        for j in range(5 + e % 7):
            w.add(frame(e, j, bool(e % 2)))
        w.end(success=e % 3 == 0)
    store.refresh()
    check_episode(store, e)


def test_readers_see_only_complete_episodes_while_a_writer_appends(tmp_path):
    path = tmp_path / "s"
    EpisodeStore.create(path, SCHEMA)
    proc = spawn_writer(path)
    try:
        reader = EpisodeStore(path)
        checked = 0
        deadline = time.monotonic() + 20
        while checked < 15 and time.monotonic() < deadline:
            reader.refresh()
            for e in range(checked, len(reader)):
                check_episode(reader, e)
            checked = len(reader)
        assert checked >= 15
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_normalization_statistics_are_saved_with_the_store(tmp_path):
    store = EpisodeStore.create(tmp_path / "s", SCHEMA)
    with store.writer("me") as w:
        for e in range(3):
            w.begin("teleop")
            for j in range(5 + e % 7):
                w.add(frame(e, j, False))
            w.end(success=True)
        with pytest.raises(StoreError, match="no normalization statistics"):
            EpisodeStore(tmp_path / "s").norm_stats()
        saved = w.save_norm_stats(["action", "proprio"], masks={"action": [True] * 6 + [False]})
        with pytest.raises(StoreError, match="'images/front' is an image"):
            w.save_norm_stats(["images/front"])
        with pytest.raises(StoreError, match="'candidates' is optional"):
            w.save_norm_stats(["candidates"])
    reader = EpisodeStore(tmp_path / "s")
    stats = reader.norm_stats()
    assert stats == saved
    actions = np.concatenate([reader.episode(e)["action"] for e in range(3)]).astype(np.float64)
    np.testing.assert_allclose(stats["action"]["q01"], np.quantile(actions, 0.01, axis=0))
    np.testing.assert_allclose(stats["action"]["q99"], np.quantile(actions, 0.99, axis=0))
    np.testing.assert_allclose(stats["action"]["std"], actions.std(axis=0))
    assert stats["action"]["mask"][-1] is False and stats["action"]["num_frames"] == [len(actions)]
    with store.writer("me") as w:  # a new episode makes the saved statistics stale
        w.begin("teleop")
        w.add(frame(9, 0, False))
        w.end(success=False)
    with pytest.raises(StoreError, match=r"cover 18 frames but 19 are committed"):
        EpisodeStore(tmp_path / "s").norm_stats()


def test_statistics_refuse_nan():
    from robot_parl.data.stats import key_stats

    with pytest.raises(ValueError, match="1 frames hold NaN"):
        key_stats(np.array([[0.0, 1.0], [np.nan, 2.0]]))


def test_outcome_sources_are_kept_and_stores_made_before_them_gain_the_columns(tmp_path):
    import shutil

    from robot_parl.data.episode_store import Outcome

    store = EpisodeStore.create(tmp_path / "s", SCHEMA)
    with store.writer("test") as w:
        w.begin("rollout", instruction="episode 0")
        w.add(frame(0, 0))
        w.end(True, outcome=Outcome("classifier", 123456789012, 1))
        w.begin("rollout", instruction="episode 1")
        w.add(frame(1, 0))
        with pytest.raises(StoreError, match="outcome source must be one of"):
            w.end(False, outcome=Outcome("guess"))
        w.end(False, outcome=Outcome("operator", 123456789012, 1))  # the operator overrode the classifier
    store.refresh()
    assert [e.outcome for e in store.episodes()] == [Outcome("classifier", 123456789012, 1),
                                                     Outcome("operator", 123456789012, 1)]
    # a store written before the outcome columns existed: its rows read as unrecorded, its writer adds them
    for column in ("outcome_source", "classifier_version", "classifier_success"):
        shutil.rmtree(tmp_path / "s" / "meta" / "episodes" / column)
    old = EpisodeStore(tmp_path / "s")
    assert [e.outcome for e in old.episodes()] == [Outcome(), Outcome()] and old.info(1).success is False
    with old.writer("test") as w:
        w.begin("teleop", instruction="episode 2")
        w.add(frame(2, 0))
        w.end(True, outcome=Outcome("operator"))
    old.refresh()
    assert [e.outcome for e in old.episodes()] == [Outcome(), Outcome(), Outcome("operator")]


def test_episodes_name_their_robot_and_stores_made_before_gain_the_column(tmp_path):
    import shutil

    store = EpisodeStore.create(tmp_path / "s", SCHEMA)
    with store.writer("test") as w:
        for i, robot in enumerate(("arm1", "arm2")):
            w.begin("rollout", episode_id=f"e{i}", robot=robot)
            w.add(frame(i, 0))
            w.end(False)
    store.refresh()
    assert [e.robot for e in store.episodes()] == ["arm1", "arm2"]
    shutil.rmtree(tmp_path / "s" / "meta" / "episodes" / "robot")  # as a store written before the column
    old = EpisodeStore(tmp_path / "s")
    assert [e.robot for e in old.episodes()] == ["", ""]
    with old.writer("test") as w:
        w.begin("rollout", episode_id="e2", robot="arm3")
        w.add(frame(2, 0))
        w.end(True)
    old.refresh()
    assert [e.robot for e in old.episodes()] == ["", "", "arm3"]



def test_a_creation_cut_short_leaves_no_half_made_store(tmp_path, monkeypatch):
    import os

    def killed(*_):
        raise KeyboardInterrupt  # the process dies after writing the arrays, before the store is in place

    monkeypatch.setattr(os, "rename", killed)
    with pytest.raises(KeyboardInterrupt):
        EpisodeStore.create(tmp_path / "s", SCHEMA)
    monkeypatch.undo()
    assert not (tmp_path / "s").exists()  # nothing a reader would take for a store
    with pytest.raises(StoreError, match="not an episode store"):
        EpisodeStore(tmp_path / "s")
    store = EpisodeStore.create(tmp_path / "s", SCHEMA)  # the next creation works, over what the last one left
    assert len(store) == 0 and set(store.schema) == set(SCHEMA)
    assert [p.name for p in tmp_path.iterdir()] == ["s"]
