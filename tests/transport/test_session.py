import pytest

from robot_parl import typed_config
from robot_parl.transport.session import TlsConfig, TransportConfig, zenoh_config


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
