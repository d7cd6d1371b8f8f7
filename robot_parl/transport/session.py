"""zenoh sessions configured for this project: loopback and explicit endpoints by default.

Multicast scouting and gossip are off unless a config turns them on, so nothing leaves the host
unless an endpoint names another one. TLS and user/password authentication are for multi-machine
setups; they map onto zenoh's own configuration keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

from robot_parl.typed_config import require

DEFAULT_ENDPOINT = "tcp/127.0.0.1:7447"


@dataclass
class TlsConfig:
    root_ca_certificate: str = ""
    listen_certificate: str = ""
    listen_private_key: str = ""
    connect_certificate: str = ""
    connect_private_key: str = ""


@dataclass
class TransportConfig:
    """Where a process listens and whom it connects to; ``listen`` may be empty for pure clients."""

    mode: Literal["peer", "client", "router"] = "peer"
    listen: list[str] = field(default_factory=list)
    connect: list[str] = field(default_factory=lambda: [DEFAULT_ENDPOINT])
    multicast_scouting: bool = False
    tls: TlsConfig = field(default_factory=TlsConfig)
    # user/password: a connecting process gives both; a listening one names a file of "user:password" lines.
    username: str = ""
    password: str = ""
    credentials_file: str = ""

    def validate(self) -> None:
        for key in ("listen", "connect"):
            for endpoint in getattr(self, key):
                require(isinstance(endpoint, str) and "/" in endpoint, key,
                        "zenoh endpoints like 'tcp/127.0.0.1:7447' or 'tls/host:7447'", endpoint)
        require(self.listen or self.connect or self.multicast_scouting, "connect",
                "at least one endpoint to listen on or connect to (multicast scouting is off)", self.connect)
        require(bool(self.username) == bool(self.password), "password",
                "a username and a password together, or neither", "only one of them")
        uses_tls = any(e.startswith("tls/") for e in self.listen + self.connect)
        require(not uses_tls or bool(self.tls.root_ca_certificate), "tls.root_ca_certificate",
                "a CA certificate path for 'tls/' endpoints", self.tls.root_ca_certificate)


def zenoh_config(cfg: TransportConfig):
    """The zenoh.Config for ``cfg``."""
    import zenoh

    cfg.validate()
    conf = zenoh.Config()
    conf.insert_json5("mode", json.dumps(cfg.mode))
    conf.insert_json5("listen/endpoints", json.dumps(cfg.listen))
    conf.insert_json5("connect/endpoints", json.dumps(cfg.connect))
    conf.insert_json5("scouting/multicast/enabled", json.dumps(cfg.multicast_scouting))
    conf.insert_json5("scouting/gossip/enabled", json.dumps(cfg.multicast_scouting))
    for name, value in vars(cfg.tls).items():
        if value:
            conf.insert_json5(f"transport/link/tls/{name}", json.dumps(value))
    if cfg.username:
        conf.insert_json5("transport/auth/usrpwd/user", json.dumps(cfg.username))
        conf.insert_json5("transport/auth/usrpwd/password", json.dumps(cfg.password))
    if cfg.credentials_file:
        conf.insert_json5("transport/auth/usrpwd/dictionary_file", json.dumps(cfg.credentials_file))
    return conf


def open_session(cfg: TransportConfig):
    """Open a zenoh session for ``cfg``; close it with ``session.close()``."""
    import zenoh

    return zenoh.open(zenoh_config(cfg))


def free_loopback_endpoint() -> str:
    """A tcp endpoint on 127.0.0.1 with a port that was free a moment ago (for local runs and tests)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp/127.0.0.1:{s.getsockname()[1]}"
