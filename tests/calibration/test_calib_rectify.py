"""Undistort + crop + resize on the robot side, checked point by point, and applied by RobotSide."""

import dataclasses

import cv2
import numpy as np
import pytest
from calib_synth import BOARD, D_TRUE, K_TRUE, Renderer, views

from robot_parl.calibration.detect import BoardDetector
from robot_parl.robots.camera_calibration import CameraCalibration, save_calibration
from robot_parl.robots.rectify import Rectifier


def _calib(k=K_TRUE, size=(640, 480)) -> CameraCalibration:
    return CameraCalibration(rig="bench", camera="front", date="2025-01-01T00:00:00+00:00", board="b",
                             image_size=list(size), camera_matrix=np.asarray(k).tolist(), distortion=D_TRUE.tolist())


def _coordinates(width, height):
    """A float image whose pixels hold their own (x, y) coordinates."""
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return np.dstack([xs, ys, np.zeros_like(xs)])


@pytest.mark.parametrize("out_size", [(640, 480), (320, 320), (128, 128), (200, 100)])
def test_rectified_pixels_see_what_the_rectified_camera_matrix_says(out_size):
    """A 3D point seen at pixel p in the output must come from where the real lens puts it in the raw frame."""
    calib = _calib()
    rect = Rectifier(calib, out_size)
    sampled = rect(_coordinates(640, 480))
    assert sampled.shape == (out_size[1], out_size[0], 3)
    rng = np.random.default_rng(0)
    k_out = rect.camera_matrix
    # Random 3D points whose rectified pixels fall inside the output.
    pixels = rng.uniform([2, 2], [out_size[0] - 3, out_size[1] - 3], (50, 2))
    rays = np.linalg.solve(k_out, np.c_[pixels, np.ones(len(pixels))].T).T
    raw, _ = cv2.projectPoints(rays * 0.7, np.zeros(3), np.zeros(3), K_TRUE, D_TRUE)
    # Bilinear lookup of the sampled coordinates at the rectified pixels.
    lookup = np.array([cv2.getRectSubPix(sampled, (1, 1), (float(u), float(v)))[0, 0, :2] for u, v in pixels])
    # Area averaging of a lens-curved ramp is exact to within a fraction of a raw pixel.
    assert np.abs(lookup - raw.reshape(-1, 2)).max() < 0.15
    # alpha = 0: no pixel of the output comes from outside the raw frame.
    assert sampled[..., 0].min() >= -0.5 and sampled[..., 0].max() <= 639.5
    assert sampled[..., 1].min() >= -0.5 and sampled[..., 1].max() <= 479.5


def test_rectified_board_fits_a_distortion_free_camera():
    renderer, rng = Renderer(), np.random.default_rng(3)
    detector = BoardDetector(BOARD)
    rect = Rectifier(_calib(), (640, 480))
    for pose in views(3, 3, distance=(0.3, 0.45)):
        raw = renderer.render(pose, rng)
        found = detector.detect(rect(raw))
        assert found is not None
        assert detector.pose(found, rect.camera_matrix, np.zeros(5))[1] < 0.3


def test_camera_info_of_rectified_frames():
    rect = Rectifier(_calib(), (320, 240))
    info = rect.camera_info()
    assert (info["width"], info["height"]) == (320, 240)
    assert info["d"] == [0.0] * 5
    assert info["k"] == rect.camera_matrix.reshape(-1).tolist()
    assert np.array(info["p"]).reshape(3, 4)[:, :3].tolist() == rect.camera_matrix.tolist()


def test_depth_uses_nearest_samples_and_sizes_are_checked():
    rect = Rectifier(_calib(), (160, 120), nearest=True, source="calib.yaml")
    depth = np.random.default_rng(1).integers(500, 3000, (480, 640)).astype(np.uint16)
    out = rect(depth)
    assert out.dtype == np.uint16 and out.shape == (120, 160)
    assert set(np.unique(out)) <= set(np.unique(depth))  # no depth invented between surfaces
    with pytest.raises(ValueError, match="camera front: frame is 320x240 but calib.yaml is for 640x480"):
        rect(np.zeros((240, 320, 3), np.uint8))


def test_robot_side_sends_rectified_frames(tmp_path, zenoh_pair, wait_for):
    from robot_parl.robots.side import RobotSide, SensorFrame
    from robot_parl.robots.spec import load_spec
    from robot_parl.transport.channel import Inbox, subscribe
    from robot_parl.transport.keys import KeySpace
    from robot_parl.transport.messages import Observation

    path = save_calibration(_calib(), tmp_path / "bench" / "front.yaml")
    spec = load_spec("widowx", [f"cameras=[{{name: front, width: 320, height: 240, calibration: '{path}'}}, "
                                "{name: wrist, width: 64, height: 48}]"])
    raw = Renderer().render(views(1, 4)[0], np.random.default_rng(4))
    wrist = np.full((48, 64, 3), 7, np.uint8)

    class Camera:
        def __init__(self):
            self.spec = spec

        def read(self):
            return SensorFrame(1, np.zeros(7, np.float32), {"front": raw, "wrist": wrist})

        def apply(self, values):
            pass

        def hold(self):
            pass

        def reset(self):
            pass

    robot_session, actor_session = zenoh_pair
    keys = KeySpace("calib", "r0")
    inbox = Inbox(Observation)
    sub = subscribe(actor_session, keys.obs, inbox)
    side = RobotSide(Camera(), robot_session, keys)
    try:
        assert set(side.rectifiers) == {"front"}
        deadline_ok = wait_for(lambda: (side.tick(), inbox.pending())[1] > 0, timeout=10)
        assert deadline_ok
        obs = inbox.get(timeout=1)
        expected = Rectifier(_calib(), (320, 240))(raw)
        np.testing.assert_array_equal(obs.images["front"], expected)
        np.testing.assert_array_equal(obs.images["wrist"], wrist)  # uncalibrated cameras pass through
    finally:
        side.close()
        sub.undeclare()


def test_a_missing_calibration_file_stops_the_robot_side_early(tmp_path):
    from robot_parl.robots.rectify import rectifiers_for
    from robot_parl.robots.spec import CameraSpec

    cam = dataclasses.replace(CameraSpec(), calibration=str(tmp_path / "nope.yaml"))
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        rectifiers_for([cam])
