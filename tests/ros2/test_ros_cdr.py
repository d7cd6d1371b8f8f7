"""Image decoding checked against two independent CDR implementations: messages serialized by rclpy are
read by rosbags (the rosbag importer's library) and back, and both decode to the same pixels."""

import numpy as np
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import Image

from robot_parl.data.ros_images import image_to_rgb

TYPESTORE = get_typestore(Stores.ROS2_JAZZY)


def _decode(msg) -> np.ndarray:
    return image_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data, msg.is_bigendian)


def test_rclpy_and_rosbags_cdr_agree_on_images():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    padded = np.zeros((5, 24), np.uint8)  # rows padded from 21 to 24 bytes
    padded[:, :21] = rgb[..., ::-1].reshape(5, 21)
    depth = rng.integers(0, 65535, (5, 7), dtype=np.uint16)
    cases = [(Image(height=5, width=7, encoding="bgr8", step=24, data=padded.tobytes()), rgb),
             (Image(height=5, width=7, encoding="16UC1", step=14, is_bigendian=1,
                    data=depth.astype(">u2").tobytes()), depth)]
    for msg, expected in cases:
        msg.header.frame_id = "camera"
        msg.header.stamp.sec, msg.header.stamp.nanosec = 12, 345
        cdr = serialize_message(msg)
        theirs = TYPESTORE.deserialize_cdr(cdr, "sensor_msgs/msg/Image")
        assert (theirs.header.stamp.sec, theirs.header.stamp.nanosec, theirs.header.frame_id) == (12, 345, "camera")
        np.testing.assert_array_equal(_decode(theirs), expected)
        back = deserialize_message(bytes(TYPESTORE.serialize_cdr(theirs, "sensor_msgs/msg/Image")), Image)
        np.testing.assert_array_equal(_decode(back), expected)
        # (not compared byte for byte: the alignment padding rclpy writes after the header is unspecified)
