"""robot-parl's ROS 2 side: the robot-side node (ROS topics <-> the robot-parl protocol over zenoh) and a
simulated robot as a ROS 2 node. Imports only the light part of robot_parl (no torch)."""
