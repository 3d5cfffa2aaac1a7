# Two entry points: `make demo` runs the main job, `make test` runs the checks.
# Each creates (or reuses) the local virtual environment .venv and installs what it needs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.kinkgrad-installed

.PHONY: test demo lint bench gpu-check clean venv test-pythons

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch==2.13.0 is the CPU build; a bare `torch` could pull a multi-GB CUDA build.
	$(PY) -m pip install -q -e '.[dev]' 'torch==2.13.0'
	touch $(STAMP)

# The suite runs in one worker per core (pytest-xdist; WORKERS=0 runs it in this process),
# each with one BLAS / OpenMP thread so that the workers do not oversubscribe the cores.
WORKERS ?= auto
test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks tools
	$(PY) tools/linecount.py
	OMP_NUM_THREADS=1 $(PY) -m pytest tests src/kinkgrad --doctest-modules -x -p no:cacheprovider -n $(WORKERS)

demo: $(STAMP)
	$(VENV)/bin/kinkgrad reproduce --quick --out reproduce-out

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks tools

# The suite (without the torch bridge) on every Python 3.10+ found, each in .venv-py3.X
test-pythons:
	$(PYTHON) tools/test_pythons.py

bench: $(STAMP)
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/dimension.py

# On a machine with a CUDA build of torch, run with that machine's Python (GPU_PY, with
# numpy, scipy and pytest): the device tests on cuda, then the GPU benchmark.
GPU_PY ?= python3
gpu-check:
	PYTHONPATH=src $(GPU_PY) -m pytest -q -p no:cacheprovider -k cuda tests/interop/test_device_emulated.py
	PYTHONPATH=src $(GPU_PY) benchmarks/gpu.py --out benchmarks/out

clean:
	rm -rf $(VENV) reproduce-out .pytest_cache
