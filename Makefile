# Two commands set up everything on a fresh machine (README "Quick start"):
#   make demo   creates .venv, installs the package, runs the main job
#   make test   creates .venv, installs the package with its test and docs extras, runs every test
#               (and the docs build, tests/test_docs.py), then the numerics tests again under
#               other vector-math paths of the CPU (test-vector-math)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_PIN ?= torch==2.13.0

.PHONY: demo test test-vector-math install bench-env bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first and pinned: an open range would pull the newest CUDA build (several GB)
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)"
	$(BIN)/python -m pip install --quiet -e ".[test,docs]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/xearthformer quickstart

test: install
	$(BIN)/lint-imports
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory test-vector-math

# The tests that compare floats with references, again under other vector-math paths of this
# CPU (docs/conventions.md, "Tolerances"): no result may depend on which one the machine takes.
# (the inductor compile and the demo-training script compare nothing new and take minutes)
NUMERICS_TESTS ?= tests/nn tests/models tests/diffusion tests/test_precision.py
NUMERICS_SKIP ?= not compile_with_inductor and not demo_script_quick
VECTOR_MATH_PATHS ?= MKL_CBWR=COMPATIBLE MKL_CBWR=AVX2 ATEN_CPU_CAPABILITY=default

test-vector-math: install
	@for setting in $(VECTOR_MATH_PATHS); do \
	  echo "== numerics tests under $$setting"; \
	  env $$setting $(BIN)/python -m pytest -q -p no:cacheprovider --no-header -m "not slow" \
	    -k "$(NUMERICS_SKIP)" $(NUMERICS_TESTS) || exit 1; \
	done

# The official implementation, for side-by-side benchmarks (its package __init__ needs
# pkg_resources and heavy dependencies, so it is installed without them).
bench-env: install
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python -m pip install --quiet --no-deps "earthformer==0.2.1"

bench: bench-env
	$(BIN)/python benchmarks/bench_earthformer.py

clean:
	rm -rf $(VENV) build *.egg-info
