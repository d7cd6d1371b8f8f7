"""The configuration of an asynchronous fine-tuning session (actor, learner, supervisor), and what both
the actor and the learner build from it: the agent, its action space on the robot, the observation keys.

One file serves every process of a session, so actor and learner agree on the policy, the critic and
the robot; each reads the section it owns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from robot_parl import typed_config
from robot_parl.data.episode_store import SOURCES
from robot_parl.eval.live import parse_address
from robot_parl.models.base import ObsSpec
from robot_parl.models.factory import PolicyConfig
from robot_parl.rl.config import ParlConfig
from robot_parl.robots.spec import RobotSpec, load_spec
from robot_parl.transport.keys import KeySpace
from robot_parl.typed_config import ConfigError, require


@dataclass
class FleetRobot:
    name: str = "robot0"  # its name in the key space (the robot side's --robot)
    endpoint: str = "tcp/127.0.0.1:7447"  # where its robot side listens


@dataclass
class LinkConfig:
    """Where the processes of a session meet: zenoh endpoints on loopback by default."""

    session: str = "default"
    robot: str = "robot0"
    robot_endpoint: str = "tcp/127.0.0.1:7447"  # the robot side listens here
    learner_endpoint: str = "tcp/127.0.0.1:7448"  # the learner listens here
    # Links beyond this machine: a directory from `robot-parl certs` (ca.pem, robot/learner/actor .pem and .key)
    # turns on mutual TLS with access control by role; the endpoints are then tls/ ones.
    certificates: str = ""
    insecure: bool = False  # allow plain tcp endpoints beyond loopback (an isolated, trusted network only)
    # A fleet: `robot-parl finetune` runs one actor per robot (and, with ``sim``, a simulated robot side for each)
    # and one learner. Empty: the one robot above. Each actor process reads its robot as ``robot`` and
    # ``robot_endpoint``, which the supervisor sets from its entry here.
    fleet: list[FleetRobot] = field(default_factory=list)

    def robots(self) -> list[FleetRobot]:
        """The session's robots: the fleet, else the one robot."""
        return self.fleet or [FleetRobot(self.robot, self.robot_endpoint)]

    def transport(self, role: str, listen: list[str], connect: list[str]):
        """The zenoh transport of this session's process of ``role`` (robot, learner, actor)."""
        from robot_parl.transport.certs import role_transport

        return role_transport(role, self.certificates, listen, connect, self.insecure)

    def validate(self) -> None:
        # the certificate files are checked where the process opens its link: this file may be written elsewhere
        self.transport("actor", [], [self.robot_endpoint, self.learner_endpoint])
        names, endpoints = [r.name for r in self.fleet], [r.endpoint for r in self.fleet]
        require(len(set(names)) == len(names), "fleet", "robots with distinct names", names)
        require(len(set(endpoints)) == len(endpoints), "fleet", "robots with distinct endpoints", endpoints)
        for robot in self.fleet:
            try:
                KeySpace(self.session, robot.name)
            except ValueError as err:
                raise ConfigError("fleet", str(err)) from None


