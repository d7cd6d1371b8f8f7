"""ParlConfig: the one owner of every PA-RL algorithm setting.

Defaults are those of the PA-RL paper's code (arXiv 2412.06685) for state-based tasks. A policy card
may override them for its policy (OpenVLA: N=8, k=4); nothing else holds a copy of these values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from robot_parl.typed_config import require


@dataclass
class CriticConfig:
    """The Q-ensemble, its observation encoder and its Cal-QL training."""

    ensemble_size: int = 10
    target_heads: int = 2
    hidden_dims: tuple[int, ...] = (256, 256, 256)
    layer_norm: bool = True
    # Encoder for `images`: "resnet18" (GroupNorm) by default; "small_cnn" for CPU tests.
    image_encoder: Literal["resnet18", "small_cnn"] = "resnet18"
    image_size: int = 100
    # DrQ random shift (pixels of replicate padding) applied to images while training; 0 disables.
    augment_pad: int = 4
    state_hidden_dims: tuple[int, ...] = (256,)
    embedding_dim: int = 256
    gamma: float = 0.99
    # TD targets bootstrap n steps ahead (1 = the paper's one-step targets).
    n_step: int = 1
    polyak: float = 5e-3
    lr: float = 3e-4
    batch_size: int = 256
    cql_alpha: float = 0.005
    cql_num_random: int = 4
    cql_temperature: float = 1.0
    calql: bool = True
    # "bf16": the encoder and the heads run under bf16 autocast (matmuls and convolutions in bfloat16, Q and the
    # losses in float32): less memory and time on GPUs with bf16 units
    autocast: Literal["none", "bf16"] = "none"

    def validate(self) -> None:
        require(self.ensemble_size >= 2, "ensemble_size", "an integer >= 2", self.ensemble_size)
        require(
            2 <= self.target_heads <= self.ensemble_size,
            "target_heads",
            f"an integer in [2, ensemble_size={self.ensemble_size}]",
            self.target_heads,
        )
        require(len(self.hidden_dims) >= 1 and all(h > 0 for h in self.hidden_dims), "hidden_dims",
                "a non-empty list of positive widths", self.hidden_dims)
        require(all(h > 0 for h in self.state_hidden_dims), "state_hidden_dims", "positive widths",
                self.state_hidden_dims)
        require(self.embedding_dim > 0, "embedding_dim", "a positive integer", self.embedding_dim)
        require(self.image_size >= 16, "image_size", "an integer >= 16", self.image_size)
        require(self.augment_pad >= 0, "augment_pad", "an integer >= 0", self.augment_pad)
        require(0.0 <= self.gamma < 1.0, "gamma", "a number in [0, 1)", self.gamma)
        require(self.n_step >= 1, "n_step", "an integer >= 1", self.n_step)
        require(0.0 < self.polyak <= 1.0, "polyak", "a number in (0, 1]", self.polyak)
        require(self.lr > 0, "lr", "a positive number", self.lr)
        require(self.batch_size > 0, "batch_size", "a positive integer", self.batch_size)
        require(self.cql_alpha >= 0, "cql_alpha", "a number >= 0", self.cql_alpha)
        require(self.cql_num_random >= 0, "cql_num_random", "an integer >= 0", self.cql_num_random)
        require(self.cql_temperature > 0, "cql_temperature", "a positive number", self.cql_temperature)


@dataclass
class ScheduleConfig:
    """When each part trains: offline pre-training, online updates per environment step, mixing
    (rl/schedule.py applies it, in-process and in the learner process alike)."""

    offline_steps: int = 1000
    warmup_episodes: int = 0  # online episodes collected before online updates start
    critic_utd: float = 1.0  # critic updates per online environment step
    distill_utd: float = 1.0  # distillation (policy) updates per online environment step
    # An actor waits between episodes (never during one, at most actor.max_pause_s) until the learner has made
    # this many critic updates per environment step; 0: it never waits for a slow learner.
    min_critic_utd: float = 0.0
    # Share of each batch drawn from the offline data once online data exists.
    offline_fraction: float = 0.5
    # Stored candidates older than this many policy versions are re-sampled before use.
    candidate_max_age: int = 1000
    # Online transitions replay keeps (the oldest episodes leave first; offline data always stays); 0: all.
    # 100,000 transitions of two 224x224 cameras are about 30 GB of host memory.
    online_capacity: int = 0

    def validate(self) -> None:
        require(self.offline_steps >= 0, "offline_steps", "an integer >= 0", self.offline_steps)
        require(self.warmup_episodes >= 0, "warmup_episodes", "an integer >= 0", self.warmup_episodes)
        require(self.critic_utd >= 0, "critic_utd", "a number >= 0", self.critic_utd)
        require(self.distill_utd >= 0, "distill_utd", "a number >= 0", self.distill_utd)
        require(0 <= self.min_critic_utd <= self.critic_utd, "min_critic_utd",
                f"a number in [0, critic_utd={self.critic_utd}] (the learner never trains past critic_utd)",
                self.min_critic_utd)
        require(0.0 <= self.offline_fraction <= 1.0, "offline_fraction", "a number in [0, 1]",
                self.offline_fraction)
        require(self.candidate_max_age >= 0, "candidate_max_age", "an integer >= 0", self.candidate_max_age)
        require(self.online_capacity >= 0, "online_capacity", "an integer >= 0 (0: unbounded)", self.online_capacity)


@dataclass
class ParlConfig:
    """PA-RL: N candidates, global top-k, T local ascent steps in a trust region, pessimistic selection, critic,
    schedule."""

    num_samples: int = 32
    top_k: int = 10
    # T steps of gradient ascent of size eta on each survivor (the paper's 10 x 3e-4; the CPU runs use 2 x 0.1).
    # With trust_region > 0 a survivor never leaves the box of trust_region * sigma around where it started, sigma
    # the standard deviation of that state's N candidates per action dimension: the critic may refine what the
    # policy proposes, not take the robot where the policy never goes. 0: only the action bounds.
    local_steps: int = 10
    step_size: float = 3e-4
    trust_region: float = 0.0
    # Every ranking, ascent and selection uses the score mean - pessimism * std over the ensemble's heads. Off by
    # default: on benchmarks/line_env.py it steered the offline critic's choices to the actions the demonstrations
    # covered best, not the ones that succeed (re-ranking 51.5% with pessimism 1, 78% without; 200 layouts, seed 0).
    pessimism: float = 0.0
    distill_select: Literal["argmax", "softmax"] = "argmax"
    # The critic acts and is distilled only once acting on its choice has done better than acting on the policy
    # alone, in a randomised trial over online rollouts (rl/trust.py): returns higher by a Mann-Whitney z >=
    # trust_min_z over the newest trust_window of them (once that many are in), success no lower. 0: trusted from
    # the start (the offline critic acts at once). A window of about 16 episodes per arm: the critic changes as it
    # trains, and older episodes judge a critic that is gone.
    trust_min_z: float = 2.0
    trust_window: int = 32
    # Once trusted, this share of the rollouts act on the policy alone, as controls the critic's own rollouts are
    # held against; trust is revoked when the controls do better by the same z (rl/trust.py). A multiple of 1/16 up
    # to 1/2; 0: a trusted critic stays trusted.
    watch_share: float = 0.125
    softmax_temperature: float = 1.0
    # Distillation draws its own batches: this many transitions (0: critic.batch_size), and accumulates the
    # policy's gradients over micro-batches of distill_micro_batch rows (0: the whole batch at once), so a 7B
    # VLA holds the activations of a micro-batch only.
    distill_batch_size: int = 0
    distill_micro_batch: int = 0
    critic: CriticConfig = field(default_factory=CriticConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    def validate(self) -> None:
        require(self.num_samples >= 1, "num_samples", "an integer >= 1", self.num_samples)
        require(1 <= self.top_k <= self.num_samples, "top_k",
                f"an integer in [1, num_samples={self.num_samples}]", self.top_k)
        require(self.local_steps >= 0, "local_steps", "an integer >= 0", self.local_steps)
        require(self.step_size >= 0 and math.isfinite(self.step_size), "step_size",
                "a finite number >= 0", self.step_size)
        require(self.trust_region >= 0 and math.isfinite(self.trust_region), "trust_region",
                "a finite number >= 0 (a multiple of the candidates' spread; 0: none)", self.trust_region)
        require(self.trust_min_z >= 0 and math.isfinite(self.trust_min_z), "trust_min_z",
                "a finite number >= 0 (0: the critic is trusted from the start)", self.trust_min_z)
        require(self.trust_window >= 2, "trust_window", "an integer >= 2", self.trust_window)
        require(0 <= self.watch_share <= 0.5 and (self.watch_share * 16).is_integer(), "watch_share",
                "a multiple of 1/16 from 0 to 0.5 (0: no watch once trusted)", self.watch_share)
        require(self.pessimism >= 0 and math.isfinite(self.pessimism), "pessimism", "a finite number >= 0",
                self.pessimism)
        require(self.softmax_temperature > 0, "softmax_temperature", "a positive number",
                self.softmax_temperature)
        require(self.distill_batch_size >= 0, "distill_batch_size", "an integer >= 0 (0: critic.batch_size)",
                self.distill_batch_size)
        require(self.distill_micro_batch >= 0, "distill_micro_batch", "an integer >= 0 (0: the whole batch)",
                self.distill_micro_batch)
