import importlib.util
import time

import pytest

from robot_parl.transport.session import TransportConfig, free_loopback_endpoint, open_session

# tests/ros2 run in their own virtualenv with real rclpy (`make test` runs both); the main one has no ROS,
# and the ROS one has no torch.
collect_ignore = [] if importlib.util.find_spec("rclpy") else ["ros2"]


@pytest.fixture(autouse=True)
def _one_thread():
    # 2 threads on a loaded 2-core machine are several times slower than one.
    if importlib.util.find_spec("torch"):
        import torch

        torch.set_num_threads(1)


@pytest.fixture
def zenoh_pair():
    """Two zenoh sessions on loopback: the first listens, the second connects to it."""
    endpoint = free_loopback_endpoint()
    a = open_session(TransportConfig(listen=[endpoint], connect=[]))
    b = open_session(TransportConfig(connect=[endpoint]))
    assert _wait_for(lambda: list(a.info.peers_zid()) and list(b.info.peers_zid()), 10), "the zenoh link came not up"
    yield a, b
    b.close()
    a.close()


def _wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def wait_for():
    """wait_for(condition, timeout) -> whether the condition held before the timeout."""
    return _wait_for
