"""The robot-side node: ROS 2 topics of the robot's drivers <-> the robot-parl protocol over zenoh.

The control clock, deadlines, safety filter (bounds, per-step limit, workspace box) and watchdog are
robot_parl's RobotSide, the same as for simulated robots; this node only adapts ROS topics to it and
publishes diagnostics (the robot side's counters) once a second. No torch is imported here.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile

from robot_parl.cameras import CameraError, CameraSource, WithCameras, realsense_sources
from robot_parl.robots.side import RobotSide
from robot_parl.robots.spec import load_spec
from robot_parl.transport.certs import role_transport
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.session import open_session
from robot_parl_ros.params import declare
from robot_parl_ros.ros_adapter import RosAdapter


def _diagnostics(node: Node, side: RobotSide, topic: str):
    pub = node.create_publisher(DiagnosticArray, topic, 10)

    def publish() -> None:
        counters = side.all_counters()
        status = DiagnosticStatus(name=f"robot_parl/{side.keys.robot}", hardware_id=side.spec.name,
                                  level=DiagnosticStatus.ERROR if side.safety.estopped else DiagnosticStatus.OK,
                                  message="e-stop latched" if side.safety.estopped else
                                  ("running" if side.running else "idle"),
                                  values=[KeyValue(key=k, value=str(v)) for k, v in sorted(counters.items())])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)

    return node.create_timer(1.0, publish)


def _camera_infos(node: Node, side: RobotSide) -> list:
    """Latched CameraInfo for every calibrated camera: ``robot_parl/<camera>/camera_info`` describes the raw
    images of the camera's own driver, ``.../rectified/camera_info`` the frames this robot side sends."""
    from sensor_msgs.msg import CameraInfo

    from robot_parl.robots.camera_calibration import camera_info, load_calibration, resolve_calibration_path

    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    publishers = []
    for camera in side.spec.cameras:
        if not camera.calibration:
            continue
        raw = camera_info(load_calibration(resolve_calibration_path(camera.calibration)))
        for topic, fields in ((f"robot_parl/{camera.name}/camera_info", raw),
                              (f"robot_parl/{camera.name}/rectified/camera_info",
                               side.rectifiers[camera.name].camera_info())):
            msg = CameraInfo(**fields)
            msg.header.stamp, msg.header.frame_id = node.get_clock().now().to_msg(), camera.name
            pub = node.create_publisher(CameraInfo, topic, latched)
            pub.publish(msg)
            publishers.append(pub)
    return publishers


class ParameterError(ValueError):
    """The node's parameters cannot run: a bad spec, a camera the spec lacks, a device that does not open."""


def run(node: Node, stop: threading.Event, open_camera: Callable[..., CameraSource] | None = None) -> RobotSide:
    """Run the robot side with ``node``'s parameters until ``stop`` is set; returns it, closed.

    ``open_camera`` opens the RealSense cameras of ``realsense_cameras`` (see robot_parl.cameras'
    realsense_sources; default: connected devices by serial). Raises ParameterError before anything runs
    for parameters it cannot run with.
    """
    try:
        params = declare(node)
        spec = load_spec(params.spec, params.spec_overrides)
        ros = RosAdapter(node, spec, params)
        sources = realsense_sources(params.realsense_cameras, spec, "realsense_cameras", open_camera)
        transport = role_transport("robot", params.certificates, params.listen, params.connect, params.insecure)
        transport.validate()
    except (ValueError, CameraError, ImportError) as err:
        raise ParameterError(str(err)) from err
    adapter = WithCameras(ros, sources, params.camera_stall_s) if sources else ros
    session = open_session(transport)
    side = RobotSide(adapter, session, KeySpace(params.session, params.robot), synchronous=params.synchronous,
                     instruction=params.instruction)
    ros.side = side
    _diagnostics(node, side, params.diagnostics_topic)
    _camera_infos(node, side)
    # one thread: rclpy's MultiThreadedExecutor hands each callback to a pool, which delayed camera frames by
    # 6-8 ms here (benchmarks/ros2.py); no callback blocks, and the reset service is awaited from the tick thread
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    direct = f", RealSense {params.realsense_cameras}" if sources else ""
    node.get_logger().info(f"robot side {spec.name} ({spec.command_mode}, {spec.control_rate_hz:g} Hz{direct}) on "
                           f"{params.listen or params.connect}, keys robot_parl/{params.session}/{params.robot}/*")
    try:
        side.run(stop)
    finally:
        side.close()
        if sources:
            adapter.close()  # the camera readers, then the devices
        session.close()
        # stop spinning and wait for the executor's thread before tearing the node down: a C++ thread still
        # running at interpreter exit aborts the process
        executor.shutdown(timeout_sec=5.0)
        spinner.join(timeout=5.0)
    return side


def main(args: list[str] | None = None) -> None:
    """Run the robot side until SIGINT/SIGTERM; exits with a message for parameters it cannot run with."""
    rclpy.init(args=args)
    node = Node("robot_parl_robot_side")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        run(node, stop)
    except ParameterError as err:
        node.get_logger().fatal(str(err))
        raise SystemExit(1) from None
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
