import shutil
import time

import pytest

from robot_parl import typed_config
from robot_parl.transport.certs import make_certificates
from robot_parl.transport.session import (
    TlsConfig,
    TransportConfig,
    free_loopback_endpoint,
    open_session,
    zenoh_config,
)


def test_defaults_stay_on_loopback_without_scouting():
    cfg = TransportConfig()
    assert cfg.connect == ["tcp/127.0.0.1:7447"] and not cfg.multicast_scouting
    conf = zenoh_config(cfg)
    assert conf.get_json("scouting/multicast/enabled") == "false"
    assert conf.get_json("connect/endpoints") == '["tcp/127.0.0.1:7447"]'


def test_tls_access_control_and_password_map_onto_zenoh_keys(tmp_path):
    for name in ("ca.pem", "me.pem", "me.key"):
        (tmp_path / name).write_text("PEM")
    tls = TlsConfig(ca=str(tmp_path / "ca.pem"), certificate=str(tmp_path / "me.pem"),
                    private_key=str(tmp_path / "me.key"), allow=["actor"])
    # zenoh refuses unknown configuration keys, so this also checks the key names
    conf = zenoh_config(TransportConfig(connect=["tls/robot.lab:7447"], tls=tls, username="arm", password="secret"))
    assert conf.get_json("transport/link/tls/root_ca_certificate") == f'"{tmp_path / "ca.pem"}"'
    assert conf.get_json("transport/link/tls/enable_mtls") == "true"
    assert conf.get_json("transport/link/tls/connect_certificate") == f'"{tmp_path / "me.pem"}"'
    assert '"actor"' in conf.get_json("access_control") and '"deny"' in conf.get_json("access_control")
    assert conf.get_json("transport/auth/usrpwd/user") == '"arm"'


@pytest.mark.parametrize(("overrides", "key"), [
    (["connect=[127.0.0.1]"], "connect"),
    (["connect=[]"], "connect"),
    (["username=arm"], "password"),
    (["connect=[tls/host:7447]"], "tls.ca"),
    (["tls.allow=[actor]"], "tls.allow"),
    (["connect=[tls/host:7447]", "tls.ca=/nowhere/ca.pem", "tls.certificate=/c", "tls.private_key=/k"], "tls.ca"),
])
def test_bad_transport_configs_name_the_key(overrides, key):
    with pytest.raises(typed_config.ConfigError) as err:
        typed_config.load(TransportConfig, overrides=overrides)
    assert err.value.key == key


def _delivered(listener: TransportConfig, connector: TransportConfig) -> bool:
    a, b = open_session(listener), open_session(connector)
    got = []
    try:
        sub = b.declare_subscriber("t/x", lambda sample: got.append(sample.payload.to_bytes()))
        deadline = time.monotonic() + 3
        while not got and time.monotonic() < deadline:
            a.put("t/x", b"hello")
            time.sleep(0.1)
        sub.undeclare()
    finally:
        b.close()
        a.close()
    return got[:1] == [b"hello"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI to make test certificates")
def test_mutual_tls_and_password_links_admit_only_the_right_peers(tmp_path):
    make_certificates(tmp_path / "session", ["robot", "actor"], [])
    make_certificates(tmp_path / "other", ["actor"], [])
    endpoint = free_loopback_endpoint().replace("tcp/127.0.0.1", "tls/localhost")
    (tmp_path / "users.txt").write_text("arm:secret\n")

    def tls(directory: str, role: str) -> TlsConfig:
        d = tmp_path / directory
        return TlsConfig(ca=str(d / "ca.pem"), certificate=str(d / f"{role}.pem"), private_key=str(d / f"{role}.key"))

    listener = TransportConfig(listen=[endpoint], connect=[], credentials_file=str(tmp_path / "users.txt"),
                               tls=tls("session", "robot"))

    def connector(directory: str, password: str) -> TransportConfig:
        return TransportConfig(connect=[endpoint], tls=tls(directory, "actor"), username="arm", password=password)

    assert _delivered(listener, connector("session", "secret"))
    assert not _delivered(listener, connector("other", "secret"))  # a certificate the session's CA did not sign
    assert not _delivered(listener, connector("session", "wrong"))
