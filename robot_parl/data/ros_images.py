"""sensor_msgs/Image and CompressedImage payloads as numpy, for the ROS 2 node and the rosbag importer
(pure functions over message fields: neither rclpy nor rosbags is imported here)."""

from __future__ import annotations

import io

import numpy as np

CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1, "16UC1": 1}
_BY_LOWER = {name.lower(): name for name in CHANNELS}


def image_to_rgb(encoding: str, height: int, width: int, step: int, data: bytes | memoryview | np.ndarray,
                 is_bigendian: int = 0) -> np.ndarray:
    """A sensor_msgs/Image as HxWx3 uint8 RGB (rgb8, bgr8, mono8) or HxW uint16 depth (16UC1)."""
    encoding = _BY_LOWER.get(encoding.lower(), encoding)  # some recorders write "16uc1"
    if encoding not in CHANNELS:
        raise ValueError(f"image encoding {encoding!r} is not supported; expected one of {sorted(CHANNELS)}")
    itemsize = 2 if encoding == "16UC1" else 1
    row = width * CHANNELS[encoding] * itemsize
    raw = np.frombuffer(bytes(data) if isinstance(data, (memoryview, list)) else data, np.uint8)
    if step < row or raw.size < step * height:
        raise ValueError(f"{encoding} image of {width}x{height}: step {step} and {raw.size} bytes are too small "
                         f"(rows need {row} bytes)")
    rows = raw[: step * height].reshape(height, step)[:, :row]
    if encoding == "16UC1":
        return rows.copy().view(">u2" if is_bigendian else "<u2").astype(np.uint16).reshape(height, width)
    pixels = rows.reshape(height, width, CHANNELS[encoding])
    if encoding == "bgr8":
        return np.ascontiguousarray(pixels[..., ::-1])
    if encoding == "mono8":
        return np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(pixels)


def compressed_to_rgb(fmt: str, data: bytes | np.ndarray) -> np.ndarray:
    """A sensor_msgs/CompressedImage (JPEG or PNG) as HxWx3 uint8 RGB (decoded with Pillow)."""
    try:
        from PIL import Image
    except ImportError as err:
        raise RuntimeError("CompressedImage topics need Pillow (pip install pillow)") from err
    with Image.open(io.BytesIO(bytes(data))) as img:
        return np.asarray(img.convert("RGB"))
