"""Camera calibration: ChArUco boards, intrinsics, hand-eye extrinsics, verification and drift checks.

The tool that measures cameras and writes their calibration files; the files' format, and the rectification
a robot side applies with them, are the robots' (:mod:`robot_parl.robots.camera_calibration`,
:mod:`robot_parl.robots.rectify`). Modules (each imports OpenCV only inside the functions that need it, and
none imports torch):

- ``board``: board definitions (package data, boards/*.yaml) and printable PNG/PDF at true scale
- ``detect``: ChArUco detection and board pose (PnP) in one image
- ``intrinsics``: camera matrix and distortion from many views, per-view errors, bad-view rejection
- ``hand_eye``: eye-in-hand / eye-to-hand calibration (OpenCV calibrateHandEye), motion checks
- ``verify``: cross-method consistency and the drift check against a stored calibration
- ``calib_file``: intrinsics and hand-eye results as calibration files
- ``capture``: save images and end-effector poses from any source (RealSense, sim, a robot side)
- ``sim_scene``: the MuJoCo tabletop with a board, a ground-truth source for the whole pipeline
- ``cli``: ``robot-parl calibrate ...``
"""
