# The two commands of the README:
#   make run    set up .venv (torch 2.13.0 CPU first) and run the main job
#   make test   set up .venv and run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
SEED   ?= 0

.PHONY: run test setup bench verify gpu-check clean

run: $(VENV)/.installed
	$(BIN)/gradkern vanishing --seed $(SEED)

test: $(VENV)/.installed
	$(BIN)/python -m pytest

verify: $(VENV)/.installed
	$(BIN)/gradkern verify

bench: $(VENV)/.installed $(VENV)/.bench
	$(BIN)/python -m pytest benchmarks --benchmark-enable --benchmark-only \
		--benchmark-json=benchmarks/results/cpu.json

# the bench extra adds JAX (~600 MB); the test run does not need it
$(VENV)/.bench: setup.py
	$(BIN)/python -m pip install -q -e ".[test,bench]"
	touch $@

# One command validates a GPU (docs/gpu.md): build, GPU tests, throughput
# against the copy bandwidth, torch and native CUDA, sweep samples/s; JSON and
# a table under benchmarks/results/gpu-check-<device>/.  GPU_PYTHON=python3
# runs it in an environment that already has numba-cuda, pytest and a CUDA
# build of torch (no set-up, e.g. a machine without a package registry).
GPU_CHECK = -m gradkern.bench.gpu_check $(GPU_CHECK_ARGS)
ifdef GPU_PYTHON
gpu-check:
	PYTHONPATH=$(CURDIR) $(GPU_PYTHON) $(GPU_CHECK)
else
gpu-check: $(VENV)/.cuda
	$(BIN)/python $(GPU_CHECK)
endif

$(VENV)/.cuda: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[test,cuda]"
	touch $@

setup: $(VENV)/.installed

# torch==2.13.0 goes in first and alone: with it present, the extras' pin is
# already satisfied; without it, pip would fetch the multi-GB CUDA build.
$(VENV)/.installed: setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
	find gradkern -name __pycache__ -prune -exec rm -rf {} +