@dataclass
class ActorConfig:
    # Where the actor places the policy, the critic and its observations ("cpu", "cuda", "cuda:1"); "": a VLA
    # card's device (policy.vla.device), else cpu. A VLA loads on its card's device, so the two must agree.
    device: str = ""
    episodes: int = 20  # 0: until stopped
    horizon: int = 60
    # The session's tasks: episode i gets instructions[i % len]. Empty: the robot side's observations carry
    # the instruction (its --instruction, or the simulator's task), else the policy card's.
    instructions: list[str] = field(default_factory=list)
    # Between episodes (never during one) the actor waits up to this long for the learner to reach
    # parl.schedule.min_critic_utd, so a slow learner still gets its minimum share of updates per step of data.
    max_pause_s: float = 30.0
    # A learner silent for this long counts as lost: act on with the last weights, or hold until it returns.
    learner_timeout_s: float = 3.0
    on_learner_lost: Literal["act", "hold"] = "act"
    first_weights_timeout_s: float = 300.0
    resend_after_s: float = 5.0  # an episode the learner has not acknowledged by then is sent again
    # The live web page (host:port; port 0: any free port; null: off). Unauthenticated: keep it on loopback
    # unless the network is trusted. A taken port falls back to a free one (the URL is logged).
    live_view: str | None = "127.0.0.1:8765"
    # Who ends an episode and gives its outcome. "operator": an operator's label, else a simulator's success, else
    # failure at the horizon. "classifier": the success classifier in ``classifier`` (`robot-parl reward train`):
    # success once it is confident for its number of consecutive frames, failure at the horizon; nobody labels
    # (an operator device still takes over, pauses, e-stops). "both": the classifier, and an operator's label
    # overrides it, during the episode or within ``override_s`` after the classifier ended it; every disagreement
    # is counted and stored with the episode (Outcome: the classifier's own call and version).
    reward: Literal["operator", "classifier", "both"] = "operator"
    classifier: str = ""
    override_s: float = 2.0

    def instruction_for(self, episode: int, robot_side: str) -> str:
        """Episode ``episode``'s instruction: from the task list, else what the robot side sent."""
        return self.instructions[episode % len(self.instructions)] if self.instructions else robot_side

    def validate(self) -> None:
        require(self.episodes >= 0, "episodes", "an integer >= 0", self.episodes)
        require(all(t.strip() for t in self.instructions), "instructions", "non-empty instructions",
                self.instructions)
        if self.live_view is not None:
            try:
                parse_address(self.live_view)
            except ValueError as err:
                raise ConfigError("live_view", f"{err}, or null to turn it off") from None
        require(self.horizon >= 1, "horizon", "an integer >= 1", self.horizon)
        # (the file is read where the actor runs: this config may be written on another machine)
        require(self.reward == "operator" or bool(self.classifier), "classifier",
                f"a success classifier file (`robot-parl reward train`) for reward={self.reward!r}", self.classifier)
        require(self.override_s >= 0, "override_s", "a number of seconds >= 0", self.override_s)
        require(self.learner_timeout_s > 0, "learner_timeout_s", "a positive number of seconds",
                self.learner_timeout_s)


@dataclass
class LearnerConfig:
    device: str = ""  # as actor.device: the critic, the policy and every training batch
    # New weights go out every this many distillation (policy) and critic updates.
    publish_policy_every: int = 10
    publish_critic_every: int = 50
    checkpoint_every_s: float = 60.0
    # Checkpoints kept: the newest this many, and the one saved after the best recent success rate (0: all).
    keep_checkpoints: int = 3
    # An episode whose steps stopped coming this long ago and whose actor stopped reporting it (it died; a paused
    # actor keeps reporting) is committed as partial.
    partial_after_s: float = 20.0
    offline_store: str = ""  # teleop/sim episodes to pre-train on and mix in (an episode store directory)
    offline_sources: list[str] = field(default_factory=list)  # which of its episodes: these sources (empty: all)
    offline_successes_only: bool = False
    # Data-parallel ranks (rl/data_parallel.py): `robot-parl finetune` launches the learner with torchrun
    # --nproc-per-node ranks on this machine (each on its own GPU with device "cuda").
    ranks: int = 1

    def validate(self) -> None:
        require(self.ranks >= 1, "ranks", "an integer >= 1", self.ranks)
        require(self.publish_policy_every >= 1, "publish_policy_every", "an integer >= 1", self.publish_policy_every)
        require(self.publish_critic_every >= 1, "publish_critic_every", "an integer >= 1", self.publish_critic_every)
        require(self.keep_checkpoints >= 0, "keep_checkpoints", "an integer >= 0 (0: keep all)",
                self.keep_checkpoints)
        require(self.partial_after_s > 0, "partial_after_s", "a positive number of seconds", self.partial_after_s)
        require(set(self.offline_sources) <= set(SOURCES), "offline_sources", f"sources among {list(SOURCES)}",
                self.offline_sources)

    def offline_selection(self):
        """The offline episodes to use, as a predicate on the store's episode table."""
        sources, successes = set(self.offline_sources), self.offline_successes_only
        return lambda info: (not sources or info.source in sources) and (info.success or not successes)


