"""The live session view (robot_parl/eval/live.py).

The in-process tests check what the server sends; the browser test runs a real `robot-parl finetune`
session (sim robot side, learner, actor with the view) and watches it in Debian's headless chromium,
driven by Playwright with that executable (the test installs chromium with apt-get when it is missing).
It keeps a screenshot in test-artifacts/ (or $ROBOT_PARL_TEST_ARTIFACTS).
"""

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from robot_parl import typed_config
from robot_parl.eval.live import LiveView, parse_address
from robot_parl.runtime.config import FinetuneConfig
from robot_parl.runtime.supervisor import ENTRY
from robot_parl.transport.session import free_loopback_endpoint
from robot_parl.typed_config import ConfigError

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("ROBOT_PARL_TEST_ARTIFACTS", ROOT / "test-artifacts"))
# No background connections: this machine's network is closed, and refused connections slow chromium down.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium, installed with apt-get when missing (CI machines start without it)."""
    if shutil.which("chromium") is None:
        install = ["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"]
        env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(install, capture_output=True, env=env).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env)
            done = subprocess.run(install, capture_output=True, text=True, env=env)
            assert done.returncode == 0, f"cannot install Debian's chromium for the browser test: {done.stderr[-2000:]}"
    return shutil.which("chromium")


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.read()


def test_the_server_sends_the_state_and_the_frames_it_was_given():
    view = LiveView("127.0.0.1:0", title="unit")
    try:
        assert json.loads(_get(view.url + "state.json"))["decision"] is None
        assert b"candidates" in _get(view.url)
        front = np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)
        depth = np.arange(24 * 32, dtype=np.uint16).reshape(24, 32)
        candidates = np.array([[0.01, 0.0], [0.0, -0.02], [0.02, 0.01]])
        view.decision({"front": front, "depth": depth}, candidates, np.array([0.1, -0.3, 0.7]),
                      np.array([0.021, 0.012]), 0.8, step=5, episode_id="ep-1", names=["x", "y"])
        view.session([True, False, True], {"policy": 3, "critic": 7}, {"sample": 12.5}, {"episodes": 3},
                     {"critic_updates": 40, "critic_utd": 1.0})
        state = json.loads(_get(view.url + "state.json"))
        assert state["step_seq"] == 1 and state["cameras"] == ["depth", "front"]
        d = state["decision"]
        assert d["step"] == 5 and d["candidate_q"] == [0.1, -0.3, 0.7] and d["action_q"] == 0.8
        assert np.allclose(d["candidates"], candidates) and d["names"] == ["x", "y"]
        s = state["session"]
        assert s["outcomes"] == [True, False, True] and s["versions"] == {"policy": 3, "critic": 7}
        assert s["learner"]["critic_updates"] == 40
        # frames are the given pixels, losslessly; depth is scaled to 8 bits for viewing
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(_get(view.url + "frame/front.png")))), front)
        shown = np.asarray(Image.open(io.BytesIO(_get(view.url + "frame/depth.png"))))
        assert shown.shape == (24, 32) and shown[0, 0] == 0 and shown[-1, -1] == 255
        with pytest.raises(urllib.error.HTTPError) as missing:
            _get(view.url + "frame/wrist.png")
        assert missing.value.code == 404
    finally:
        view.close()
    with pytest.raises(urllib.error.URLError):  # the server has stopped
        _get(view.url + "state.json")


def test_requests_naming_another_host_are_refused():
    """A page on another site whose DNS name rebinds to 127.0.0.1 sends its own name as Host: refused."""
    import http.client

    view = LiveView("127.0.0.1:0", title="unit")
    port = int(view.url.rsplit(":", 1)[1].strip("/"))
    try:
        for host, status in ((f"127.0.0.1:{port}", 200), (f"localhost:{port}", 200), (f"[::1]:{port}", 200),
                             (f"attacker.example:{port}", 403), ("rebind.attacker.example", 403), ("", 403)):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.putrequest("GET", "/state.json", skip_host=True)
            if host:
                conn.putheader("Host", host)
            conn.endheaders()
            response = conn.getresponse()
            assert (host, response.status) == (host, status)
            body = response.read()
            assert (b"decision" in body) == (status == 200)
            conn.close()
    finally:
        view.close()


