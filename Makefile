# One command per task. Every target creates the virtualenv it needs.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PORT ?= 3000
export SAM_CLI_TELEMETRY := 0

.PHONY: run test lint typecheck unit integration template e2e bench openapi chromium clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

## run: the whole system locally (mint API, data plane, demo pages) on 127.0.0.1:$(PORT)
run: $(STAMP)
	$(VENV)/bin/preview-local

## test: everything CI runs: lint, types, unit, integration, template checks, browser tests
test: lint typecheck unit integration template e2e

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(VENV)/bin/pytest tests/unit -q

integration: $(STAMP)
	$(VENV)/bin/pytest tests/integration -q

template: $(STAMP)
	$(VENV)/bin/sam validate --lint
	$(VENV)/bin/cfn-lint template.yaml
	$(VENV)/bin/sam build --cached --parallel

e2e: $(STAMP) chromium
	$(VENV)/bin/pytest tests/e2e -q

## chromium: Debian's chromium for the browser tests (never a downloaded browser build)
chromium:
	@command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

## bench: the authorizer's hot path and cold start, as ratios against baselines measured in the same run
bench: $(STAMP)
	$(PY) -m bench.authorizer_bench

## openapi: regenerate docs/openapi.json from the code
openapi: $(STAMP)
	PYTHONPATH=functions/mint POWERTOOLS_TRACE_DISABLED=1 $(PY) -c \
	  'import json, mint_api; print(json.dumps(mint_api.build_openapi(), indent=2, sort_keys=True))' > docs/openapi.json

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache test-artifacts
