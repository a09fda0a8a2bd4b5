# One command per task. Every target installs what it needs, from the committed uv.lock.
SHELL := /bin/bash
VENV := .venv
CFN_LINT_VENV := $(CURDIR)/.venv-cfn-lint
# make bench prints its tables only: not its commands either (bench/quiet.py silences the rest).
.SILENT: bench
PY := $(VENV)/bin/python
export PORT ?= 3000
export SAM_CLI_TELEMETRY := 0
# uv: the one on PATH, else a pinned copy bootstrapped from PyPI into .tools/ (git-ignored).
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# --locked: the lock must match pyproject.toml (CI fails otherwise); nothing is re-resolved.
SYNC := $(UV) sync --locked --python python3.11 --quiet
LAYER_REQUIREMENTS := layers/preview_tokens/requirements.txt

.PHONY: run test lint typecheck unit integration ingress template checkov built e2e bench openapi edge chromium \
	desktop node requirements lock clean real-apps

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# What the local stack needs to run: the runtime dependencies and the "local" group.
$(VENV)/.synced-local: pyproject.toml uv.lock | $(UV)
	$(SYNC) --inexact --group local
	touch $@

# Everything for the tests: adds the "dev" group (linters, type checker, SAM CLI, playwright) and
# the "operator" extra (the AWS CRT the CLI needs to write the CloudFront KeyValueStore).
$(VENV)/.synced-dev: pyproject.toml uv.lock | $(UV)
	$(SYNC) --group dev --extra operator
	touch $@ $(VENV)/.synced-local

