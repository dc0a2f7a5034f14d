# Two entry points for a fresh clone: `make demo` and `make test` (see README.md).
# Everything lives in .venv/ in the repo root; torch is pinned to the CPU wheel 2.13.0 and the
# extension is built without build isolation so pip never fetches another torch.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
TORCH  := torch==2.13.0
CSRC   := $(shell find csrc -type f) CMakeLists.txt pyproject.toml
NVCC   ?= $(shell command -v nvcc 2>/dev/null)
# Threads for the CPU kernels and the training loops (the reference machine has 2 cores).
export OMP_NUM_THREADS ?= 2

.PHONY: all venv install demo ops-demo test test-fast test-slow bench lint format cuda-check gpu-check gpu-check-ops \
	gpu-check-pipeline clean

all: install

$(VENV)/.deps: 
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q "$(TORCH)" "scikit-build-core>=0.10" "pybind11>=2.12" ninja
	touch $@

$(VENV)/.installed: $(VENV)/.deps $(CSRC)
	$(PIP) install -q --no-build-isolation -e ".[test,minilm]" "$(TORCH)"
	$(PY) -c "import pylaundering.ops as o; print('pylaundering ops backend:', o.backend())"
	touch $@

venv install: $(VENV)/.installed

# The main job on the offline default: synthetic benchmark, MiniLM teacher, laundering + controls.
demo: install
	$(VENV)/bin/launder run --out runs/demo --resume

# A few seconds: the fused ops against eager PyTorch.
ops-demo: install
	$(PY) -m pylaundering.ops.demo

test: install cuda-check lint
	$(PY) -m pytest -q -m "not slow"

# Style, as CI keeps it: ruff's lint rules (pyproject.toml; its formatter is not used: the Python keeps its
# hand wrapping) and clang-format (.clang-format) on csrc/.
CXX_SOURCES = $(shell find csrc -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh')
lint: install
	$(VENV)/bin/ruff check --no-cache .
	$(VENV)/bin/clang-format --dry-run --Werror $(CXX_SOURCES)

# Applies what `make lint` checks.
format: install
	$(VENV)/bin/ruff check --no-cache --fix .
	$(VENV)/bin/clang-format -i $(CXX_SOURCES)

test-slow: install
	$(PY) -m pytest -q -m slow

bench: install
	$(PY) -m pytest benchmarks -q --benchmark-only --benchmark-columns=min,median,mean,rounds

# Compile every CUDA source with nvcc against the torch wheel's headers (no GPU needed).
cuda-check: $(VENV)/.deps
	@if [ -z "$(NVCC)" ]; then echo "cuda-check: nvcc not found, skipped"; else \
	  NVCC="$(NVCC)" PY="$(PY)" bash tools/cuda_check.sh; fi

# On a machine with a CUDA GPU and a CUDA torch (no network needed): build against that torch,
# run the op tests on the GPU and the GPU benchmark, then the pipeline (launder run, run --level token,
# bench phases against the CPU, resume and determinism, a larger stand-in); results in $$OUT or gpu-results/.
# Each half fits one 10-minute call: gpu-check-ops, then gpu-check-pipeline (which reuses the build).
gpu-check:
	bash tools/gpu_check.sh

gpu-check-ops:
	GPU_CHECK_PIPELINE=0 bash tools/gpu_check.sh

gpu-check-pipeline:
	GPU_CHECK_OPS=0 bash tools/gpu_check.sh

clean:
	rm -rf build _skbuild dist *.egg-info .pytest_cache .benchmarks .hypothesis
