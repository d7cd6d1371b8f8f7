"""Choosing and building a policy class from its config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from robot_parl.models.action_space import ActionSpace, LinearActionSpace
from robot_parl.models.autoregressive import AutoregressiveConfig, AutoregressivePolicy
from robot_parl.models.base import BasePolicy, ImageInput, ObsSpec
from robot_parl.models.diffusion import DiffusionConfig, DiffusionPolicy
from robot_parl.models.gaussian import GaussianConfig, GaussianPolicy
from robot_parl.models.vla.card import VLACard
from robot_parl.typed_config import ConfigError

PolicyKind = Literal["diffusion", "autoregressive", "gaussian", "vla"]


@dataclass
class PolicyConfig:
    """Which policy class to use, and the settings of each (only the chosen one is read)."""

    kind: PolicyKind = "diffusion"
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    autoregressive: AutoregressiveConfig = field(default_factory=AutoregressiveConfig)
    gaussian: GaussianConfig = field(default_factory=GaussianConfig)
    images: ImageInput = field(default_factory=ImageInput)  # camera images, for the classes above
    # A VLA is loaded from the checkpoint its card names (weights are never initialised here).
    vla: VLACard = field(default_factory=VLACard)

    def build(self, obs_spec: ObsSpec, action_dim: int) -> BasePolicy:
        """A freshly initialised policy of the chosen class (a VLA: loaded from its checkpoint)."""
        if self.kind == "vla":
            return self._load_vla(obs_spec, action_dim)
        classes = {"diffusion": DiffusionPolicy, "autoregressive": AutoregressivePolicy, "gaussian": GaussianPolicy}
        return classes[self.kind](obs_spec, action_dim, getattr(self, self.kind), self.images)

    def action_space(self, policy: BasePolicy, action) -> ActionSpace:
        """The map between ``policy``'s actions and a robot's (``action``: the robot spec's ActionSpec): a VLA's
        checkpoint statistics and gripper mapping, or linear over the robot's bounds for the other classes."""
        if self.kind == "vla":
            return policy.action_space(list(action.names), action.gripper)
        return LinearActionSpace(action.low, action.high)

    def _load_vla(self, obs_spec: ObsSpec, action_dim: int) -> BasePolicy:
        if self.vla.camera not in obs_spec.cameras:
            raise ConfigError("policy.vla.camera", f"the VLA reads camera {self.vla.camera!r} but the observations "
                                                   f"have cameras {list(obs_spec.cameras)}; use image observations")
        from robot_parl.models.vla.policy import VLAPolicy

        try:
            policy = VLAPolicy.from_card(self.vla)
        except (ValueError, FileNotFoundError) as err:  # a checkpoint that does not fit the card: one line
            raise ConfigError("policy.vla", str(err)) from None
        if policy.action_dim != action_dim:
            raise ConfigError("policy.vla.checkpoint", f"the VLA at {self.vla.checkpoint} acts in "
                                                       f"{policy.action_dim} dimensions, the robot in {action_dim}")
        return policy
