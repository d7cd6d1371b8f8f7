"""Pose math and outgoing image fields for the ROS 2 node (no rclpy import: pure functions over message fields).

Incoming images are decoded by robot_parl.data.ros_images, shared with the rosbag importer."""

from __future__ import annotations

import numpy as np


def rgb_to_image_fields(rgb: np.ndarray) -> dict:
    """The fields of an rgb8 sensor_msgs/Image for an HxWx3 uint8 array."""
    h, w, _ = rgb.shape
    return {"encoding": "rgb8", "height": h, "width": w, "step": w * 3, "is_bigendian": 0,
            "data": np.ascontiguousarray(rgb, np.uint8).tobytes()}


def rpy_to_quat(rpy: np.ndarray) -> np.ndarray:
    """Roll, pitch, yaw (rad) -> quaternion xyzw."""
    r, p, y = (np.asarray(rpy, np.float64) / 2).tolist()
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.array([sr * cp * cy - cr * sp * sy, cr * sp * cy + sr * cp * sy,
                     cr * cp * sy - sr * sp * cy, cr * cp * cy + sr * sp * sy])


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of quaternions xyzw (a then b in the world frame: a * b applies b first)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz])


def quat_to_rpy(q: np.ndarray) -> np.ndarray:
    """Quaternion xyzw -> roll, pitch, yaw (rad)."""
    x, y, z, w = q
    roll = np.arctan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = np.arcsin(np.clip(2 * (w * y - z * x), -1.0, 1.0))
    yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return np.array([roll, pitch, yaw])


def quat_conj(q: np.ndarray) -> np.ndarray:
    """Conjugate of a quaternion xyzw (the inverse rotation for a unit quaternion)."""
    return np.array([-q[0], -q[1], -q[2], q[3]], np.float64)


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vector ``v`` rotated by the unit quaternion ``q`` (xyzw)."""
    return quat_mul(quat_mul(q, np.r_[np.asarray(v, np.float64), 0.0]), quat_conj(q))[:3]


def transform_compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Transforms as xyz + quaternion xyzw: frame c in frame a, given b in a (``a``) and c in b (``b``)."""
    position = np.asarray(a[:3], np.float64) + quat_rotate(a[3:7], b[:3])
    orientation = quat_mul(a[3:7], b[3:7])
    return np.r_[position, orientation / np.linalg.norm(orientation)]


def transform_inverse(t: np.ndarray) -> np.ndarray:
    """The inverse of a transform xyz + unit quaternion xyzw (a in b, given b in a)."""
    inverse = quat_conj(t[3:7])
    return np.r_[-quat_rotate(inverse, t[:3]), inverse]


def compose_pose(pose: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Pose target = current pose (xyz + quaternion xyzw) moved by a 6-D delta (xyz m, rpy rad, world frame)."""
    position = np.asarray(pose[:3], np.float64) + np.asarray(delta[:3], np.float64)
    orientation = quat_mul(rpy_to_quat(delta[3:6]), np.asarray(pose[3:7], np.float64))
    return np.r_[position, orientation / np.linalg.norm(orientation)]
