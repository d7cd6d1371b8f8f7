"""A small TF buffer: the latest transform of every frame from /tf and /tf_static, composed along the tree.

tf2_ros is not used: it is not installable from PyPI (the node's tests run on PyPI wheels), and the robot
side needs one lookup per control tick, not tf2's history. No rclpy here: the node feeds message fields in.

As in tf2, every child frame has one parent, and its newest transform wins (a frame re-published under
another parent moves there). A lookup composes the chain from the base frame up to the common ancestor and
down to the target frame with each link's newest transform (not interpolated to a common time: the robot
side wants the pose now), and refuses a chain in which a dynamic link is older than the allowed age.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot_parl_ros.convert import transform_compose, transform_inverse

IDENTITY = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])


@dataclass
class _Link:
    parent: str
    transform: np.ndarray  # the child frame in the parent frame: xyz + quaternion xyzw
    stamp_ns: int
    static: bool


class TransformTree:
    """Latest transforms by child frame; :meth:`lookup` gives one frame's pose in another. Not thread-safe."""

    def __init__(self) -> None:
        self._links: dict[str, _Link] = {}

    def set(self, parent: str, child: str, transform: np.ndarray, stamp_ns: int, static: bool = False) -> None:
        """Record ``child``'s pose in ``parent`` (xyz + quaternion xyzw), replacing the child's previous link."""
        self._links[child] = _Link(parent, np.asarray(transform, np.float64), stamp_ns, static)

    def frames(self) -> list[str]:
        """Every frame named by a transform, as child or as parent."""
        return sorted(set(self._links) | {link.parent for link in self._links.values()})

    def _ancestors(self, frame: str) -> dict[str, np.ndarray]:
        """{ancestor: ``frame``'s pose in it} from ``frame`` itself (identity) up to its root, in that order."""
        chain = {frame: IDENTITY}
        last = frame
        while (link := self._links.get(last)) is not None:
            if link.parent in chain:
                raise LookupError(f"TF frames form a loop through {link.parent!r}")
            chain[link.parent] = transform_compose(link.transform, chain[last])
            last = link.parent
        return chain

    def _check_age(self, frame: str, ancestor: str, now_ns: int, max_age_s: float) -> None:
        while frame != ancestor:
            link = self._links[frame]
            age_s = (now_ns - link.stamp_ns) * 1e-9
            if not link.static and age_s > max_age_s:
                raise LookupError(f"the transform {link.parent!r} -> {frame!r} is {age_s:.2f} s old "
                                  f"(allowed: {max_age_s:g} s)")
            frame = link.parent

    def lookup(self, base: str, frame: str, now_ns: int, max_age_s: float) -> np.ndarray:
        """``frame``'s pose in ``base`` (xyz + quaternion xyzw) at ``now_ns`` (the stamps' clock).

        Raises LookupError naming what is missing: an unknown frame, two frames in trees that do not
        connect, or a dynamic transform on the chain older than ``max_age_s``.
        """
        known = self.frames()
        for name in (frame, base):
            if name not in known:
                raise LookupError(f"no transform names frame {name!r} (frames seen: {known or 'none'})")
        up_from_frame = self._ancestors(frame)
        up_from_base = self._ancestors(base)
        common = next((name for name in up_from_base if name in up_from_frame), None)
        if common is None:
            ends = [f"{name!r} leads up to {list(chain)[-1]!r}" if len(chain) > 1 else f"{name!r} has no parent"
                    for name, chain in ((frame, up_from_frame), (base, up_from_base))]
            raise LookupError(f"frames {frame!r} and {base!r} are not connected: {ends[0]}, {ends[1]}")
        self._check_age(frame, common, now_ns, max_age_s)
        self._check_age(base, common, now_ns, max_age_s)
        return transform_compose(transform_inverse(up_from_base[common]), up_from_frame[common])
