"""A rosbag2 (MCAP and sqlite3, written with rosbags as ROS 2 would) becomes one aligned episode."""

import numpy as np
import pytest

from robot_parl.data.episode_store import EpisodeStore
from robot_parl.data.rosbag_import import import_bag, infer_schema, open_or_create

T0 = 1_700_000_000_000_000_000  # ns
N = 20  # camera frames at 10 Hz


def write_bag(path, storage):
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_JAZZY)
    Header, Time = ts.types["std_msgs/msg/Header"], ts.types["builtin_interfaces/msg/Time"]
    Image, JointState = ts.types["sensor_msgs/msg/Image"], ts.types["sensor_msgs/msg/JointState"]
    Twist, TwistStamped = ts.types["geometry_msgs/msg/Twist"], ts.types["geometry_msgs/msg/TwistStamped"]
    Vector3, Float64 = ts.types["geometry_msgs/msg/Vector3"], ts.types["std_msgs/msg/Float64"]

    def header(ns):
        return Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9), frame_id="base")

    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as w:
        cam = w.add_connection("/camera/image_raw", Image.__msgtype__, typestore=ts)
        joints = w.add_connection("/joint_states", JointState.__msgtype__, typestore=ts)
        cmd = w.add_connection("/cmd_vel", TwistStamped.__msgtype__, typestore=ts)
        grip = w.add_connection("/gripper", Float64.__msgtype__, typestore=ts)
        messages = []
        for i in range(N):
            t = T0 + i * 100_000_000
            bgr = np.zeros((8, 12, 3), np.uint8)
            bgr[..., 2] = i  # red channel of a bgr8 image carries the frame index
            # frame 5 arrives 150 ms after its stamp (late); the others 2 ms after
            log = t + (150_000_000 if i == 5 else 2_000_000)
            img = Image(header=header(t), height=8, width=12, encoding="bgr8", is_bigendian=0, step=36,
                        data=bgr.reshape(-1))
            messages.append((log, cam, img, Image.__msgtype__))
            twist = Twist(linear=Vector3(x=i, y=0.0, z=0.0), angular=Vector3(x=0.0, y=0.0, z=-i))
            jitter = 4_000_000 if i % 2 else -3_000_000  # commands a few ms off the frame
            messages.append((t + jitter, cmd, TwistStamped(header=header(t + jitter), twist=twist),
                             TwistStamped.__msgtype__))
            if i != 7:  # the gripper command of frame 7 is missing: that frame cannot be aligned
                messages.append((t + 1_000_000, grip, Float64(data=i / 10), Float64.__msgtype__))
        for k in range(N * 5):  # joint states at 50 Hz
            t = T0 + k * 20_000_000 - 1_000_000
            messages.append((t, joints, JointState(header=header(t), name=["a", "b"], position=np.array([k, -k], float),
                                                   velocity=np.zeros(2), effort=np.zeros(2)), JointState.__msgtype__))
        for log, conn, msg, msgtype in sorted(messages, key=lambda m: m[0]):
            w.write(conn, log, ts.serialize_cdr(msg, msgtype))


MAPPING = {"images/front": ["/camera/image_raw"], "proprio": ["/joint_states"],
           "action": ["/cmd_vel", "/gripper"]}


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_bag_becomes_one_aligned_episode(tmp_path, storage):
    bag = tmp_path / "bag"
    write_bag(bag, storage)
    schema = infer_schema(bag, MAPPING, 0.02)
    assert schema["images/front"].shape == (8, 12, 3) and schema["action"].shape == (7,)
    store = open_or_create(tmp_path / "store", schema)
    with store.writer("test") as w:
        report = import_bag(bag, w, MAPPING, clock="images/front", tolerance_s=0.02, instruction="wipe the table",
                            success=True)
    assert report.clock_messages == N and report.frames == N - 1
    assert report.dropped == {"images/front": 0, "proprio": 0, "action": 1}
    assert report.late == {"/camera/image_raw": 1}
    assert report.max_skew_s == pytest.approx(0.004)
    ep = EpisodeStore(tmp_path / "store").episode(report.episode)
    frames = [i for i in range(N) if i != 7]
    assert ep["images/front"][:, 0, 0, 0].tolist() == frames  # bgr8 -> rgb: the index is in red
    np.testing.assert_allclose(ep["action"][:, 0], frames)
    np.testing.assert_allclose(ep["action"][:, 5], [-i for i in frames])
    np.testing.assert_allclose(ep["action"][:, 6], [i / 10 for i in frames], rtol=1e-6)
    np.testing.assert_allclose(ep["proprio"][:, 0], [5 * i for i in frames])  # the nearest joint state
    np.testing.assert_allclose(ep["timestamp"], [(T0 + i * 100_000_000) / 1e9 for i in frames])
    assert EpisodeStore(tmp_path / "store").info(report.episode).instruction == "wipe the table"


def test_bad_mappings_are_refused_and_nothing_is_written(tmp_path):
    bag = tmp_path / "bag"
    write_bag(bag, "mcap")
    store = open_or_create(tmp_path / "store", infer_schema(bag, MAPPING, 0.02))
    with store.writer("test") as w:
        with pytest.raises(ValueError, match=r"no topics \['/wrist'\]"):
            import_bag(bag, w, {**MAPPING, "images/front": ["/wrist"]}, "images/front", 0.02)
        with pytest.raises(ValueError, match="no frame could be aligned"):
            import_bag(bag, w, MAPPING, "images/front", 1e-6)
        with pytest.raises(ValueError, match="clock key"):
            import_bag(bag, w, MAPPING, "images/wrist", 0.02)
    assert len(EpisodeStore(tmp_path / "store")) == 0


def test_data_convert_command(tmp_path):
    import subprocess
    import sys

    bag = tmp_path / "bag"
    write_bag(bag, "mcap")
    res = subprocess.run([sys.executable, "-m", "robot_parl.cli", "data", "convert", str(bag), "--to",
                          str(tmp_path / "store"), "--map", "images/front=/camera/image_raw", "proprio=/joint_states",
                          "action=/cmd_vel,/gripper", "--instruction", "wipe"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert "19 of 20 frames kept" in res.stdout and "'action': 1" in res.stdout
    assert len(EpisodeStore(tmp_path / "store")) == 1