@dataclass
class FinetuneConfig:
    """Everything the processes of one online fine-tuning session read."""

    seed: int = 0
    robot_spec: str = "sim_tabletop"  # a spec name or a YAML path
    robot_overrides: list[str] = field(default_factory=list)
    sim: str = ""  # the supervisor starts a simulated robot side for this task ("" : attach to a running one)
    # The simulated robot waits for each action (false), or runs in real time at the spec's control rate as a real
    # robot does (true): an actor too slow for it, or waiting for the learner, leaves it holding.
    sim_realtime: bool = False
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    parl: ParlConfig = field(default_factory=ParlConfig)
    link: LinkConfig = field(default_factory=LinkConfig)
    actor: ActorConfig = field(default_factory=ActorConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)

    def spec(self) -> RobotSpec:
        return load_spec(self.robot_spec, self.robot_overrides)

    def resolved_parl(self) -> ParlConfig:
        return resolve_parl(self.parl, self.policy, ParlConfig())

    def device(self, process: Literal["actor", "learner"]) -> str:
        """Where ``process`` places policy, critic and batches: its own setting, else a VLA card's, else cpu."""
        return placement(getattr(self, process).device, self.policy, f"{process}.device")


def placement(own: str, policy: PolicyConfig, key: str) -> str:
    """The torch device a process sets as ``key`` (its value ``own``; "": unset) places its policy, critic and
    batches on: its own, else a VLA card's, else cpu. A VLA loads on its card's device, so the two must agree."""
    card = policy.vla.device if policy.kind == "vla" else ""
    if own and card and own != card:
        raise ConfigError(key, f"{own!r}, but the VLA loads on policy.vla.device = {card!r}; set one of them (or "
                               f"both the same)")
    device = own or card or "cpu"
    import torch

    try:
        torch.device(device)
    except RuntimeError as err:
        raise ConfigError(key, f"{device!r} is not a torch device ({err})") from None
    return device


def resolve_parl(parl: ParlConfig, policy: PolicyConfig, default: ParlConfig) -> ParlConfig:
    """The algorithm settings with a VLA card's overrides applied (the card owns its N and k).

    A value set under ``parl`` (one that differs from ``default``, the config's own) that the card sets otherwise
    is refused, naming both keys: neither silently wins.
    """
    if policy.kind != "vla" or not policy.vla.parl:
        return parl
    given, unset = typed_config.to_dict(parl), typed_config.to_dict(default)
    for path, value in _leaves(policy.vla.parl):
        mine = _at(given, path)
        if mine != _at(unset, path) and mine != value:
            raise ConfigError(f"parl.{path}", f"{mine!r} conflicts with policy.vla.parl.{path} = {value!r} (the policy "
                                              f"card's); set it in one place")
    try:
        return typed_config.merged(parl, policy.vla.parl)
    except typed_config.ConfigError as err:
        raise err.under("policy.vla.parl") from None


def _leaves(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _at(tree: dict, path: str):
    for key in path.split("."):
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree


def obs_spec(spec: RobotSpec) -> ObsSpec:
    """What policies and critics read from this robot: its cameras and proprio."""
    return ObsSpec(proprio_dim=len(spec.proprio), cameras=tuple(c.name for c in spec.cameras))


def build_agent(cfg: FinetuneConfig, spec: RobotSpec, process: Literal["actor", "learner"] = "learner"):
    """The ParlAgent (policy, critic, settings) of a session for this robot, in policy action space, placed on
    ``process``'s device, and the action space that maps it to the robot's units (refused here when the two do
    not fit)."""
    import torch

    from robot_parl.rl.agent import ParlAgent
    from robot_parl.rl.critic import QEnsemble

    torch.manual_seed(cfg.seed)
    observations = obs_spec(spec)
    action_dim = spec.action.dim
    parl = cfg.resolved_parl()
    device = cfg.device(process)
    policy = cfg.policy.build(observations, action_dim)
    if isinstance(policy, torch.nn.Module) and cfg.policy.kind != "vla":
        policy.to(device)
    critic = QEnsemble(observations, action_dim, parl.critic)
    actions = cfg.policy.action_space(policy, spec.action)
    return ParlAgent(policy, critic, parl, -torch.ones(action_dim), torch.ones(action_dim), seed=cfg.seed,
                     device=device), actions