def test_bad_addresses_and_a_taken_port_are_clear_errors():
    for bad in ("8765", "localhost:", "127.0.0.1:http", "127.0.0.1:70000"):
        with pytest.raises(ValueError, match="host:port"):
            parse_address(bad)
    with pytest.raises(ConfigError, match="actor.live_view"):
        typed_config.from_dict(FinetuneConfig, {"actor": {"live_view": "8765"}})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"127.0.0.1:{port}.*port 0"):
            LiveView(f"127.0.0.1:{port}")


def test_the_live_page_of_a_running_session_in_headless_chromium(chromium, tmp_path):
    from playwright.sync_api import sync_playwright

    robot_ep, learner_ep = free_loopback_endpoint(), free_loopback_endpoint()
    out = tmp_path / "session"
    log = open(tmp_path / "finetune.log", "w")
    # the gaussian policy class keeps the session light; the page is the same for any policy
    session = subprocess.Popen([sys.executable, "-c", ENTRY, "finetune", "--config", "configs/finetune-tiny-vla.yaml",
                                "--out", str(out), "policy.kind=gaussian", "policy.gaussian.hidden_dims=[32]",
                                "parl.num_samples=8", "parl.top_k=4", "link.session=live",
                                f"link.robot_endpoint={robot_ep}", f"link.learner_endpoint={learner_ep}",
                                "actor.episodes=0", "actor.horizon=10", "actor.live_view=127.0.0.1:0",
                                "learner.publish_critic_every=5"],
                               cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url_file = out / "actor" / "live_view.url"
    try:
        deadline = time.monotonic() + 120
        while not url_file.exists():
            assert session.poll() is None, (tmp_path / "finetune.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the actor did not start its live view"
            time.sleep(0.2)
        url = url_file.read_text().strip()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 760})
            page.goto(url)
            # a camera frame is shown: the sim's 64x64 front image, not a blank one. Checked and measured in one
            # evaluation: the page swaps in each new frame, and an image caught loading has no size.
            size, spread = page.wait_for_function("""() => {
                const img = document.querySelector('img.frame');
                if (!img || !img.complete || img.naturalWidth === 0) return null;
                const c = document.createElement('canvas');
                c.width = img.naturalWidth; c.height = img.naturalHeight;
                const g = c.getContext('2d'); g.drawImage(img, 0, 0);
                const px = g.getImageData(0, 0, c.width, c.height).data;
                let lo = 255, hi = 0;
                for (let k = 0; k < px.length; k += 4) { lo = Math.min(lo, px[k]); hi = Math.max(hi, px[k]); }
                return [[c.width, c.height], hi - lo]; }""", timeout=180_000).json_value()
            assert size == [64, 64] and spread > 30
            assert page.locator("#q-chart rect.candidate").count() == 8  # one bar per candidate
            # the numbers move while the session runs: steps, then finished episodes and trained weights
            seen = int(page.text_content("#step-seq"))
            page.wait_for_function(f"() => Number(document.getElementById('step-seq').textContent) > {seen}")
            page.wait_for_function("() => Number(document.getElementById('episodes').textContent) >= 2"
                                   " && Number(document.getElementById('critic-version').textContent) >= 1",
                                   timeout=180_000)
            assert page.text_content("#success-rate").endswith("%")
            assert page.locator("#outcomes span").count() == int(page.text_content("#episodes"))
            assert int(page.text_content("#learner-critic_updates")) > 0
            assert page.locator("#latency rect").count() >= 5  # sample, encode, optimize, obs_wait, send, ...
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "live_view.png"), full_page=True)
            browser.close()
    finally:
        session.send_signal(signal.SIGINT)
        try:
            session.wait(timeout=60)
        except subprocess.TimeoutExpired:
            session.kill()
            session.wait()
    text = (tmp_path / "finetune.log").read_text()
    assert session.returncode == 0, text[-3000:]
    assert f"live view: {url}" in text  # the supervisor tells the user where to look
    with pytest.raises(urllib.error.URLError):  # the view stopped with the actor
        _get(url + "state.json")
