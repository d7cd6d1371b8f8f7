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


class LearnerLink:
    """The learner's side of weight sync, as a test drives it: weights, then the heartbeat announcing them."""

    def __init__(self, session, session_name: str):
        from robot_parl.runtime.weights import WeightPublisher
        from robot_parl.transport.channel import Publisher
        from robot_parl.transport.keys import KeySpace

        keys = KeySpace(session_name, "learner")
        self.weights = WeightPublisher(session, keys)
        self._status = Publisher(session, keys.status)
        self.published: dict[str, dict[str, int]] = {}  # instance -> part -> version

    def publish(self, part: str, instance: str, version: int, state: dict, announce: bool = True) -> None:
        from robot_parl.runtime.weights import Weights

        self.weights.publish(Weights(part, instance, version, state))
        if announce:
            self.announce(instance, {part: version})

    def announce(self, instance: str, versions: dict[str, int]) -> None:
        """A heartbeat of learner ``instance`` saying it published these versions (and those before)."""
        from robot_parl.transport.messages import LearnerStatus

        self.published.setdefault(instance, {}).update(versions)
        self._status.put(LearnerStatus(time.monotonic_ns(), instance, dict(self.published[instance])))

    def close(self) -> None:
        self.weights.close()
        self._status.close()


@pytest.fixture
def learner_link():
    """learner_link(session, session_name) -> a LearnerLink on that zenoh session, closed after the test."""
    links = []

    def make(session, session_name: str) -> LearnerLink:
        links.append(LearnerLink(session, session_name))
        return links[-1]

    yield make
    for link in links:
        link.close()
