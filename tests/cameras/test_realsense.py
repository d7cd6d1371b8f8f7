"""RealSenseCamera against the real pyrealsense2: a software device fed synthetic frames (realsense_rig.py),
and recordings of it."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
from realsense_rig import DEPTH_UNITS, FPS, H, Rig, W, color_frame, depth_frame, needs_pyrealsense2, rs

from robot_parl.cameras import CameraError, RealSenseCamera, WithCameras
from robot_parl.cameras.realsense import select_serial


def test_importing_cameras_needs_neither_torch_nor_pyrealsense2():
    code = ("import sys, robot_parl.cameras; "
            "print('torch' in sys.modules, 'pyrealsense2' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_missing_pyrealsense2_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pyrealsense2", None)  # makes `import pyrealsense2` fail
    with pytest.raises(ImportError, match=r"pip install pyrealsense2"):
        RealSenseCamera("123")
    with pytest.raises(ImportError, match=r"pip install pyrealsense2"):
        RealSenseCamera.from_bag(tmp_path / "x.db3")


def test_select_serial_errors_list_what_was_found():
    assert select_serial(["A1"], None) == "A1"
    assert select_serial(["A1", "B2"], "B2") == "B2"
    with pytest.raises(CameraError, match=r"no RealSense device found"):
        select_serial([], None)
    with pytest.raises(CameraError, match=r"2 RealSense devices connected \['A1', 'B2'\]: pass serial="):
        select_serial(["B2", "A1"], None)
    with pytest.raises(CameraError, match=r"serial 'C3' not found; connected: \['A1', 'B2'\]"):
        select_serial(["A1", "B2"], "C3")


def _open(rig: Rig, **kw) -> RealSenseCamera:
    kw = {"width": W, "height": H, "fps": FPS, **kw}
    return RealSenseCamera.from_device(rig.device, **kw)


@needs_pyrealsense2
def test_pixels_stamps_and_frame_numbers_round_trip():
    rig = Rig()
    with _open(rig) as cam:
        for n in (1, 2, 3):
            color, depth = color_frame(n), depth_frame(n)
            rig.push(n, 1000.0 + 33.25 * n, color, depth)
            frame = cam.read(timeout_s=15.0)
            assert frame.color.dtype == np.uint8 and frame.color.shape == (H, W, 3)
            np.testing.assert_array_equal(frame.color, color)
            # Aligned to a colour stream of identical intrinsics and identity extrinsics: the input itself.
            assert frame.depth.dtype == np.uint16 and frame.depth.shape == (H, W)
            np.testing.assert_array_equal(frame.depth, depth)
            assert frame.frame_number == n
            assert frame.stamp_ns == round((1000.0 + 33.25 * n) * 1e6)
            assert frame.clock == "hardware_clock"
            assert frame.depth_scale == pytest.approx(DEPTH_UNITS)
            # A device counter says nothing about host time: the arrival time stands in.
            assert frame.robot_stamp_ns == frame.host_ns
        assert cam.dropped == {"color": 0, "depth": 0}
        assert cam.stats()["frames"] == 3


@needs_pyrealsense2
def test_gaps_in_frame_numbers_count_as_drops():
    rig = Rig()
    with _open(rig) as cam:
        numbers = []
        for n in (1, 2, 5, 6, 9):
            rig.push(n, 10.0 * n, color_frame(n), depth_frame(n))
            numbers.append(cam.read(timeout_s=15.0).frame_number)
        assert numbers == [1, 2, 5, 6, 9]
        assert cam.dropped == {"color": 4, "depth": 4}


@needs_pyrealsense2
def test_depth_aligned_to_a_smaller_colour_image_has_the_colour_size():
    rig = Rig(color_size=(W // 2, H // 2))
    plane = np.full((H, W), 1536, np.uint16)  # 1.5 m
    with _open(rig, width=W // 2, height=H // 2) as cam:
        rig.push(1, 5.0, color_frame(1, (W // 2, H // 2)), plane)
        frame = cam.read(timeout_s=15.0)
    assert frame.color.shape == (H // 2, W // 2, 3)
    assert frame.depth.dtype == np.uint16 and frame.depth.shape == (H // 2, W // 2)
    np.testing.assert_array_equal(frame.depth, 1536)
    # Without alignment the depth image keeps its own size and values.
    rig = Rig(color_size=(W // 2, H // 2))
    depth = depth_frame(2)
    with _open(rig, width=W // 2, height=H // 2, align_to_color=False) as cam:
        rig.push(1, 5.0, color_frame(1, (W // 2, H // 2)), depth)
        np.testing.assert_array_equal(cam.read(timeout_s=15.0).depth, depth)


@needs_pyrealsense2
def test_colour_only_and_timeout():
    rig = Rig()
    with _open(rig, depth=False) as cam:
        with pytest.raises(TimeoutError, match=r"RealSense SYN0001: no new colour frame within 0.2 s"):
            cam.read(timeout_s=0.2)
        color = color_frame(7)
        rig.push(7, 70.0, color)
        frame = cam.read(timeout_s=15.0)
    np.testing.assert_array_equal(frame.color, color)
    assert frame.depth is None and frame.depth_scale == 0.0
    with pytest.raises(CameraError, match="closed"):
        cam.read()


@needs_pyrealsense2
def test_global_time_stamps_land_on_the_robot_clock_in_images():
    rig = Rig()
    with _open(rig, name="wrist", depth_name="wrist_depth") as cam:
        captured_ms = time.time() * 1e3 - 20.0  # 20 ms before now, on the host's wall clock
        color, depth = color_frame(3), depth_frame(3)
        rig.push(1, captured_ms, color, depth, domain=rs.timestamp_domain.global_time)
        images, stamps = cam.images(timeout_s=15.0)
    assert set(images) == {"wrist", "wrist_depth"} and set(stamps) == {"wrist", "wrist_depth"}
    np.testing.assert_array_equal(images["wrist"], color)
    np.testing.assert_array_equal(images["wrist_depth"], depth)
    age_ms = (time.monotonic_ns() - stamps["wrist"]) / 1e6
    assert 19.0 <= age_ms < 500.0, age_ms


@needs_pyrealsense2
def test_a_mode_the_device_lacks_is_named_with_the_modes_it_has():
    rig = Rig()
    with pytest.raises(CameraError, match=r"cannot stream colour 640x480@30 rgb8.*colour modes: \['64x48@30 rgb8'\]"):
        RealSenseCamera.from_device(rig.device, width=640, height=480, fps=30)


@needs_pyrealsense2
def test_with_cameras_adds_the_newest_images_to_a_robot_adapter_without_waiting(wait_for):
    from robot_parl.robots.sim.kinematic_arm import KinematicArm
    from robot_parl.robots.spec import load_spec

    arm = KinematicArm(load_spec("widowx"))
    rig = Rig()
    adapter = WithCameras(arm, [_open(rig, name="realsense")])
    try:
        # nothing delivered yet: the frame comes at once, without the camera, which it names as stale
        frame = adapter.read()
        assert set(frame.images) == {c.name for c in arm.spec.cameras} and frame.stale_cameras == ["realsense"]
        for n in (1, 2):
            rig.push(n, float(n), color_frame(n), depth_frame(n))
            assert wait_for(lambda n=n: adapter.readers[0].frames == n, 15)
        frame = adapter.read()
    finally:
        adapter.close()
    assert adapter.spec is arm.spec  # the rest is the adapter's own
    assert set(frame.images) == {c.name for c in arm.spec.cameras} | {"realsense"} and frame.stale_cameras == []
    np.testing.assert_array_equal(frame.images["realsense"], color_frame(2))  # the newest one
    assert frame.image_stamps_ns["realsense"] <= time.monotonic_ns()
    assert adapter.counters == {"camera_stalls": 0, "camera_errors": 0}


# recordings -----------------------------------------------------------------------------------------


def _record(path, serial: str, numbers: list[int]) -> None:
    rig = Rig(serial)
    recorder = rs.recorder(str(path), rig.device)
    with RealSenseCamera.from_device(recorder, width=W, height=H, fps=FPS) as cam:
        for n in numbers:
            # Playback is paced by when frames reached the recorder: space them like a 30 fps camera.
            time.sleep(1.0 / FPS)
            rig.push(n, 100.0 + 33.0 * n, color_frame(n), depth_frame(n))
            cam.read(timeout_s=15.0)
    recorder.pause()
    del recorder  # closes the file


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("realsense")
    paths = {"AAA": folder / "AAA.db3", "BBB": folder / "BBB.db3"}
    _record(paths["AAA"], "AAA", [1, 2, 4])
    # Opened as a connected device (no queue, newest frameset only, playback running from pipeline start):
    # two seconds of frames, so a loaded machine that starts the depth stream late still sees pairs.
    _record(paths["BBB"], "BBB", list(range(1, 61)))
    return paths


@needs_pyrealsense2
def test_a_recording_plays_once_with_its_frames_stamps_and_drops(recordings):
    # Raw depth: the recording keeps the depth units to 3 significant figures (0.000977), enough for align's float
    # arithmetic to move pixels on exact half-pixel boundaries.
    with RealSenseCamera.from_bag(recordings["AAA"], align_to_color=False) as cam:
        frames = [cam.read(timeout_s=15.0) for _ in range(3)]
        with pytest.raises(EOFError, match="end of recording after 3 frames"):
            cam.read(timeout_s=15.0)
        assert cam.dropped == {"color": 1, "depth": 1}
    assert [f.frame_number for f in frames] == [1, 2, 4]
    assert [f.stamp_ns for f in frames] == [round((100.0 + 33.0 * n) * 1e6) for n in (1, 2, 4)]
    for f, n in zip(frames, (1, 2, 4)):
        np.testing.assert_array_equal(f.color, color_frame(n))
        np.testing.assert_array_equal(f.depth, depth_frame(n))
        assert f.depth_scale == pytest.approx(DEPTH_UNITS, rel=1e-3)


@needs_pyrealsense2
def test_bad_recordings_are_named(tmp_path):
    with pytest.raises(CameraError, match=r"missing\.db3 does not exist"):
        RealSenseCamera.from_bag(tmp_path / "missing.db3")
    (tmp_path / "junk.bag").write_bytes(b"not a bag" * 10)
    with pytest.raises(CameraError, match=r"junk\.bag: could not convert it from \.bag to \.db3"):
        RealSenseCamera.from_bag(tmp_path / "junk.bag")
    (tmp_path / "junk.db3").write_bytes(b"not sqlite" * 10)
    with pytest.raises(CameraError, match=r"junk\.db3 cannot be played"):
        RealSenseCamera.from_bag(tmp_path / "junk.db3")


@needs_pyrealsense2
def test_serial_selection_among_devices_in_a_context(recordings):
    ctx = rs.context()
    # Recordings loaded into a context are listed like connected devices (keep the handles alive).
    devices = [ctx.load_device(str(recordings[s])) for s in ("AAA", "BBB")]
    opts = {"width": W, "height": H, "fps": FPS, "context": ctx}
    with pytest.raises(CameraError, match=r"2 RealSense devices connected \['AAA', 'BBB'\]: pass serial="):
        RealSenseCamera(None, **opts)
    with pytest.raises(CameraError, match=r"serial 'CCC' not found; connected: \['AAA', 'BBB'\]"):
        RealSenseCamera("CCC", **opts)
    with RealSenseCamera("BBB", **opts) as cam:
        frame = cam.read(timeout_s=15.0)
    assert cam.label == "RealSense BBB"
    np.testing.assert_array_equal(frame.color, color_frame(frame.frame_number))
    del devices
