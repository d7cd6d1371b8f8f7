"""Teleoperation devices behind one interface (device.py): keyboard, SpaceMouse, a robot side's forwarded
Teleop messages (ROS topics, a simulated robot's scripted expert). No torch."""
