"""Teleop devices: SpaceMouse HID reports (the device itself cannot exist here: recorded-format reports
stand in), the keyboard's key map, Teleop messages forwarded by a robot side over real zenoh."""

import os
import struct
import time

import numpy as np
import pytest

from robot_parl.teleop.device import Paired, hold_action
from robot_parl.teleop.keyboard import Keyboard
from robot_parl.teleop.robot_forwarded import RobotForwarded
from robot_parl.teleop.spacemouse import SpaceMouse, SpaceMouseState, parse_report
from robot_parl.transport.channel import Publisher
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.messages import Teleop

LOW = np.array([-0.02] * 3 + [-0.1] * 3 + [0.0], np.float32)
HIGH = np.array([0.02] * 3 + [0.1] * 3 + [1.0], np.float32)


def _report(report_id: int, *values: int) -> list[int]:
    return list(bytes([report_id]) + struct.pack(f"<{len(values)}h", *values))


def test_spacemouse_reports_parse_in_both_layouts():
    state = SpaceMouseState()
    parse_report(_report(1, 10, -20, 30), state)
    parse_report(_report(2, 1, 2, 3), state)
    np.testing.assert_array_equal(state.axes, [10, -20, 30, 1, 2, 3])
    parse_report(_report(1, 4, 5, 6, 7, 8, -9), state)  # newer devices: one 13-byte report
    np.testing.assert_array_equal(state.axes, [4, 5, 6, 7, 8, -9])
    parse_report([3, 0b10, 0, 0, 0, 0, 0], state)
    assert state.buttons == 2


def test_spacemouse_scales_to_bounds_with_a_dead_zone_and_toggles_the_gripper():
    reports: list[list[int]] = []
    mouse = SpaceMouse(LOW, HIGH, deadzone=0.1, read=lambda: reports.pop(0) if reports else [])
    reports += [_report(1, 350, -175, 20, 0, 0, 700)]  # full +x, half -y, z in the dead zone, yaw saturates
    out = mouse.poll()
    np.testing.assert_allclose(out.values, [0.02, -0.01, 0, 0, 0, 0.1, 1.0], atol=1e-7)
    reports += [_report(1, 0, 0, 0, 0, 0, 0)]
    assert mouse.poll().values is None  # at rest: the robot holds
    reports += [[3, 1, 0, 0, 0, 0, 0], [3, 0, 0, 0, 0, 0, 0]]  # left button pressed and released
    assert mouse.poll().values[-1] == 0.0  # closed
    assert mouse.poll().values is None  # no second toggle without a new press
    with pytest.raises(ValueError, match="7 dimensions"):
        SpaceMouse(LOW[:3], HIGH[:3], read=lambda: [])


def test_keyboard_key_map_on_a_pty():
    master, slave = os.openpty()
    keyboard = Keyboard(LOW, HIGH, step=0.5, fd=slave)
    try:
        assert keyboard.poll().values is None
        os.write(master, b"wwaj")
        out = keyboard.poll()
        np.testing.assert_allclose(out.values, [0.02, 0.01, 0, 0, 0, 0.05, 1.0], atol=1e-7)
        os.write(master, b"ss" + b"\r")
        out = keyboard.poll()
        assert out.values[0] == pytest.approx(-0.02) and out.events == ["start"]
        os.write(master, b" yq")
        out = keyboard.poll()
        assert out.values[-1] == 0.0 and out.events == ["success", "quit"]
        with pytest.raises(ValueError, match="step"):
            Keyboard(LOW, HIGH, step=2.0, fd=slave)
    finally:
        keyboard.close()
        os.close(master)
        os.close(slave)


def test_hold_keeps_the_gripper():
    np.testing.assert_array_equal(hold_action(LOW, HIGH, None), [0, 0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(hold_action(LOW, HIGH, 0.25), [0, 0, 0, 0, 0, 0, 0.25])


def test_forwarded_teleop_follows_the_newest_command_fires_buttons_once_and_expires(zenoh_pair, wait_for):
    robot, client = zenoh_pair
    keys = KeySpace("t", "arm")
    device = RobotForwarded(client, keys, max_age_s=0.3)
    pub = Publisher(robot, keys.teleop, block=True)
    assert pub.matched(5)  # the device's subscription reached the publishing session
    try:
        v = np.array([0.01, 0, 0, 0, 0, 0, 1], np.float32)
        pub.put(Teleop(1, "joy", v, buttons={"success": False}))
        pub.put(Teleop(2, "joy", 2 * v, buttons={"success": True}))
        assert wait_for(lambda: device.inbox.pending() == 2, 5)
        out = device.poll()
        np.testing.assert_array_equal(out.values, 2 * v)
        assert out.events == ["success"]
        pub.put(Teleop(3, "joy", v, buttons={"success": True}))  # still held down: no new event
        assert wait_for(lambda: device.inbox.pending() == 1, 5)
        assert device.poll().events == []
        time.sleep(0.4)
        assert device.poll().values is None  # the device went quiet: hold, do not repeat its last motion
        pub.put(Teleop(4, "joy", v, engaged=False))
        assert wait_for(lambda: device.inbox.pending() == 1, 5)
        assert device.poll().values is None
        # a device computed from the observation: wait for the command stamped for it
        other = KeySpace("t", "arm2")  # a robot of its own, so its publisher matches this device alone
        waiting = RobotForwarded(client, other, wait_s=5.0)
        scripted = Publisher(robot, other.teleop, block=True)
        assert scripted.matched(5)
        scripted.put(Teleop(10, "scripted", v))
        assert waiting.poll(stamp_ns=10).values is not None
        waiting.close()
        scripted.close()
        paired = Paired(device, device)
        assert paired.name == "robot+robot"
    finally:
        device.close()
        pub.close()