# The fleet ingress as `uvx --from ./ingress` installs it: its wheel, the per-request modules
# compiled by mypyc (ingress/setup.py), unpacked where the ingress's tests and make bench import it
# from (ahead of the environment's editable, pure Python copy). The e2e suite runs the pure one.
COMPILED_INGRESS := .local/ingress-compiled
WITH_COMPILED_INGRESS := PYTHONPATH=$(COMPILED_INGRESS)/site PREVIEW_INGRESS_UNDER_TEST=compiled
$(COMPILED_INGRESS)/.built: $(wildcard ingress/preview_ingress/*.py) ingress/setup.py ingress/pyproject.toml | $(UV)
	rm -rf $(COMPILED_INGRESS)
	$(UV) build --quiet --python python3.11 --wheel ingress --out-dir $(COMPILED_INGRESS)/wheel
	python3.11 -m zipfile -e $(COMPILED_INGRESS)/wheel/*.whl $(COMPILED_INGRESS)/site
	touch $@

## run: the whole system locally (mint API, data plane, demo pages) on 127.0.0.1:$(PORT)
## (the desktop sandbox when its Debian packages are present; otherwise it prints `make desktop`)
run: $(VENV)/.synced-local
	$(VENV)/bin/preview-local

## test: everything CI runs: lint, types, unit, integration, template checks, built artifacts, browser tests
test: lint typecheck unit integration template built e2e

lint: $(VENV)/.synced-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@$(MAKE) --no-print-directory -s requirements-check

typecheck: $(VENV)/.synced-dev
	$(VENV)/bin/mypy

unit: $(VENV)/.synced-dev
	$(VENV)/bin/pytest tests/unit -q

## integration: the handlers against moto, and the fleet ingress as users install it (its wheel,
## compiled by mypyc), on up to 4 CPUs (pytest-xdist)
integration: $(VENV)/.synced-dev node $(COMPILED_INGRESS)/.built
	$(WITH_COMPILED_INGRESS) $(VENV)/bin/pytest tests/integration tests/ingress -q -n auto --maxprocesses 4

## ingress: the fleet ingress's tests on its source as it is (pure Python, no build; real aiohttp
## apps behind the real ingress, loopback only)
ingress: $(VENV)/.synced-dev
	$(VENV)/bin/pytest tests/ingress -q

template: $(VENV)/.synced-dev checkov $(CFN_LINT_VENV)/.synced
	$(VENV)/bin/sam validate --lint
	$(CFN_LINT_VENV)/bin/cfn-lint template.yaml
	$(VENV)/bin/sam build --cached --parallel

# cfn-lint at a release whose AWS data knows the Lambda runtimes' deprecation dates; aws-sam-cli pins
# an older one (~=1.41.0), so it has its own environment, from tools/cfn-lint/uv.lock.
$(CFN_LINT_VENV)/.synced: tools/cfn-lint/pyproject.toml tools/cfn-lint/uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(CFN_LINT_VENV) $(UV) sync --locked --python python3.11 --quiet --project tools/cfn-lint
	touch $@

# checkov pins boto3 and packaging below what the project locks, so it lives in its own environment,
# installed from tools/checkov/uv.lock. Every check passes or is skipped inline in template.yaml with
# its reason; --skip-download: no call to Prisma Cloud (offline, nothing downloaded at run time).
CHECKOV_VENV := $(CURDIR)/.venv-checkov
$(CHECKOV_VENV)/.synced: tools/checkov/pyproject.toml tools/checkov/uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(CHECKOV_VENV) $(UV) sync --locked --python python3.11 --quiet --project tools/checkov
	touch $@

## checkov: static security checks of template.yaml (zero failures; skips carry their reason inline)
checkov: $(CHECKOV_VENV)/.synced
	BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation \
	  --skip-download --quiet --compact --output cli

## built: each function from .aws-sam/build, imported and invoked the way Lambda would (after `template`)
built: $(VENV)/.synced-dev
	test -d .aws-sam/build || $(MAKE) --no-print-directory template
	$(VENV)/bin/pytest tests/built -q

## e2e: three xdist workers, one test file at a time each, each its own local stack and Chromium
## (about 4.5 instead of 9 minutes on 2 CPUs: most tests wait on tokens' ends; see docs/development.md)
e2e: $(VENV)/.synced-dev chromium desktop real-apps
	$(VENV)/bin/pytest tests/e2e -q -n 3 --dist loadfile

## real-apps: the third-party apps the e2e tests run as sandboxes (tests/apps/, docs/real-apps.md), from
## their locks only: Vite + React with `npm ci` (package-lock.json), Jupyter Server + ipykernel with
## `uv sync --locked` (tests/apps/jupyter/uv.lock) into .venv-jupyter. Nothing is fetched at test time.
REAL_APPS_VITE := tests/apps/vite-react
JUPYTER_VENV := $(CURDIR)/.venv-jupyter
$(REAL_APPS_VITE)/node_modules/.installed: $(REAL_APPS_VITE)/package.json $(REAL_APPS_VITE)/package-lock.json | node
	@node -e 'const [a, b] = process.versions.node.split(".").map(Number); if (a < 20 || (a === 20 && b < 19)) { console.error("Vite 8 needs node >= 20.19, this is " + process.version); process.exit(1); }'
	cd $(REAL_APPS_VITE) && npm ci --no-audit --no-fund --loglevel=error
	touch $@
$(JUPYTER_VENV)/.synced: tests/apps/jupyter/pyproject.toml tests/apps/jupyter/uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(JUPYTER_VENV) $(UV) sync --locked --python python3.11 --quiet --project tests/apps/jupyter
	touch $@
real-apps: $(REAL_APPS_VITE)/node_modules/.installed $(JUPYTER_VENV)/.synced

## chromium: Debian's chromium for the browser tests (never a downloaded browser build)
chromium:
	@command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

## node: runs the CloudFront Functions of template.yaml in the tests (shared vectors) and the bench
node:
	@command -v node >/dev/null || { \
	  echo "installing Debian's nodejs for the CloudFront Function tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs >/dev/null; }

## desktop: the desktop sandbox's Debian packages (X display, RFB server, noVNC, the app's Tk) and node
DESKTOP_PACKAGES := xvfb x11vnc novnc websockify python3-tk nodejs
desktop:
	@command -v Xvfb >/dev/null && command -v x11vnc >/dev/null && command -v websockify >/dev/null \
	  && test -f /usr/share/novnc/core/rfb.js && python3.11 -c 'import tkinter' 2>/dev/null \
	  && command -v node >/dev/null || { \
	  echo "installing the desktop sandbox's Debian packages: $(DESKTOP_PACKAGES)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(DESKTOP_PACKAGES) >/dev/null; }

## bench: the ?mt= authorizer's cost and cold start, the edge function's cost per request, the
## mint's round trips and cold start (ratios against baselines measured in the same run), cost
## per 1,000 page loads and concurrency from measured durations, the fleet ingress against the app
## direct, and the Vite app's page load through the local stack against the app direct (chromium)
bench: $(VENV)/.synced-dev node chromium real-apps $(COMPILED_INGRESS)/.built
	$(PY) -m bench.authorizer_bench
	$(PY) -m bench.edge_bench
	$(PY) -m bench.control_bench
	$(WITH_COMPILED_INGRESS) $(PY) -m bench.ingress_bench
	$(PY) -m bench.apps_bench

## openapi: regenerate docs/openapi.json from the code
openapi: $(VENV)/.synced-dev
	PYTHONPATH=functions/mint POWERTOOLS_TRACE_DISABLED=1 $(PY) -c \
	  'import json, mint_api; print(json.dumps(mint_api.build_openapi(), indent=2, sort_keys=True))' > docs/openapi.json

## edge: write edge/preview_edge.js (the PreviewEdge CloudFront Function) into template.yaml
edge: $(VENV)/.synced-dev
	$(PY) tools/build_edge.py

## lock: re-resolve uv.lock after a change to pyproject.toml, and re-export the layer's requirements
lock: | $(UV)
	$(UV) lock
	$(UV) lock --project tools/checkov
	$(UV) lock --project tools/cfn-lint
	@$(MAKE) --no-print-directory requirements

# The layer ships exactly the locked runtime versions (boto3 included), so Lambda runs what the tests ran.
requirements: | $(UV)
	$(UV) export --locked --quiet --no-default-groups --no-emit-project --no-header \
	  --format requirements.txt -o $(LAYER_REQUIREMENTS)

requirements-check: | $(UV)
	@$(UV) export --locked --quiet --no-default-groups --no-emit-project --no-header \
	  --format requirements.txt | diff -u $(LAYER_REQUIREMENTS) - \
	  || { echo "$(LAYER_REQUIREMENTS) is stale: run 'make requirements'"; exit 1; }

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache test-artifacts
