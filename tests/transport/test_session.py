import shutil
import subprocess
import time

import pytest

from robot_parl import typed_config
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


def test_tls_and_password_map_onto_zenoh_keys():
    # zenoh refuses unknown configuration keys, so this also checks the key names
    conf = zenoh_config(TransportConfig(connect=["tls/robot.lab:7447"], tls=TlsConfig(root_ca_certificate="/ca.pem"),
                                        username="arm", password="secret"))
    assert conf.get_json("transport/link/tls/root_ca_certificate") == '"/ca.pem"'
    assert conf.get_json("transport/auth/usrpwd/user") == '"arm"'


@pytest.mark.parametrize(("overrides", "key"), [
    (["connect=[127.0.0.1]"], "connect"),
    (["connect=[]"], "connect"),
    (["username=arm"], "password"),
    (["connect=[tls/host:7447]"], "tls.root_ca_certificate"),
])
def test_bad_transport_configs_name_the_key(overrides, key):
    with pytest.raises(typed_config.ConfigError) as err:
        typed_config.load(TransportConfig, overrides=overrides)
    assert err.value.key == key


def _make_certs(directory):
    """A CA and a server certificate for localhost, made with the openssl CLI."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
        "-subj", "/CN=test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (directory / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "1", "-extfile", "ext.cnf")
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out", "other.pem", "-days", "1",
        "-subj", "/CN=other-ca")


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
def test_tls_and_password_links_admit_only_the_right_peers(tmp_path):
    _make_certs(tmp_path)
    endpoint = free_loopback_endpoint().replace("tcp/127.0.0.1", "tls/localhost")
    (tmp_path / "users.txt").write_text("arm:secret\n")
    listener = TransportConfig(listen=[endpoint], connect=[], credentials_file=str(tmp_path / "users.txt"),
                               tls=TlsConfig(root_ca_certificate=str(tmp_path / "ca.pem"),
                                             listen_certificate=str(tmp_path / "server.pem"),
                                             listen_private_key=str(tmp_path / "server.key")))

    def connector(ca: str, password: str) -> TransportConfig:
        return TransportConfig(connect=[endpoint], tls=TlsConfig(root_ca_certificate=str(tmp_path / ca)),
                               username="arm", password=password)

    assert _delivered(listener, connector("ca.pem", "secret"))
    assert not _delivered(listener, connector("other.pem", "secret"))  # server not signed by the CA we trust
    assert not _delivered(listener, connector("ca.pem", "wrong"))
