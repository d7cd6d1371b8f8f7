"""Choosing and building a policy class from its config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from robot_parl.models.autoregressive import AutoregressiveConfig, AutoregressivePolicy
from robot_parl.models.base import ObsSpec, TorchPolicy
from robot_parl.models.diffusion import DiffusionConfig, DiffusionPolicy
from robot_parl.models.gaussian import GaussianConfig, GaussianPolicy

PolicyKind = Literal["diffusion", "autoregressive", "gaussian"]


@dataclass
class PolicyConfig:
    """Which policy class to use, and the settings of each (only the chosen one is read)."""

    kind: PolicyKind = "diffusion"
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    autoregressive: AutoregressiveConfig = field(default_factory=AutoregressiveConfig)
    gaussian: GaussianConfig = field(default_factory=GaussianConfig)

    def build(self, obs_spec: ObsSpec, action_dim: int) -> TorchPolicy:
        """A freshly initialised policy of the chosen class."""
        classes = {"diffusion": DiffusionPolicy, "autoregressive": AutoregressivePolicy, "gaussian": GaussianPolicy}
        return classes[self.kind](obs_spec, action_dim, getattr(self, self.kind))
