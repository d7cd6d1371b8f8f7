"""Certificates for a session's links between machines (`robot-parl certs`), made with the openssl CLI.

One directory holds the session's CA (``ca.pem``, and ``ca.key``, which signs and stays with whoever makes
certificates) and one certificate and key per process role (``robot.pem``/``robot.key``, ``learner.*``,
``actor.*``). The role is the certificate's common name, which zenoh's access control checks: the robot side
and the learner let in only the actor, the actor only the robot side and the learner
(``runtime.config.LinkConfig``). Every certificate names the hosts its process is reached at.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

ROLES = ("robot", "learner", "actor")
# Who may exchange messages with a process of each role (certificate common names).
PEERS = {"robot": ["actor"], "learner": ["actor"], "actor": ["robot", "learner"]}
DAYS = 825  # the longest validity common TLS clients accept for a leaf certificate


class CertificateError(Exception):
    """A certificate could not be made (no openssl, a file in the way, a bad host name)."""


def _openssl(*args: str, cwd: Path) -> None:
    if shutil.which("openssl") is None:
        raise CertificateError("the openssl command is not installed (apt install openssl)")
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise CertificateError(f"openssl {args[0]} failed: {done.stderr.strip().splitlines()[-1:]}")


def _subject_alt_names(hosts: list[str]) -> str:
    names = []
    for host in dict.fromkeys(["localhost", "127.0.0.1", *hosts]):
        try:
            names.append(f"IP:{ipaddress.ip_address(host)}")
        except ValueError:
            if not host or any(c in host for c in ",= /"):
                raise CertificateError(f"host {host!r} is neither an IP address nor a DNS name") from None
            names.append(f"DNS:{host}")
    return ",".join(names)


def make_certificates(directory: str | Path, roles: list[str], hosts: list[str]) -> list[Path]:
    """A CA in ``directory`` (made unless ``ca.pem`` and ``ca.key`` are there) and a certificate and key per role,
    valid for ``hosts`` (and localhost). Refuses to overwrite a role's files. Returns the files written."""
    out = Path(directory)
    unknown = sorted(set(roles) - set(ROLES))
    if unknown or not roles:
        raise CertificateError(f"roles {unknown or roles}: expected some of {list(ROLES)}")
    taken = [str(out / f"{r}{ext}") for r in roles for ext in (".pem", ".key") if (out / f"{r}{ext}").exists()]
    if taken:
        raise CertificateError(f"{taken[0]} exists: remove it to make a new one")
    san = _subject_alt_names(hosts)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if not ((out / "ca.pem").is_file() and (out / "ca.key").is_file()):
        if (out / "ca.pem").exists() or (out / "ca.key").exists():
            raise CertificateError(f"{out} has only one of ca.pem and ca.key: a CA needs both")
        _openssl("req", "-x509", "-newkey", "rsa:3072", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
                 "-days", str(DAYS), "-subj", "/CN=robot-parl session CA", cwd=out)
        written += [out / "ca.pem", out / "ca.key"]
    with tempfile.TemporaryDirectory() as tmp:
        ext = Path(tmp) / "ext.cnf"
        ext.write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
                       "extendedKeyUsage=serverAuth,clientAuth\n")
        for role in roles:
            csr = Path(tmp) / f"{role}.csr"
            _openssl("req", "-newkey", "rsa:3072", "-nodes", "-keyout", f"{role}.key", "-out", str(csr),
                     "-subj", f"/CN={role}", cwd=out)
            _openssl("x509", "-req", "-in", str(csr), "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                     "-out", f"{role}.pem", "-days", str(DAYS), "-extfile", str(ext), cwd=out)
            written += [out / f"{role}.pem", out / f"{role}.key"]
    for path in written:
        if path.suffix == ".key":
            os.chmod(path, 0o600)
    return written


def role_transport(role: str, certificates: str, listen: list[str], connect: list[str], insecure: bool = False):
    """The TransportConfig of a process of ``role``: with ``certificates`` (a directory of :func:`make_certificates`),
    mutual TLS with its own certificate, letting in only the roles in PEERS[role]; without, plain tcp, refused
    beyond loopback unless ``insecure``."""
    from robot_parl.transport.session import TlsConfig, TransportConfig
    from robot_parl.typed_config import require

    endpoints = listen + connect
    if certificates:
        d = Path(certificates)
        plain = [e for e in endpoints if not e.startswith("tls/")]
        require(not plain, "certificates", "'tls/' endpoints only when certificates are given", plain)
        tls = TlsConfig(ca=str(d / "ca.pem"), certificate=str(d / f"{role}.pem"), private_key=str(d / f"{role}.key"),
                        allow=PEERS[role])
        return TransportConfig(listen=listen, connect=connect, tls=tls)
    exposed = [e for e in endpoints if not _on_loopback(e)]
    require(insecure or not exposed, "insecure", "true to send plain tcp beyond this machine (a trusted network "
            "only); else certificates from `robot-parl certs` and tls/ endpoints", exposed)
    return TransportConfig(listen=listen, connect=connect)


def _on_loopback(endpoint: str) -> bool:
    """Whether a zenoh endpoint (``proto/host:port``) stays on this machine."""
    host = endpoint.partition("/")[2].rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
