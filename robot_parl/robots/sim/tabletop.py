"""MuJoCo tabletop tasks: a floating parallel gripper driven by 7-D end-effector deltas, a table, cubes.

Written here in MJCF (no downloaded assets). The gripper is a free body welded to a mocap target that
each action moves by (dx, dy, dz) metres and (droll, dpitch, dyaw) radians; the last action entry
is the gripper opening in [0, 1] (1 = open). Tasks: ``reach`` (gripper to a point in the air),
``push`` (cube to a target on the table), ``pick`` (lift the cube), ``place`` (pick it up and set it
down on a target) and the multi-stage ``stack`` (grasp, lift, align over a second cube, lower,
release). Optional per-reset randomization of colours, lighting and the front camera. Rewards are sparse: 1 on the
step that succeeds, which ends the episode. Observations are a privileged state vector, or camera
images + proprio (front and wrist cameras, rendered headless, no shadows). Bitwise deterministic
under a seed for a given mujoco version (pinned in pyproject.toml).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# Headless rendering: EGL works with the stock libraries; set MUJOCO_GL=osmesa to use OSMesa instead.
os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from robot_parl.robots.sim import TASKS  # noqa: E402

INSTRUCTIONS = {"reach": "move the gripper to the green marker", "push": "push the red cube to the green marker",
                "pick": "pick up the red cube", "place": "put the red cube on the green marker",
                "stack": "stack the red cube on the blue cube"}
CONTROL_DT = 0.1
FINGER_OPEN = 0.04  # half opening of the fingers at gripper = 1
TABLE_X, TABLE_Y = (0.25, 0.65), (-0.3, 0.3)
CUBE_HALF = 0.02
LIFT_HEIGHT = 0.08  # pick succeeds when the cube's centre is this high (metres)
ACTION_LOW = np.array([-0.03] * 3 + [-0.2] * 3 + [0.0], np.float32)
ACTION_HIGH = np.array([0.03] * 3 + [0.2] * 3 + [1.0], np.float32)
STATE_DIM = 10  # tool centre point xyz, finger opening, cube xyz, target xyz (stack: the blue cube)
PROPRIO_DIM = 4  # the state's robot part: tool centre point xyz, finger opening
TCP_OFFSET = 0.045  # palm to the middle of the finger pads (the fingers point down)
TCP_Z = (0.017, 0.3)  # the tool centre point's height range: the fingertips stop just above the table

MJCF = """
<mujoco model="tabletop">
  <option timestep="0.002" integrator="implicitfast"/>
  <visual><quality shadowsize="0"/><global offwidth="{width}" offheight="{height}"/></visual>
  <asset>
    <texture name="grid" type="2d" builtin="checker" rgb1=".55 .45 .35" rgb2=".5 .4 .3" width="64" height="64"/>
    <material name="table" texture="grid" texrepeat="6 6"/>
  </asset>
  <worldbody>
    <light name="top" pos="0.45 0 1.2" dir="0 0 -1" castshadow="false" diffuse=".8 .8 .8"/>
    <geom name="floor" type="plane" pos="0 0 -0.75" size="2 2 .1" rgba=".2 .2 .25 1"/>
    <geom name="table" type="box" pos="0.45 0 -0.02" size="0.3 0.35 0.02" material="table" friction="0.5 0.005 0.0001"/>
    <camera name="front" pos="1.15 0 0.45" xyaxes="0 1 0 -0.45 0 0.89" fovy="50"/>
    <site name="target" pos="0.45 0 0.1" size="0.02" rgba="0.1 0.8 0.1 0.5" type="sphere"/>
    <body name="mocap" mocap="true" pos="0.45 0 0.2" quat="0 1 0 0"/>
    <body name="gripper" pos="0.45 0 0.2" quat="0 1 0 0" gravcomp="1">
      <freejoint name="gripper"/>
      <geom name="palm" type="box" size="0.015 0.05 0.01" mass="0.3" rgba=".15 .15 .15 1"/>
      <camera name="wrist" pos="0.04 0 -0.02" xyaxes="0 -1 0 -0.9 0 -0.45" fovy="75"/>
      <site name="tcp" pos="0 0 {tcp}" size="0.005" rgba="1 1 0 0"/>
      <body name="left" pos="0 0.0 0.035" gravcomp="1">
        <joint name="left" type="slide" axis="0 1 0" range="0 {open}" damping="5"/>
        <geom name="left" type="box" size="0.01 0.005 0.03" mass="0.05" friction="2 0.01 0.001" rgba=".3 .3 .3 1"/>
      </body>
      <body name="right" pos="0 0.0 0.035" gravcomp="1">
        <joint name="right" type="slide" axis="0 -1 0" range="0 {open}" damping="5"/>
        <geom name="right" type="box" size="0.01 0.005 0.03" mass="0.05" friction="2 0.01 0.001" rgba=".3 .3 .3 1"/>
      </body>
    </body>
    <body name="cube" pos="0.45 0 {cube_z}">
      <freejoint name="cube"/>
      <geom name="cube" type="box" size="{cube} {cube} {cube}" mass="0.05" friction="1.5 0.01 0.001"
            rgba=".85 .15 .1 1"/>
    </body>
    <body name="base" pos="0.62 -0.25 {cube_z}">
      <freejoint name="base"/>
      <geom name="base" type="box" size="{cube} {cube} {cube}" mass="0.2" friction="1.5 0.01 0.001"
            rgba=".1 .25 .85 1"/>
    </body>
  </worldbody>
  <equality>
    <weld body1="mocap" body2="gripper" solref="0.02 1"/>
    <joint joint1="left" joint2="right"/>
  </equality>
  <actuator>
    <position name="fingers" joint="left" kp="300" ctrlrange="0 {open}"/>
  </actuator>
