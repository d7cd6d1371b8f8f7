"""zenoh sessions configured for this project: loopback and explicit endpoints by default.

Multicast scouting and gossip are off unless a config turns them on, so nothing leaves the host
unless an endpoint names another one. For links between machines, mutual TLS (every process holds a
certificate signed by the session's CA: ``robot-parl certs`` makes them) and zenoh access control by
certificate common name; user/password authentication as well. All map onto zenoh's own keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from robot_parl.typed_config import ConfigError, require

DEFAULT_ENDPOINT = "tcp/127.0.0.1:7447"


@dataclass
class TlsConfig:
    """Mutual TLS for ``tls/`` endpoints: this process's certificate is presented when it listens and when it
    connects, and a peer is let in only with a certificate signed by ``ca``."""

    ca: str = ""  # the session's CA certificate (PEM)
    certificate: str = ""  # this process's certificate (PEM), signed by the CA
    private_key: str = ""
    # Common names of the peer certificates let in (zenoh access control: anyone else is denied every message).
    # Empty: every certificate the CA signed.
    allow: list[str] = field(default_factory=list)

    def enabled(self) -> bool:
        return bool(self.ca or self.certificate or self.private_key)

    def validate(self) -> None:
        if not self.enabled():
            require(not self.allow, "allow", "certificate names only with tls.ca, certificate and private_key set",
                    self.allow)
            return
        for key in ("ca", "certificate", "private_key"):
            path = getattr(self, key)
            require(bool(path), key, "a PEM file path (robot-parl certs makes the CA, certificates and keys)", path)
            require(Path(path).is_file(), key, "an existing PEM file", path)


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
        require(not uses_tls or self.tls.enabled(), "tls.ca",
                "the session's CA, certificate and private key for 'tls/' endpoints", self.tls.ca)
        require(not self.tls.enabled() or uses_tls, "tls", "'tls/' endpoints when TLS is configured (a 'tcp/' link "
                "would skip it)", self.listen + self.connect)
        try:
            self.tls.validate()
        except ConfigError as err:  # also when built in code, not loaded (typed_config prefixes nested errors)
            raise err.under("tls") from None


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
    if cfg.tls.enabled():
        tls = cfg.tls
        conf.insert_json5("transport/link/tls/root_ca_certificate", json.dumps(tls.ca))
        conf.insert_json5("transport/link/tls/enable_mtls", "true")
        for side in ("listen", "connect"):
            conf.insert_json5(f"transport/link/tls/{side}_certificate", json.dumps(tls.certificate))
            conf.insert_json5(f"transport/link/tls/{side}_private_key", json.dumps(tls.private_key))
        if tls.allow:
            conf.insert_json5("access_control", json.dumps(_allow_only(tls.allow)))
    if cfg.username:
        conf.insert_json5("transport/auth/usrpwd/user", json.dumps(cfg.username))
        conf.insert_json5("transport/auth/usrpwd/password", json.dumps(cfg.password))
    if cfg.credentials_file:
        conf.insert_json5("transport/auth/usrpwd/dictionary_file", json.dumps(cfg.credentials_file))
    return conf


def _allow_only(names: list[str]) -> dict:
    """zenoh access control: peers whose certificate has one of ``names`` as common name may exchange every kind
    of message; every other peer is denied all of them."""
    messages = ["put", "delete", "declare_subscriber", "query", "declare_queryable", "reply", "liveliness_token",
                "declare_liveliness_subscriber", "liveliness_query"]
    return {"enabled": True, "default_permission": "deny",
            "rules": [{"id": "everything", "messages": messages, "flows": ["ingress", "egress"],
                       "permission": "allow", "key_exprs": ["**"]}],
            "subjects": [{"id": "allowed", "cert_common_names": list(names)}],
            "policies": [{"rules": ["everything"], "subjects": ["allowed"]}]}


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


def free_loopback_endpoints(count: int) -> list[str]:
    """``count`` different endpoints of :func:`free_loopback_endpoint` (one per process that listens)."""
    found: list[str] = []
    while len(found) < count:
        endpoint = free_loopback_endpoint()
        if endpoint not in found:
            found.append(endpoint)
    return found
