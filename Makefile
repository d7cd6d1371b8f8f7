# robot-parl: `make demo` and `make test` work on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test bench lint clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: the CPU build here; everything after must accept it.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[learn,vla,sim,bags,calib,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/robot-parl demo --out runs/demo
	$(VENV)/bin/robot-parl demo --out runs/demo-tiny-vla --config configs/demo-tiny-vla.yaml --tiny-vla

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	mkdir -p benchmarks/results
	$(PY) -m benchmarks.parl_state --json benchmarks/results/parl_state.json
	$(PY) -m benchmarks.protocol --json benchmarks/results/protocol.json
	$(PY) -m benchmarks.runtime --json benchmarks/results/runtime.json
	$(PY) -m benchmarks.sim --json benchmarks/results/sim.json
	$(PY) -m benchmarks.replay --json benchmarks/results/replay.json
	$(PY) -m benchmarks.vla_sampling --json benchmarks/results/vla_sampling.json
	$(PY) -m benchmarks.parl_sim --json benchmarks/results/parl_sim.json

lint: $(STAMP)
	$(VENV)/bin/ruff check robot_parl tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
