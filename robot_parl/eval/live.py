"""A live view of a running session: a local web page served by the actor.

The page (live.html) leads with pictures: the newest camera frames, the N candidate actions with their
Q-values and the action the critic chose, and a strip of episode outcomes; then the numbers: success
so far, weight versions, the learner's progress and the actor's latency breakdown. It polls
``/state.json`` a few times a second and fetches a frame only when a new step has arrived.

The actor calls :meth:`LiveView.decision` every step and :meth:`LiveView.session` after each episode
and between episodes; both only store references under a lock, so the control loop pays nothing for
an idle page (PNG encoding happens on the server thread, when a browser asks). The server binds to
127.0.0.1 by default: it has no authentication, so binding elsewhere is the user's explicit choice.
"""

from __future__ import annotations

import io
import ipaddress
import json
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

PAGE = resources.files("robot_parl.eval").joinpath("live.html")


def parse_address(address: str) -> tuple[str, int]:
    """``"host:port"`` -> (host, port); port 0 picks a free port."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"live view address {address!r}: expected host:port, e.g. 127.0.0.1:8765 (port 0: any free)")
    return host, int(port)


def png(image: np.ndarray) -> bytes:
    """An HxW, HxWx1 or HxWx3 image as PNG bytes (depth in millimetres is scaled to 8 bits for viewing)."""
    from PIL import Image

    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.dtype != np.uint8:
        top = float(image.max()) or 1.0
        image = (np.clip(image / top, 0.0, 1.0) * 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG", compress_level=1)
    return out.getvalue()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a closed browser tab is no error
            super().handle_error(request, client_address)


class LiveView:
    """The state behind the page and the HTTP server that shows it; ``close()`` stops the server."""

    def __init__(self, address: str = "127.0.0.1:8765", title: str = "robot-parl"):
        host, port = parse_address(address)
        # Names a browser may use to reach the page: a DNS name outside these (a rebinding attack's) is refused.
        self.host_names = {"localhost", host.lower(), socket.gethostname().lower(), socket.getfqdn().lower()}
        self._lock = threading.Lock()
        self._images: dict[str, np.ndarray] = {}
        self._state: dict[str, Any] = {"title": title, "step_seq": 0, "cameras": [], "decision": None,
                                       "session": None}
        try:
            self._server = _Server((host, port), self._handler())
        except OSError as err:
            raise OSError(f"live view: cannot listen on {host}:{port} ({err.strerror}); set actor.live_view to a "
                          "free host:port, port 0 for any free port, or null to turn the view off") from err
        self._thread = threading.Thread(target=self._server.serve_forever, name="live-view", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def decision(self, images: dict[str, np.ndarray], candidates: np.ndarray, candidate_q: np.ndarray,
                 action: np.ndarray, action_q: float, step: int, episode_id: str, names: list[str],
                 success: dict[str, Any] | None = None) -> None:
        """One control step: the frames it saw, the N candidates [N, A] with their Q [N], and the chosen
        (refined) action [A] with its Q; actions in the robot's units, ``names`` naming their dimensions;
        ``success``: a success classifier's probability for each frame of the episode so far ("trace") and its
        "threshold"."""
        with self._lock:
            self._images = dict(images)
            self._state["step_seq"] += 1
            self._state["cameras"] = sorted(images)
            self._state["decision"] = {"step": step, "episode_id": episode_id, "names": list(names),
                                       "candidates": np.asarray(candidates, float).round(5).tolist(),
                                       "candidate_q": np.asarray(candidate_q, float).round(5).tolist(),
                                       "action": np.asarray(action, float).round(5).tolist(),
                                       "action_q": round(float(action_q), 5),
                                       "success": None if success is None else
                                       {"trace": [round(float(p), 4) for p in success["trace"]],
                                        "threshold": round(float(success["threshold"]), 4)}}

    def session(self, outcomes: list[bool], versions: dict[str, int], latency_ms: dict[str, float],
                counters: dict[str, int], learner: dict[str, Any] | None) -> None:
        """Per-episode outcomes, weight versions, the latency breakdown, the actor's counters and the
        learner's heartbeat (None while no learner has been heard)."""
        with self._lock:
            self._state["session"] = {"outcomes": [bool(o) for o in outcomes], "versions": dict(versions),
                                      "latency_ms": {k: round(float(v), 2) for k, v in latency_ms.items()},
                                      "counters": {k: int(v) for k, v in counters.items()}, "learner": learner}

    def snapshot(self) -> dict[str, Any]:
        """The JSON the page polls."""
        with self._lock:
            return json.loads(json.dumps(self._state))

    def frame(self, camera: str) -> np.ndarray | None:
        with self._lock:
            return self._images.get(camera)

    def host_allowed(self, header: str) -> bool:
        """Whether a request's Host header names this machine: an IP address or one of :attr:`host_names`."""
        name = urlparse(f"//{header}").hostname or ""
        try:
            ipaddress.ip_address(name)
            return True
        except ValueError:
            return name.lower() in self.host_names

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        view = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if not view.host_allowed(self.headers.get("Host", "")):
                    self.send_error(HTTPStatus.FORBIDDEN, "unknown Host: open the page by the address the actor "
                                                          "printed")
                    return
                path = urlparse(self.path).path
                if path in ("/", "/index.html"):
                    self._reply(PAGE.read_bytes(), "text/html; charset=utf-8")
                elif path == "/state.json":
                    self._reply(json.dumps(view.snapshot()).encode(), "application/json")
                elif path.startswith("/frame/") and path.endswith(".png"):
                    image = view.frame(unquote(path[len("/frame/"):-len(".png")]))
                    if image is None:
                        self.send_error(HTTPStatus.NOT_FOUND, "no such camera (yet)")
                    else:
                        self._reply(png(image), "image/png")
                else:
                    self.send_error(HTTPStatus.NOT_FOUND)

            def _reply(self, body: bytes, kind: str) -> None:
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass  # a poll every 250 ms would flood the actor's log

        return Handler
