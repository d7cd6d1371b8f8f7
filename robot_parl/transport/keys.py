"""The zenoh key space: robot_parl/<session>/<robot>/{obs,action,control,status,teleop,step,actor,space,
weights/<part>}.

The learner serves every robot of a session under the robot name ``learner``: its status and weights
are ``robot_parl/<session>/learner/{status,weights/<part>}``; it hears all robots' steps and actor
statuses through :meth:`KeySpace.all_robots`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROOT = "robot_parl"
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _check(kind: str, name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"{kind} name {name!r} must be non-empty letters, digits, '_', '-' or '.' "
                         "(no '/', wildcards or spaces: it becomes part of a zenoh key)")
    return name


@dataclass(frozen=True)
class KeySpace:
    """Keys of one robot in one session."""

    session: str
    robot: str

    def __post_init__(self) -> None:
        _check("session", self.session)
        _check("robot", self.robot)

    def _key(self, leaf: str) -> str:
        return f"{ROOT}/{self.session}/{self.robot}/{leaf}"

    @property
    def obs(self) -> str:
        return self._key("obs")

    @property
    def action(self) -> str:
        return self._key("action")

    @property
    def control(self) -> str:
        return self._key("control")

    @property
    def status(self) -> str:
        return self._key("status")

    @property
    def space(self) -> str:
        """The robot side's queryable: its spec's observation and action space (JSON, RobotSpec.space)."""
        return self._key("space")

    @property
    def teleop(self) -> str:
        return self._key("teleop")

    @property
    def step(self) -> str:
        return self._key("step")

    @property
    def actor(self) -> str:
        """The actor's status (versions, latencies, episode counts) for the learner and the supervisor."""
        return self._key("actor")

    def all_robots(self, leaf: str) -> str:
        """A key expression for ``leaf`` of every robot in this session."""
        return f"{ROOT}/{self.session}/*/{leaf}"

    def weights(self, part: str) -> str:
        """Key of a weight payload, e.g. ``weights/policy`` or ``weights/critic``."""
        return self._key(f"weights/{_check('weights part', part)}")
