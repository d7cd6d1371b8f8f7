# robot-parl: `make demo` and `make test` work on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# ROS 2 distribution of the ROS virtualenv: jazzy (.venv-ros); `make ros-test-kilted` repeats the ROS tests on
# kilted in .venv-ros-kilted.
ROS_DISTRO ?= jazzy
ROS_VENV ?= .venv-ros
ROS_PY := $(ROS_VENV)/bin/python
ROS_STAMP := $(ROS_VENV)/.installed
R := ros-$(ROS_DISTRO)

.PHONY: install demo demo-pick demo-vla test ros-test ros-test-kilted bench lint docker docker-lint clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: the CPU build here; everything after must accept it.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[learn,vla,sim,bags,calib,realsense,dev]"
	touch $(STAMP)

# The ROS 2 side in its own virtualenv: real rclpy (community-built ROS 2 wheels, Fast DDS) with the
# messages the node uses, and robot_parl's light part plus MuJoCo for the simulated robot node (no torch).
$(ROS_STAMP): pyproject.toml tests/ros2/msgs/build.sh
	python3 -m venv $(ROS_VENV)
	$(ROS_PY) -m pip install -q --upgrade pip
	$(ROS_PY) -m pip install -q "$(R)-rclpy[fastrtps]" $(R)-sensor-msgs $(R)-geometry-msgs \
		$(R)-std-msgs $(R)-std-srvs $(R)-diagnostic-msgs $(R)-trajectory-msgs \
		catkin_pkg colcon-core colcon-python-setup-py colcon-ros colcon-package-information \
		colcon-library-path "rosbags>=0.10" pillow pytest cyclonedds==11.0.1
	$(ROS_PY) -m pip install -q -e ".[sim,calib,realsense]" && bash tests/ros2/msgs/build.sh $(ROS_VENV) $(ROS_DISTRO)
	touch $(ROS_STAMP)

install: $(STAMP)

demo: demo-pick demo-vla

demo-pick: $(STAMP)
	rm -rf runs/demo
	$(VENV)/bin/robot-parl demo --out runs/demo --config configs/demo-pick.yaml --threads 2

# `make demo`, part 2: a tiny VLA through the robot's own commands and processes, as on a real robot:
# scripted demonstrations -> pretrain (BC + offline critic) -> a finetune session (simulated robot side, learner
# and actor processes on zenoh) -> eval (before vs after, with and without the critic).
DEMO_VLA := runs/demo-tiny-vla
DEMO_VLA_CONFIG := --config configs/finetune-tiny-vla.yaml
DEMO_VLA_DEMOS := learner.offline_store=$(DEMO_VLA)/demos
DEMO_VLA_LATEST = $(DEMO_VLA)/learner/checkpoints/$$(cat $(DEMO_VLA)/learner/checkpoints/latest)

demo-vla: $(STAMP)
	rm -rf $(DEMO_VLA)
	$(VENV)/bin/robot-parl collect --sim pick --device expert --episodes 8 --horizon 40 --store $(DEMO_VLA)/demos \
		"cameras=[{name: front, width: 64, height: 64}]" --expert noise=0.3 hesitation=0.1 missed_grasp=0.2
	$(VENV)/bin/robot-parl pretrain $(DEMO_VLA_CONFIG) --tiny-vla --out $(DEMO_VLA)/learner --bc-steps 40 \
		$(DEMO_VLA_DEMOS) parl.schedule.offline_steps=20
	$(VENV)/bin/robot-parl finetune $(DEMO_VLA_CONFIG) --out $(DEMO_VLA) $(DEMO_VLA_DEMOS)
	$(VENV)/bin/robot-parl eval $(DEMO_VLA_CONFIG) --out $(DEMO_VLA)/eval --episodes 5 \
		--policy base=$(DEMO_VLA)/learner/checkpoints/pretrained --policy tuned=$(DEMO_VLA_LATEST) \
		--critic $(DEMO_VLA_LATEST) $(DEMO_VLA_DEMOS)

test: $(STAMP) $(ROS_STAMP)
	$(PY) -m pytest -q
	$(ROS_PY) -m pytest -q tests/ros2
	$(MAKE) ros-test-kilted

ros-test: $(ROS_STAMP)
	$(ROS_PY) -m pytest -q tests/ros2

ros-test-kilted:
	$(MAKE) ros-test ROS_DISTRO=kilted ROS_VENV=.venv-ros-kilted

bench: $(STAMP) $(ROS_STAMP)
	mkdir -p benchmarks/results
	$(PY) -m benchmarks.parl_state --json benchmarks/results/parl_state.json
	$(PY) -m benchmarks.protocol --json benchmarks/results/protocol.json
	$(ROS_PY) -m benchmarks.ros2 --json benchmarks/results/ros2.json
	$(PY) -m benchmarks.runtime --json benchmarks/results/runtime.json
	$(PY) -m benchmarks.sim --json benchmarks/results/sim.json
	$(PY) -m benchmarks.replay --json benchmarks/results/replay.json
	$(PY) -m benchmarks.vla_sampling --json benchmarks/results/vla_sampling.json
	$(PY) -m benchmarks.parl_sim --json benchmarks/results/parl_sim.json
	$(PY) -m benchmarks.no_dip --json benchmarks/results/no_dip.json
	$(PY) -m benchmarks.success_detection --json benchmarks/results/success_detection.json
	$(PY) -m benchmarks.faults --json benchmarks/results/faults.json
	$(PY) -m benchmarks.fleet --json benchmarks/results/fleet.json

docker:
	docker compose -f docker/compose.yaml build

docker-lint: $(STAMP)
	$(VENV)/bin/hadolint --failure-threshold warning docker/robot-side.Dockerfile docker/learner.Dockerfile

lint: $(STAMP)
	$(VENV)/bin/ruff check robot_parl tests benchmarks

clean:
	rm -rf $(VENV) $(ROS_VENV) .venv-ros-kilted runs .pytest_cache
