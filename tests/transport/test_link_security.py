"""Links between machines: `robot-parl certs` makes a CA and one certificate per role; a robot side started with
them (a second process) serves an actor holding the session's actor certificate, and nobody else: not the
learner's certificate (access control by common name), not an actor certificate from another CA, not plain tcp.
Configs refuse plain tcp beyond loopback unless told it is a trusted network."""

import json
import shutil
import subprocess
import sys

import pytest

from robot_parl import cli, typed_config
from robot_parl.robots.remote import RemoteRobotEnv, RobotTimeout
from robot_parl.robots.spec import load_spec
from robot_parl.runtime.config import FinetuneConfig
from robot_parl.runtime.supervisor import ENTRY
from robot_parl.transport.certs import role_transport
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.session import TransportConfig, free_loopback_endpoint, open_session

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI (apt install openssl)")
CAMERA = "cameras=[{name: front, width: 32, height: 32}]"


def _reaches_robot(transport: TransportConfig, timeout_s: float) -> bool:
    session = open_session(transport)
    env = RemoteRobotEnv(session, KeySpace("tls", "arm"), load_spec("sim_tabletop", [CAMERA]), timeout_s=timeout_s)
    try:
        obs, _ = env.reset()
        return obs["images"]["front"].shape == (32, 32, 3)
    except RobotTimeout:
        return False
    finally:
        env.close()
        session.close()


def test_only_the_sessions_actor_reaches_a_tls_robot_side(tmp_path, capsys):
    certs, other = tmp_path / "certs", tmp_path / "other-ca"
    assert cli.main(["certs", str(certs)]) == 0
    assert cli.main(["certs", str(other), "--roles", "actor"]) == 0
    assert sorted(p.name for p in certs.glob("*.pem")) == ["actor.pem", "ca.pem", "learner.pem", "robot.pem"]
    assert (certs / "actor.key").stat().st_mode & 0o077 == 0  # private keys readable by their owner only
    capsys.readouterr()
    assert cli.main(["certs", str(certs), "--roles", "actor"]) == 2  # never overwrites a certificate
    assert "actor.pem exists" in capsys.readouterr().err

    endpoint = free_loopback_endpoint().replace("tcp/127.0.0.1", "tls/localhost")
    robot = subprocess.Popen([sys.executable, "-c", ENTRY, "robot", "--sim", "pick", "--sync", "--listen", endpoint,
                              "--certificates", str(certs), "--session", "tls", "--robot", "arm", CAMERA],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "robot side" in robot.stdout.readline()
        assert _reaches_robot(role_transport("actor", str(certs), [], [endpoint]), timeout_s=30)
        assert not _reaches_robot(role_transport("learner", str(certs), [], [endpoint]), timeout_s=3)
        assert not _reaches_robot(role_transport("actor", str(other), [], [endpoint]), timeout_s=3)
        plain = endpoint.replace("tls/localhost", "tcp/127.0.0.1")
        assert not _reaches_robot(TransportConfig(connect=[plain]), timeout_s=3)
    finally:
        robot.terminate()
        out, _ = robot.communicate(timeout=20)
    assert robot.returncode == 0, out[-2000:]


def test_link_configs_refuse_plain_tcp_beyond_loopback_and_missing_certificates(tmp_path, capsys):
    with pytest.raises(typed_config.ConfigError) as err:
        typed_config.load(FinetuneConfig, overrides=["link.robot_endpoint=tcp/10.0.0.5:7447"])
    assert err.value.key == "link.insecure" and "10.0.0.5" in str(err.value)
    cfg = typed_config.load(FinetuneConfig, overrides=["link.robot_endpoint=tcp/10.0.0.5:7447", "link.insecure=true"])
    assert cfg.link.transport("actor", [], [cfg.link.robot_endpoint]).tls.enabled() is False
    cfg = typed_config.load(FinetuneConfig, overrides=[f"link.certificates={tmp_path}",
                                                       "link.robot_endpoint=tls/robot.lab:7447",
                                                       "link.learner_endpoint=tls/localhost:7448"])
    with pytest.raises(typed_config.ConfigError) as err:  # checked where the link opens: no certificates there
        open_session(cfg.link.transport("actor", [], [cfg.link.robot_endpoint]))
    assert err.value.key == "tls.ca" and str(tmp_path / "ca.pem") in str(err.value)
    with pytest.raises(typed_config.ConfigError) as err:  # certificates, but a plain endpoint
        typed_config.load(FinetuneConfig, overrides=[f"link.certificates={tmp_path}"])
    assert err.value.key == "link.certificates" and "tcp/127.0.0.1:7447" in str(err.value)
    # the robot command: one line, exit 2, before anything listens
    assert cli.main(["robot", "--sim", "pick", "--listen", "tcp/0.0.0.0:7447", "--ticks", "1"]) == 2
    assert capsys.readouterr().err.strip().startswith("robot-parl: config key 'insecure'")


@pytest.mark.slow
def test_a_finetune_session_runs_over_mutual_tls(tmp_path):
    # robot side, learner and actor as processes, every link mutual TLS with its role's certificate and access
    # control between the roles; the supervisor watches as the actor does
    assert cli.main(["certs", str(tmp_path / "certs")]) == 0
    robot_ep, learner_ep = (free_loopback_endpoint().replace("tcp/127.0.0.1", "tls/localhost") for _ in range(2))
    out = tmp_path / "session"
    run = subprocess.run([sys.executable, "-c", ENTRY, "finetune", "--config", "configs/finetune-tiny-vla.yaml",
                          "--out", str(out), f"robot_overrides=['{CAMERA}']", "policy.kind=gaussian",
                          "policy.gaussian.hidden_dims=[16]", "parl.num_samples=4", "parl.top_k=2",
                          "link.session=tls-session", f"link.certificates={tmp_path / 'certs'}",
                          f"link.robot_endpoint={robot_ep}", f"link.learner_endpoint={learner_ep}",
                          "actor.episodes=2", "actor.horizon=5", "actor.live_view=null"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["actor"]["episodes"] == 2 and summary["actor"]["unacknowledged"] == 0
    assert summary["learner"]["agent"]["online_episodes"] == 2
    assert min(summary["actor"]["versions"].values()) >= 0  # weights reached the actor over TLS
