"""Image and pose conversions of the ROS 2 node (pure functions, real message layouts)."""

import io

import numpy as np
import pytest
from PIL import Image as PILImage
from robot_parl_ros.convert import compose_pose, quat_to_rpy, rpy_to_quat

from robot_parl.data.ros_images import compressed_to_rgb, image_to_rgb


def test_image_encodings_with_row_padding():
    rgb = np.random.default_rng(0).integers(0, 256, (3, 4, 3), dtype=np.uint8)
    padded = np.zeros((3, 16), np.uint8)  # step 16 > 12 bytes of pixels per row
    padded[:, :12] = rgb.reshape(3, 12)
    np.testing.assert_array_equal(image_to_rgb("rgb8", 3, 4, 16, padded.tobytes()), rgb)
    np.testing.assert_array_equal(image_to_rgb("bgr8", 3, 4, 12, rgb[..., ::-1].tobytes()), rgb)
    mono = rgb[..., 0]
    np.testing.assert_array_equal(image_to_rgb("mono8", 3, 4, 4, mono.tobytes()), np.repeat(mono[..., None], 3, 2))
    depth = np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000
    np.testing.assert_array_equal(image_to_rgb("16UC1", 3, 4, 8, depth.tobytes()), depth)
    np.testing.assert_array_equal(image_to_rgb("16UC1", 3, 4, 8, depth.astype(">u2").tobytes(), 1), depth)
    with pytest.raises(ValueError, match="'yuv422' is not supported"):
        image_to_rgb("yuv422", 3, 4, 8, b"")
    with pytest.raises(ValueError, match="too small"):
        image_to_rgb("rgb8", 3, 4, 12, b"\0" * 10)


def test_compressed_png_and_pose_composition():
    rgb = np.random.default_rng(1).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    buf = io.BytesIO()
    PILImage.fromarray(rgb).save(buf, format="PNG")
    np.testing.assert_array_equal(compressed_to_rgb("png", buf.getvalue()), rgb)
    rpy = np.array([0.1, -0.2, 0.3])
    np.testing.assert_allclose(quat_to_rpy(rpy_to_quat(rpy)), rpy, atol=1e-12)
    target = compose_pose(np.r_[0.3, 0.0, 0.2, rpy_to_quat([0, 0, 0.5])], np.r_[0.01, 0, -0.02, 0, 0, 0.1])
    np.testing.assert_allclose(target[:3], [0.31, 0.0, 0.18])
    np.testing.assert_allclose(quat_to_rpy(target[3:]), [0, 0, 0.6], atol=1e-12)
