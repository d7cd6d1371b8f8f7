"""Camera calibration: ChArUco boards, intrinsics, hand-eye extrinsics, verification and drift checks.

Modules (each imports OpenCV only inside the functions that need it, and none imports torch: the
robot side uses :mod:`robot_parl.calibration.rectify` and :mod:`robot_parl.calibration.calib_file`):

- ``board``: board definitions (calibration/boards/*.yaml) and printable PNG/PDF at true scale
- ``detect``: ChArUco detection and board pose (PnP) in one image
- ``intrinsics``: camera matrix and distortion from many views, per-view errors, bad-view rejection
- ``hand_eye``: eye-in-hand / eye-to-hand calibration (OpenCV calibrateHandEye), motion checks
- ``verify``: cross-method consistency and the drift check against a stored calibration
- ``calib_file``: the per-camera YAML (calibration/<rig>/<camera>.yaml) and CameraInfo fields
- ``rectify``: undistort + crop + resize of frames on the robot side
- ``capture``: save images and end-effector poses from any source (RealSense, sim, a robot side)
- ``sim_scene``: the MuJoCo tabletop with a board, a ground-truth source for the whole pipeline
- ``cli``: ``robot-parl calibrate ...``
"""
