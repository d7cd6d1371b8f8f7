"""`robot-parl calibrate`: board, capture, intrinsics, hand-eye, verify, camera-info.

Typical session for a rig's camera::

    robot-parl calibrate board --board charuco_5x7_30mm --out boards/          # print at 100 % scale
    robot-parl calibrate capture --source realsense --out caps/front --count 25
    robot-parl calibrate intrinsics --captures caps/front --rig widowx --camera front
    robot-parl calibrate hand-eye --captures caps/front --calibration calibration/widowx/front.yaml \\
        --setup eye_to_hand
    robot-parl calibrate verify --captures caps/today --calibration calibration/widowx/front.yaml

Only ``intrinsics`` and ``hand-eye`` write calibration files, and only after every check passed.
Exit status: 0 ok, 1 drift found by ``verify``, 2 bad input (the message says what is missing).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from typing import Any

DEFAULT_BOARD = "charuco_5x7_30mm"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `calibrate` and its subcommands to the `robot-parl` subparsers."""
    from robot_parl.calibration.hand_eye import METHODS, SETUPS
    from robot_parl.calibration.intrinsics import MIN_VIEWS

    parser = subparsers.add_parser("calibrate", help="camera calibration: ChArUco board, intrinsics, hand-eye, drift")
    sub = parser.add_subparsers(dest="calibrate", required=True)

    board = sub.add_parser("board", help="write a printable board (PNG with its DPI, PDF at true size)")
    board.add_argument("--board", default=DEFAULT_BOARD, help="board name (this package's boards/) or YAML path")
    board.add_argument("--out", default=".", help="output directory")
    board.add_argument("--dpi", type=float, default=300.0, help="PNG resolution (dots per inch)")
    board.set_defaults(run=run, action=_board)

    cap = sub.add_parser("capture", help="save images (and end-effector poses) into a capture directory")
    cap.add_argument("--out", required=True, help="new or empty capture directory")
    cap.add_argument("--source", choices=["sim", "realsense", "robot"], required=True,
                     help="sim: the MuJoCo tabletop with a board; realsense: pyrealsense2 colour stream; "
                          "robot: a robot side's observations over zenoh (frames + end-effector pose)")
    cap.add_argument("--camera", default="wrist", help="sim: wrist (board on the table) or front (board on the "
                                                        "gripper); robot: the camera name in its observations")
    cap.add_argument("--count", type=int, default=20, help="number of captures")
    cap.add_argument("--board", default=DEFAULT_BOARD, help="sim: the board to place in the scene")
    cap.add_argument("--seed", type=int, default=0, help="sim: seed of the sampled gripper poses")
    cap.add_argument("--width", type=int, default=640)
    cap.add_argument("--height", type=int, default=480)
    cap.add_argument("--interval", type=float, default=0.0,
                     help="realsense/robot: seconds between captures; 0 = press Enter before each capture")
    cap.add_argument("--session", default="default", help="robot: session name in the key space")
    cap.add_argument("--robot", default="robot0", help="robot: robot name in the key space")
    cap.add_argument("--connect", nargs="*", default=["tcp/127.0.0.1:7447"], help="robot: zenoh endpoints")
    cap.set_defaults(run=run, action=_capture)

    intr = sub.add_parser("intrinsics", help="camera matrix and distortion from a capture directory")
    intr.add_argument("--captures", required=True, help="capture directory")
    intr.add_argument("--rig", required=True, help="rig name: the file goes to <root>/<rig>/<camera>.yaml")
    intr.add_argument("--camera", required=True, help="camera name (as in the robot spec)")
    intr.add_argument("--board", default=DEFAULT_BOARD, help="board name or YAML path")
    intr.add_argument("--root", default=None, help="calibration root (default: the repository's calibration/)")
    intr.add_argument("--min-views", type=int, default=MIN_VIEWS, help="fewest views showing the board")
    intr.add_argument("--skip-missing", action="store_true", help="drop images without the board instead of failing")
    intr.add_argument("--k-coefficients", type=int, choices=[2, 3], default=2,
                      help="radial terms: 2 = k1, k2 (k3 fixed at 0), 3 = k1..k3")
    intr.add_argument("--max-rms", type=float, default=1.0, help="largest acceptable overall error (px)")
    intr.set_defaults(run=run, action=_intrinsics)

    he = sub.add_parser("hand-eye", help="camera extrinsics from robot poses and board views; updates the file")
    he.add_argument("--captures", required=True, help="capture directory with end-effector poses")
    he.add_argument("--calibration", required=True, help="the camera's calibration file (intrinsics)")
    he.add_argument("--setup", choices=list(SETUPS), required=True,
                    help="eye_in_hand: camera on the gripper, board fixed; eye_to_hand: camera fixed, board on gripper")
    he.add_argument("--method", choices=list(METHODS), default="tsai", help="the method whose result is stored")
    he.add_argument("--compare", nargs="*", choices=list(METHODS), default=["park", "horaud"],
                    help="methods that must agree with --method (none: skip the check)")
    he.add_argument("--board", default=DEFAULT_BOARD, help="board name or YAML path")
    he.add_argument("--skip-missing", action="store_true", help="drop images without the board instead of failing")
    he.add_argument("--max-rotation-deg", type=float, default=1.0, help="largest method disagreement (degrees)")
    he.add_argument("--max-translation-mm", type=float, default=5.0, help="largest method disagreement (mm)")
    he.set_defaults(run=run, action=_hand_eye)

    ver = sub.add_parser("verify", help="compare a fresh capture with the stored calibration (drift check)")
    ver.add_argument("--captures", required=True, help="fresh capture directory")
    ver.add_argument("--calibration", required=True, help="the stored calibration file")
    ver.add_argument("--board", default=DEFAULT_BOARD, help="board name or YAML path")
    ver.add_argument("--method", choices=list(METHODS), default=None,
                     help="hand-eye method for the extrinsics check (default: the stored one)")
    ver.add_argument("--focal-pct", type=float, default=1.0)
    ver.add_argument("--principal-px", type=float, default=5.0)
    ver.add_argument("--reprojection-px", type=float, default=0.5,
                     help="fresh views may reach max(this, 3 x the stored RMS) under the stored intrinsics")
    ver.add_argument("--rotation-deg", type=float, default=1.0)
    ver.add_argument("--translation-mm", type=float, default=5.0)
    ver.set_defaults(run=run, action=_verify)

    info = sub.add_parser("camera-info", help="print the sensor_msgs/CameraInfo fields of a calibration file")
    info.add_argument("--calibration", required=True)
    info.add_argument("--rectified", metavar="WxH", help="for frames rectified on the robot side to this size")
    info.set_defaults(run=run, action=_camera_info)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the chosen `calibrate` subcommand; bad input prints one line and returns 2."""
    try:
        return args.action(args)
    # Input errors (CalibrationError and ConfigError are ValueErrors) print one line; bugs keep their traceback.
    except (ValueError, FileNotFoundError, FileExistsError, ImportError, TimeoutError) as err:
        print(f"robot-parl calibrate {args.calibrate}: {err}", file=sys.stderr)
        return 2


def _board(args: argparse.Namespace) -> int:
    from robot_parl.calibration.board import load_board, write_printable

    spec = load_board(args.board)
    png, pdf = write_printable(spec, args.out, args.dpi)
    print(f"wrote {png} ({args.dpi:g} dpi) and {pdf} ({spec.width_m * 1e3:g} x {spec.height_m * 1e3:g} mm): print at "
          f"100% scale and check that a square measures {spec.square_length_m * 1e3:g} mm")
    return 0


def _capture(args: argparse.Namespace) -> int:
    from robot_parl.calibration.capture import RealSenseSource, RobotSideCamera, save_captures

    closers = []
    if args.source == "sim":
        import numpy as np

        from robot_parl.calibration.board import load_board
        from robot_parl.calibration.sim_scene import CAMERA_FOR_MOUNT, BoardScene

        mounts = {camera: mount for mount, camera in CAMERA_FOR_MOUNT.items()}
        if args.camera not in mounts:
            raise ValueError(f"sim camera {args.camera!r} unknown; expected one of {sorted(mounts)}")
        scene = BoardScene(load_board(args.board), mounts[args.camera], args.width, args.height)
        closers.append(scene.close)
        source: Any = scene.captures(args.camera, scene.sample_gripper_poses(args.count,
                                                                             np.random.default_rng(args.seed)))
    else:
        if args.source == "realsense":
            grab: Any = RealSenseSource(args.width, args.height)
        else:
            from robot_parl.transport.keys import KeySpace
            from robot_parl.transport.session import TransportConfig, open_session

            session = open_session(TransportConfig(listen=[], connect=args.connect))
            closers.append(session.close)
            grab = RobotSideCamera(session, KeySpace(args.session, args.robot), args.camera)
        closers.insert(0, grab.close)
        source = _paced(grab, args.interval)
    try:
        records = save_captures(source, args.out, args.count, camera=args.camera,
                                on_saved=lambda i, c: print(f"capture {i + 1}/{args.count}"
                                                            + ("" if c.ee_pose is not None else " (no pose)"),
                                                            flush=True))
    finally:
        for close in closers:
            close()
    print(f"wrote {len(records)} captures to {args.out}")
    return 0


def _paced(grab: Any, interval: float):
    """A callable source that waits for Enter (interval 0) or ``interval`` seconds before each capture."""

    def paced():
        if interval > 0:
            time.sleep(interval)
        else:
            input("move the robot/board, then press Enter to capture ")
        return grab()

    return paced


def _detected_poses(records: list, board: Any, calib: Any, skip_missing: bool) -> tuple[list, list, dict]:
    """Robot poses and PnP board poses (stored intrinsics) of the captures that show the board and have a pose."""
    from robot_parl.calibration.capture import iter_images
    from robot_parl.calibration.detect import BoardDetector
    from robot_parl.calibration.errors import CalibrationError
    from robot_parl.calibration.intrinsics import detect_views

    no_pose = [r.name for r in records if r.ee_pose is None]
    if no_pose:
        raise CalibrationError(f"captures without an end-effector pose: {', '.join(no_pose)}; hand-eye needs the "
                               "robot's pose with every image (capture with --source robot or sim)")
    detector = BoardDetector(board)
    detections, missing, size = detect_views(iter_images(records), detector)
    if size != (calib.width, calib.height):
        raise CalibrationError(f"captures are {size[0]}x{size[1]} but the calibration of {calib.camera} is for "
                               f"{calib.width}x{calib.height}")
    if missing and not skip_missing:
        raise CalibrationError(f"board {board.name!r} not found in {', '.join(missing)}; pass --skip-missing to drop "
                               "these captures")
    poses = {r.name: r.ee_pose for r in records}
    names = [n for n in poses if n in detections]
    robot = [poses[n] for n in names]
    boards = [detector.pose(detections[n], calib.K, calib.D)[0] for n in names]
    return robot, boards, detections


def _intrinsics(args: argparse.Namespace) -> int:
    from robot_parl.calibration.board import load_board
    from robot_parl.calibration.calib_file import from_intrinsics
    from robot_parl.calibration.capture import iter_images, read_captures
    from robot_parl.calibration.intrinsics import calibrate_intrinsics
    from robot_parl.robots.camera_calibration import CALIBRATION_ROOT, calibration_path, save_calibration

    board = load_board(args.board)
    path = calibration_path(args.rig, args.camera, args.root or CALIBRATION_ROOT)
    result = calibrate_intrinsics(iter_images(read_captures(args.captures)), board, min_views=args.min_views,
                                  allow_missing=args.skip_missing, k_coefficients=args.k_coefficients,
                                  max_rms_px=args.max_rms)
    calib = from_intrinsics(result, args.rig, args.camera, board.name)
    existed = path.is_file()
    save_calibration(calib, path)
    k = result.camera_matrix
    print(f"{len(result.view_errors)} views, RMS {result.rms_px:.3f} px; fx {k[0, 0]:.2f} fy {k[1, 1]:.2f} "
          f"cx {k[0, 2]:.2f} cy {k[1, 2]:.2f} px")
    for name, why in result.rejected.items():
        print(f"  rejected {name}: {why}")
    print(f"wrote {path}" + (" (replaced; run hand-eye again: extrinsics depend on the intrinsics)" if existed else ""))
    return 0


def _hand_eye(args: argparse.Namespace) -> int:
    from robot_parl.calibration.board import load_board
    from robot_parl.calibration.calib_file import with_extrinsics
    from robot_parl.calibration.capture import read_captures
    from robot_parl.calibration.errors import CalibrationError
    from robot_parl.calibration.hand_eye import calibrate_hand_eye
    from robot_parl.calibration.verify import DriftThresholds, consistency_checks, methods_spread
    from robot_parl.robots.camera_calibration import load_calibration, resolve_calibration_path, save_calibration

    path = resolve_calibration_path(args.calibration)
    calib = load_calibration(path)
    robot, boards, _ = _detected_poses(read_captures(args.captures), load_board(args.board), calib, args.skip_missing)
    methods = [args.method] + [m for m in args.compare if m != args.method]
    results = {m: calibrate_hand_eye(robot, boards, args.setup, m) for m in methods}
    chosen = results[args.method]
    spread = None
    if len(results) > 1:
        checks = consistency_checks(results, DriftThresholds(rotation_deg=args.max_rotation_deg,
                                                             translation_mm=args.max_translation_mm))
        bad = [str(c) for c in checks if c.exceeded]
        if bad:
            raise CalibrationError("hand-eye methods disagree (noisy poses, a moving board or camera, or "
                                   f"unsynchronised poses and images): {'; '.join(bad)}; {path} left unchanged")
        spread = methods_spread(results)
    save_calibration(with_extrinsics(calib, chosen, spread), path)
    t = chosen.transform[:3, 3]
    print(f"{args.setup} ({args.method}, {chosen.poses} poses): camera at {t.round(4).tolist()} m in the "
          f"{chosen.parent_frame} frame; residual {chosen.rotation_residual_deg:.3f} deg / "
          f"{chosen.translation_residual_mm:.2f} mm"
          + ("" if spread is None else f"; methods agree within {spread[0]:.3f} deg / {spread[1]:.2f} mm"))
    print(f"wrote {path}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from robot_parl.calibration.board import load_board
    from robot_parl.calibration.calib_file import from_intrinsics, with_extrinsics
    from robot_parl.calibration.capture import iter_images, read_captures
    from robot_parl.calibration.detect import BoardDetector
    from robot_parl.calibration.errors import CalibrationDriftWarning, CalibrationError
    from robot_parl.calibration.hand_eye import calibrate_hand_eye
    from robot_parl.calibration.intrinsics import MIN_VIEWS, calibrate_intrinsics, detect_views
    from robot_parl.calibration.verify import DriftThresholds, check_drift, reprojection_errors
    from robot_parl.robots.camera_calibration import load_calibration

    stored = load_calibration(args.calibration)
    board = load_board(args.board)
    thresholds = DriftThresholds(focal_pct=args.focal_pct, principal_px=args.principal_px,
                                 reprojection_px=args.reprojection_px, rotation_deg=args.rotation_deg,
                                 translation_mm=args.translation_mm)
    records = read_captures(args.captures)
    detector = BoardDetector(board)
    detections, missing, size = detect_views(iter_images(records), detector)
    if size != (stored.width, stored.height):
        raise CalibrationError(f"captures are {size[0]}x{size[1]} but {args.calibration} is for "
                               f"{stored.width}x{stored.height}")
    if not detections:
        raise CalibrationError(f"board {board.name!r} not found in any of the {len(records)} captures")
    for name in missing:
        print(f"  board not found in {name}; skipped")
    notes = []
    fresh = None
    if len(detections) >= MIN_VIEWS:
        try:
            result = calibrate_intrinsics(((n, img) for n, img in iter_images(records) if n in detections), board)
            fresh = from_intrinsics(result, stored.rig, stored.camera, board.name)
        except CalibrationError as err:
            notes.append(f"no fresh intrinsics fit: {err}")
    else:
        notes.append(f"{len(detections)} views: too few (< {MIN_VIEWS}) for a fresh intrinsics fit")
    ext = stored.extrinsics
    posed = [r for r in records if r.name in detections and r.ee_pose is not None]
    if ext is not None and fresh is not None and len(posed) == len(detections):
        robot = [r.ee_pose for r in posed]
        boards = [detector.pose(detections[r.name], stored.K, stored.D)[0] for r in posed]
        fresh = with_extrinsics(fresh, calibrate_hand_eye(robot, boards, ext.setup, args.method or ext.method))
    elif ext is not None:
        notes.append("extrinsics not checked: needs a fresh intrinsics fit and a pose with every capture")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CalibrationDriftWarning)
        report = check_drift(stored, fresh, reprojection_errors(detections, detector, stored), thresholds)
    print(report.summary())
    for note in notes:
        print(f"  note: {note}")
    for w in caught:
        print(f"WARNING: {w.message}", file=sys.stderr)
    return 1 if report.drifted else 0


def _camera_info(args: argparse.Namespace) -> int:
    import yaml

    from robot_parl.robots.camera_calibration import camera_info, load_calibration, resolve_calibration_path
    from robot_parl.robots.rectify import Rectifier

    path = resolve_calibration_path(args.calibration)
    calib = load_calibration(path)
    if args.rectified:
        try:
            width, height = (int(v) for v in args.rectified.lower().split("x"))
        except ValueError:
            raise SystemExit(f"robot-parl calibrate camera-info: --rectified expects WxH, got {args.rectified!r}") \
                from None
        fields = Rectifier(calib, (width, height), source=str(path)).camera_info()
    else:
        fields = camera_info(calib)
    print(yaml.safe_dump(fields, sort_keys=False, default_flow_style=None, width=200), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m robot_parl.calibration.cli ...`: the `calibrate` command on its own."""
    parser = argparse.ArgumentParser(prog="robot-parl")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
