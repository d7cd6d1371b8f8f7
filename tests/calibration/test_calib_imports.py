"""The robot side's view of calibration: no torch ever, and OpenCV only once a calibrated camera needs it."""

import subprocess
import sys

MODULES = ["calibration.board", "calibration.calib_file", "calibration.capture", "calibration.cli",
           "calibration.detect", "calibration.errors", "calibration.geometry", "calibration.hand_eye",
           "calibration.intrinsics", "calibration.verify", "robots.camera_calibration", "robots.rectify"]


def test_calibration_never_imports_torch_and_imports_opencv_lazily():
    code = ("import sys\n"
            + "".join(f"import robot_parl.{m}\n" for m in MODULES)
            + "import robot_parl.robots.side\n"
            + "print(sorted(m for m in ('torch', 'cv2', 'mujoco', 'matplotlib') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
