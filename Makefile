# gsnn_fast developer entry points. `make demo` and `make test` work on a fresh
# machine: they make a virtual environment in $(VENV), keep the torch that
# $(PYTHON) already has (e.g. a CUDA build on a GPU box; the venv then sees the
# system site-packages), and otherwise install $(TORCH_SPEC) (here: the local
# CPU wheel, no CUDA packages downloaded).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
DEMO_ARGS ?=

.PHONY: demo test build bench lint format clean gpu-check dist

# The optional extras (matplotlib: plots, pyarrow: Parquet) are installed too, so that
# the demo draws its figures and the tests exercise those paths instead of skipping.
$(VENV)/.installed: pyproject.toml setup.py
	@if $(PYTHON) -c "import torch" 2>/dev/null; then \
	  echo "keeping the torch of $(PYTHON)"; $(PYTHON) -m venv --system-site-packages $(VENV); \
	else $(PYTHON) -m venv $(VENV); fi
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q numpy scipy pandas networkx ninja setuptools wheel pytest pytest-benchmark
	$(PY) -m pip install -q matplotlib pyarrow
	MAX_JOBS=2 $(PY) -m pip install -q --no-build-isolation -e .
	touch $@

# Incremental rebuild of gsnn_fast._C after a change under csrc/ (ninja tracks headers).
build: $(VENV)/.installed
	MAX_JOBS=2 $(PY) setup.py -q build_ext --inplace --force

demo: build
	$(VENV)/bin/gsnn-fast demo $(DEMO_ARGS)

test: build
	$(PY) -m pytest

bench: build
	$(PY) -m benchmarks.run

# Source distribution and CPU wheel in dist/ (the wheel is built from the unpacked sdist,
# which checks that the sdist holds everything the build needs).
dist: $(VENV)/.installed
	$(PY) -m pip install -q build
	rm -rf dist
	GSNN_FAST_CUDA=0 MAX_JOBS=2 $(PY) -m build --no-isolation --outdir dist .

# On a machine with a GPU whose python3 already holds a CUDA torch: CUDA build, GPU
# tests, compute-sanitizer, GPU benchmark rows, demo on CUDA; results in
# $$GPU_CHECK_OUT (default benchmarks/results/gpu-check). See benchmarks/gpu_check.sh.
gpu-check:
	bash benchmarks/gpu_check.sh

lint: $(VENV)/.installed
	$(PY) -m pip install -q ruff clang-format
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
	$(VENV)/bin/clang-format --dry-run -Werror $$(git ls-files 'csrc/*.h' 'csrc/*.cuh' 'csrc/*.cpp' 'csrc/*.cu' 'tests/emulator/*.h' 'tests/emulator/*.cpp' 'tests/emulator/*.cu')

format: $(VENV)/.installed
	$(PY) -m pip install -q ruff clang-format
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .
	$(VENV)/bin/clang-format -i $$(git ls-files 'csrc/*.h' 'csrc/*.cuh' 'csrc/*.cpp' 'csrc/*.cu' 'tests/emulator/*.h' 'tests/emulator/*.cpp' 'tests/emulator/*.cu')

clean:
	rm -rf build gsnn_fast/_C*.so csrc/generated *.egg-info
