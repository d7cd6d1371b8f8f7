"""Rigid transforms as 4x4 numpy arrays (pure numpy): rotation vectors, quaternions, means, differences.

Naming: ``a_T_b`` is the pose of frame b in frame a (it maps points in b to a).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def skew(v: np.ndarray) -> np.ndarray:
    """The cross-product matrix of a 3-vector."""
    x, y, z = np.asarray(v, np.float64).reshape(3)
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


def rotation_from_rvec(rvec: np.ndarray) -> np.ndarray:
    """Rodrigues: the rotation matrix of a rotation vector (axis times angle in radians)."""
    r = np.asarray(rvec, np.float64).reshape(3)
    angle = float(np.linalg.norm(r))
    if angle < 1e-12:
        return np.eye(3) + skew(r)
    k = skew(r / angle)
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


def quat_from_rotation(rotation: np.ndarray) -> np.ndarray:
    """Unit quaternion xyzw (w >= 0) of a rotation matrix."""
    m = np.asarray(rotation, np.float64)
    trace = np.trace(m)
    # Shepperd's method: divide by the largest of the four candidate terms for stability near 180 degrees.
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def rotation_from_quat(quat_xyzw: np.ndarray) -> np.ndarray:
    """Rotation matrix of a quaternion xyzw (normalised first)."""
    q = np.asarray(quat_xyzw, np.float64).reshape(4)
    norm = np.linalg.norm(q)
    if norm < 1e-9:
        raise ValueError(f"quaternion {q.tolist()} has zero length")
    x, y, z, w = q / norm
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def rvec_from_rotation(rotation: np.ndarray) -> np.ndarray:
    """Rotation vector (axis times angle in radians, angle in [0, pi]) of a rotation matrix."""
    q = quat_from_rotation(rotation)
    sin_half = float(np.linalg.norm(q[:3]))
    if sin_half < 1e-12:
        return np.zeros(3)
    return q[:3] / sin_half * 2.0 * np.arctan2(sin_half, q[3])


def rotation_angle_deg(rotation: np.ndarray) -> float:
    """The angle of a rotation matrix in degrees, in [0, 180]."""
    return float(np.degrees(np.linalg.norm(rvec_from_rotation(rotation))))


def make_transform(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """4x4 transform from a 3x3 rotation and a 3-vector translation."""
    t = np.eye(4)
    t[:3, :3] = rotation
    t[:3, 3] = np.asarray(translation, np.float64).reshape(3)
    return t


def from_rvec_tvec(rvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    """4x4 transform from OpenCV's rotation vector and translation."""
    return make_transform(rotation_from_rvec(rvec), tvec)


def invert(transform: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform."""
    r, t = transform[:3, :3], transform[:3, 3]
    return make_transform(r.T, -r.T @ t)


def pose_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Rotation angle (degrees) and translation distance (same unit as the inputs) between two poses."""
    return rotation_angle_deg(a[:3, :3].T @ b[:3, :3]), float(np.linalg.norm(a[:3, 3] - b[:3, 3]))


def mean_transform(transforms: Sequence[np.ndarray]) -> np.ndarray:
    """The chordal mean of rigid transforms: rotations averaged and projected back onto SO(3)."""
    stack = np.asarray(transforms, np.float64)
    u, _, vt = np.linalg.svd(stack[:, :3, :3].sum(axis=0))
    rotation = u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt
    return make_transform(rotation, stack[:, :3, 3].mean(axis=0))


def pose7_to_matrix(pose: Sequence[float]) -> np.ndarray:
    """4x4 transform from xyz + quaternion xyzw (the project's end-effector pose layout)."""
    p = np.asarray(pose, np.float64).reshape(-1)
    if p.shape != (7,):
        raise ValueError(f"expected a pose of 7 numbers (xyz + quaternion xyzw), got {p.shape[0]}")
    return make_transform(rotation_from_quat(p[3:]), p[:3])


def matrix_to_pose7(transform: np.ndarray) -> np.ndarray:
    """xyz + quaternion xyzw of a 4x4 transform."""
    return np.r_[transform[:3, 3], quat_from_rotation(transform[:3, :3])]


def axis_spread_deg(vectors: Sequence[np.ndarray]) -> tuple[float, np.ndarray]:
    """How far unit vectors spread around their dominant line: (RMS angle from it in degrees, the line).

    A vector and its opposite count as the same line (rotation axes have no preferred sign).
    """
    v = np.asarray(vectors, np.float64).reshape(-1, 3)
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    eigenvalues, eigenvectors = np.linalg.eigh(v.T @ v / len(v))
    off_line = float(np.clip(eigenvalues[0] + eigenvalues[1], 0.0, 1.0))
    return float(np.degrees(np.arcsin(np.sqrt(off_line)))), eigenvectors[:, 2]