</mujoco>
"""


@dataclass
class TabletopConfig:
    task: str = "pick"
    obs_mode: str = "state"  # "state" or "images"
    image_size: int = 100
    cameras: tuple[str, ...] = ("front", "wrist")
    horizon: int = 60
    # Per reset: object colours, table tint, light brightness and position, front camera position.
    randomize: bool = False

    def validate(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; expected one of {list(TASKS)}")
        if self.obs_mode not in ("state", "images"):
            raise ValueError(f"obs_mode must be 'state' or 'images', got {self.obs_mode!r}")
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {self.image_size}")
        unknown = set(self.cameras) - {"front", "wrist"}
        if unknown:
            raise ValueError(f"unknown cameras {sorted(unknown)}; expected 'front' and/or 'wrist'")


def _placed_on(cube: np.ndarray, target: np.ndarray, task: str) -> bool:
    """place: the cube rests on the table on the marker; stack: it rests on top of the blue cube."""
    if task == "place":
        return np.linalg.norm(cube[:2] - target[:2]) <= 0.03 and cube[2] <= CUBE_HALF + 0.005
    return np.linalg.norm(cube[:2] - target[:2]) <= 0.015 and abs(cube[2] - target[2] - 2 * CUBE_HALF) <= 0.005


def _rpy_quat(rpy: np.ndarray) -> np.ndarray:
    quat = np.zeros(4)
    mujoco.mju_euler2Quat(quat, np.asarray(rpy, np.float64), "xyz")
    return quat


class TabletopEnv(gym.Env):
    """One tabletop task; see the module docstring."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, task: str = "pick", obs_mode: str = "state", image_size: int = 100,
                 cameras: tuple[str, ...] = ("front", "wrist"), horizon: int = 60, randomize: bool = False):
        self.cfg = TabletopConfig(task, obs_mode, image_size, tuple(cameras), horizon, randomize)
        self.cfg.validate()
        xml = MJCF.format(width=max(640, image_size), height=max(480, image_size), open=FINGER_OPEN,
                          cube=CUBE_HALF, cube_z=CUBE_HALF, tcp=TCP_OFFSET)
        self.model = mujoco.MjModel.from_xml_string(xml)
        self.data = mujoco.MjData(self.model)
        self.substeps = round(CONTROL_DT / self.model.opt.timestep)
        self.instruction = INSTRUCTIONS[task]
        self.action_space = gym.spaces.Box(ACTION_LOW, ACTION_HIGH)
        if obs_mode == "state":
            self.observation_space = gym.spaces.Dict(
                {"state": gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32)})
        else:
            s = image_size
            self.observation_space = gym.spaces.Dict({
                "images": gym.spaces.Dict({c: gym.spaces.Box(0, 255, (s, s, 3), np.uint8) for c in cameras}),
                "proprio": gym.spaces.Box(-np.inf, np.inf, (PROPRIO_DIM,), np.float32)})
        self._renderer: mujoco.Renderer | None = None
        self._ids = {name: mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)
                     for name in ("gripper", "cube", "base")}
        self._target_site = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, "target")
        self._tcp_site = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, "tcp")
        self.clipped_actions = 0
        self.steps = 0
        m = self.model
        self._front = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, "front")
        self._appearance = (m.geom_rgba.copy(), m.mat_rgba.copy(), m.light_pos.copy(), m.light_diffuse.copy(),
                            m.cam_pos.copy())

    # state ----------------------------------------------------------------------------------------

    @property
    def gripper_pos(self) -> np.ndarray:
        """The tool centre point (between the finger pads)."""
        return self.data.site_xpos[self._tcp_site].copy()

    @property
    def cube_pos(self) -> np.ndarray:
        return self.data.xpos[self._ids["cube"]].copy()

    @property
    def target_pos(self) -> np.ndarray:
        """The green marker, or for ``stack`` the blue cube."""
        if self.cfg.task == "stack":
            return self.data.xpos[self._ids["base"]].copy()
        return self.model.site_pos[self._target_site].copy()

    @property
    def finger_opening(self) -> float:
        return float(self.data.joint("left").qpos[0] / FINGER_OPEN)

    def success(self) -> bool:
        """Whether the task condition holds now."""
        if self.cfg.task == "reach":
            return bool(np.linalg.norm(self.gripper_pos - self.target_pos) <= 0.03)
        if self.cfg.task == "push":
            return bool(np.linalg.norm(self.cube_pos[:2] - self.target_pos[:2]) <= 0.04)
        if self.cfg.task == "pick":
            return bool(self.cube_pos[2] >= LIFT_HEIGHT)
        return bool(_placed_on(self.cube_pos, self.target_pos, self.cfg.task) and self.finger_opening >= 0.6)

    def state(self) -> np.ndarray:
        """The privileged state: tool centre point xyz, finger opening, cube xyz, target xyz."""
        return np.r_[self.gripper_pos, self.finger_opening, self.cube_pos, self.target_pos].astype(np.float32)

    def render_camera(self, camera: str, height: int | None = None, width: int | None = None) -> np.ndarray:
        """An RGB frame (uint8 HxWx3) from ``camera``; square at the configured size by default."""
        height = height or self.cfg.image_size
        width = width or height
        if self._renderer is None or (self._renderer.height, self._renderer.width) != (height, width):
            self.close()
            self._renderer = mujoco.Renderer(self.model, height, width)
        self._renderer.update_scene(self.data, camera=camera)
        return self._renderer.render()

    def _obs(self) -> dict:
        if self.cfg.obs_mode == "state":
            return {"state": self.state()}
        return {"images": {c: self.render_camera(c) for c in self.cfg.cameras},
                "proprio": self.state()[:PROPRIO_DIM]}

    # gym API --------------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        mujoco.mj_resetData(self.model, self.data)
        start = np.array([rng.uniform(0.35, 0.55), rng.uniform(-0.15, 0.15), rng.uniform(0.12, 0.2)])
        cube = np.array([rng.uniform(0.35, 0.55), rng.uniform(-0.15, 0.15), CUBE_HALF])
        if self.cfg.task == "reach":
            target = np.array([rng.uniform(0.3, 0.6), rng.uniform(-0.2, 0.2), rng.uniform(0.05, 0.25)])
            cube[:2] = [0.62, 0.25]  # out of the way
        elif self.cfg.task in ("push", "place", "stack"):
            while True:
                target = np.array([rng.uniform(0.32, 0.58), rng.uniform(-0.18, 0.18), 0.0])
                if 0.1 <= np.linalg.norm(target[:2] - cube[:2]) <= 0.2:
                    break
        else:
            target = np.r_[cube[:2], LIFT_HEIGHT]
        base = np.array([0.62, -0.25, CUBE_HALF])  # out of the way unless stacking
        if self.cfg.task == "stack":
            base, target = np.r_[target[:2], CUBE_HALF], np.array([0.62, -0.25, -0.1])  # marker hidden
        if self.cfg.randomize:
            self._randomize_appearance(rng)
        self.data.joint("base").qpos[:3] = base
        self.data.joint("base").qpos[3:] = [1, 0, 0, 0]
        self.model.site_pos[self._target_site] = target
        self.data.joint("cube").qpos[:3] = cube
        self.data.joint("cube").qpos[3:] = [1, 0, 0, 0]
        down = np.array([0.0, 1.0, 0.0, 0.0])  # fingers pointing down
        palm = start + [0.0, 0.0, TCP_OFFSET]
        self.data.joint("gripper").qpos[:3] = palm
        self.data.joint("gripper").qpos[3:] = down
        self.data.mocap_pos[0] = palm
        self.data.mocap_quat[0] = down
        self.data.joint("left").qpos[0] = self.data.joint("right").qpos[0] = FINGER_OPEN
        self.data.ctrl[0] = FINGER_OPEN
        mujoco.mj_forward(self.model, self.data)
        self.steps = 0
        return self._obs(), {"success": False, "instruction": self.instruction}

    def _randomize_appearance(self, rng: np.random.Generator) -> None:
        m = self.model
        geom_rgba, mat_rgba, light_pos, light_diffuse, cam_pos = self._appearance
        m.geom_rgba[:] = geom_rgba
        for name in ("cube", "base"):
            gid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, name)
            m.geom_rgba[gid, :3] = np.clip(geom_rgba[gid, :3] + rng.uniform(-0.15, 0.15, 3), 0, 1)
        m.mat_rgba[:, :3] = np.clip(mat_rgba[:, :3] * rng.uniform(0.8, 1.2, (len(mat_rgba), 3)), 0, 1)
        m.light_pos[:] = light_pos + rng.uniform(-0.1, 0.1, light_pos.shape)
        m.light_diffuse[:] = np.clip(light_diffuse * rng.uniform(0.6, 1.2), 0, 1)
        m.cam_pos[self._front] = cam_pos[self._front] + rng.uniform(-0.02, 0.02, 3)

    def step(self, action):
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (7,):
            raise ValueError(f"action must have shape (7,) = xyz, rpy deltas and gripper, got {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"action contains NaN or infinite values: {a.tolist()}")
        clipped = np.clip(a, ACTION_LOW, ACTION_HIGH)
        self.clipped_actions += int(not np.array_equal(clipped, a))
        tcp = self.data.mocap_pos[0] - [0.0, 0.0, TCP_OFFSET] + clipped[:3]
        tcp = np.clip(tcp, [TABLE_X[0], TABLE_Y[0], TCP_Z[0]], [TABLE_X[1], TABLE_Y[1], TCP_Z[1]])
        self.data.mocap_pos[0] = tcp + [0.0, 0.0, TCP_OFFSET]
        if np.any(clipped[3:6]):
            quat = np.zeros(4)
            mujoco.mju_mulQuat(quat, self.data.mocap_quat[0].copy(), _rpy_quat(clipped[3:6]))
            self.data.mocap_quat[0] = quat
        self.data.ctrl[0] = clipped[6] * FINGER_OPEN
        mujoco.mj_step(self.model, self.data, nstep=self.substeps)
        self.steps += 1
        success = self.success()
        truncated = not success and self.steps >= self.cfg.horizon
        return self._obs(), float(success), success, truncated, {"success": success}

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
