# The project's scripts. `make run` and `make test` install what they need themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell sha256sum requirements-dev.lock | cut -c1-16)
NODE_STAMP := tests/oidc/node_modules/.installed

.PHONY: run test check generate lock install clean

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
test: check $(NODE_STAMP)
	$(VENV)/bin/pytest

## lock: re-resolve pinned dependencies (with hashes) after editing pyproject.toml
lock: $(STAMP)
	$(PY) -m pip install --quiet uv==0.13.8
	$(VENV)/bin/uv pip compile pyproject.toml --extra codegen --extra dev --generate-hashes \
		--python-version 3.11 -o requirements-dev.lock
	$(VENV)/bin/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) tests/oidc/node_modules
