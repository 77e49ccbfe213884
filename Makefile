# The project's scripts. `make run` and `make test` install what they need themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell sha256sum requirements-dev.lock | cut -c1-16)
NODE_STAMP := tests/oidc/node_modules/.installed
BENCH_VENV  := bench/.peers/venv
BENCH_GATEWAY_VENV := bench/.peers/gateway
BENCH_STAMP := $(BENCH_VENV)/.installed-$(shell cat requirements.lock bench/requirements.txt bench/interpreter.py | sha256sum | cut -c1-16)

.PHONY: run test check generate lock install clean bench bench-tools compare instructions redis-server fuzz soak

install: $(STAMP)

$(STAMP): requirements-dev.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-dev.lock
	rm -f $(VENV)/.installed-*
	touch $@

$(NODE_STAMP): tests/oidc/package.json tests/oidc/package-lock.json
	cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error
	touch $@

## run: start the gateway on SERVER_HOST:SERVER_PORT (default 0.0.0.0:8080)
run: $(STAMP)
	$(PY) -m gateway

## generate: regenerate generated/, deploy/, docs/configuration.md and .env.example from openapi.yaml
generate: $(STAMP)
	$(PY) -m codegen

## check: generated code is current, lint, format and types
check: $(STAMP)
	$(PY) -m codegen --check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

## test: every check and every test
test: check $(NODE_STAMP) redis-server
	$(VENV)/bin/pytest

## fuzz: the spec fuzz with many more examples per operation (FUZZ_MAX_EXAMPLES, default 1000)
FUZZ_MAX_EXAMPLES ?= 1000
fuzz: $(STAMP)
	FUZZ_MAX_EXAMPLES=$(FUZZ_MAX_EXAMPLES) $(VENV)/bin/pytest tests/hardening/test_fuzz.py \
		-o timeout=0

## soak: a long load run with memory and descriptor figures (SOAK_SECONDS, default 600)
SOAK_SECONDS ?= 600
soak: $(STAMP)
	SOAK_SECONDS=$(SOAK_SECONDS) $(VENV)/bin/pytest tests/hardening/test_soak.py -s -o timeout=0

# The routing tests start their own redis-server (ephemeral port, no persistence).
redis-server:
	@command -v redis-server >/dev/null || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server)

## lock: re-resolve pinned dependencies (with hashes) after editing pyproject.toml
lock: $(STAMP)
	$(PY) -m pip install --quiet uv==0.13.8
	$(VENV)/bin/uv pip compile pyproject.toml --extra codegen --extra dev --generate-hashes \
		--python-version 3.11 -o requirements-dev.lock
	$(VENV)/bin/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 -o requirements.lock

## bench: measure the gateway against its peers and floors; writes docs/benchmarks.md
## (BENCH_QUICK=1 for a 2-minute run). Needs root for apt-get the first time.
bench: $(STAMP) $(BENCH_STAMP) bench-tools
	$(BENCH_VENV)/bin/python -m bench

## compare: interleaved rounds of the gateway at REV (default HEAD) against the working tree
## and the floor, the way to see a 5 % change on a busy machine (ARGS="--stream", "--rounds 10",
## "--telemetry": both with telemetry on, and the working tree once more without).
REV ?= HEAD
compare: $(STAMP) $(BENCH_STAMP) bench-tools
	$(BENCH_VENV)/bin/python -m bench.compare --rev $(REV) $(ARGS)

## instructions: user-space instructions per request under callgrind, steady on a busy
## machine (ROUTE="/v1/chat/completions openai/bench-model", ARGS="--stream", "--floor" or
## "--telemetry").
ROUTE ?= /v1/chat/completions openai/bench-model
instructions: $(STAMP) $(BENCH_STAMP) bench-tools
	@command -v valgrind >/dev/null || (apt-get update -q && apt-get install -y -q valgrind)
	$(BENCH_VENV)/bin/python -m bench.instructions $(ARGS) $(ROUTE)

# nginx (the mock upstream) and wrk (the load generator) come from Debian.
bench-tools:
	@command -v nginx >/dev/null && command -v wrk >/dev/null && command -v taskset >/dev/null \
		|| (apt-get update -q && apt-get install -y -q nginx-light wrk util-linux)

# The bench's own venvs, both made from the fastest CPython 3.11 on the machine
# (bench/interpreter.py), remade when that changes: one with the project's locked runtime (for
# the floors) plus the bench's tools, and one with the locked runtime alone, the gateway's.
$(BENCH_STAMP): requirements.lock bench/requirements.txt bench/interpreter.py
	base=$$($(PYTHON) -m bench.interpreter) && for venv in $(BENCH_VENV) $(BENCH_GATEWAY_VENV); do \
		test "$$($$venv/bin/python -m bench.interpreter --base 2>/dev/null)" = "$$base" \
		|| { rm -rf $$venv && $$base -m venv $$venv; } || exit 1; done
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes \
		--no-deps -r requirements.lock
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	$(BENCH_GATEWAY_VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes \
		--no-deps -r requirements.lock
	rm -f $(BENCH_VENV)/.installed-*
	touch $@

clean:
	rm -rf $(VENV) tests/oidc/node_modules
