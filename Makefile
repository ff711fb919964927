# Herald — the two commands are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help run test check lint fmt clean bench bench-quick browser mta assets

help:
	@echo "make run    - start Herald on an embedded Postgres (development outbox)"
	@echo "make test   - run every test (unit, integration, e2e)"
	@echo "make check  - lint + type-check + every test"
	@echo "make fmt    - format and autofix"
	@echo "make browser - install headless Chromium for the browser test (Debian package)"
	@echo "make mta    - install Postfix for the SMTP bounce test (Debian package)"
	@echo "make assets - re-vendor the pinned front-end libraries (htmx, uPlot) from the npm registry"

# The virtualenv is rebuilt when the dependency pins change.
$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Herald needs Python 3.11 or newer (set PYTHON=python3.12, say)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv>=0.4"
	@$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock
	@$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/herald up

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

check: lint test

# The browser test drives Debian's Chromium through Playwright (never `playwright install`,
# which downloads its own browser build). Installed only when missing; needs root or sudo.
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ -x $(CHROMIUM) ]; then echo "chromium: $$($(CHROMIUM) --version 2>/dev/null)"; \
	else \
		SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium; \
	fi

# tests/e2e/test_postfix_bounce.py runs a private Postfix (its own config, queue and log in a
# temporary directory) to bounce Herald's mail through a real MTA. Installed only when
# missing; needs root or sudo.
mta:
	@if command -v postfix >/dev/null 2>&1 || [ -x /usr/sbin/postfix ]; then echo "postfix: installed"; \
	else \
		SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends postfix; \
	fi

# Front-end libraries under src/herald/web/static/vendor, pinned in its vendor.json: each
# tarball is checked against the registry's dist.integrity. Needs npm and the registry, so
# it is never part of `make test` (the tests check the vendored files offline).
assets:
	$(PYTHON) tools/vendor_assets.py

fmt: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

# Regenerate the pinned dependency set after editing pyproject.toml.
lock: $(BIN)/python
	$(BIN)/uv pip compile --quiet --extra dev --python-version 3.11 pyproject.toml -o requirements.lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv>=0.4"

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# Benchmarks (bench/README.md): each scenario starts its own Postgres, sinks and processes;
# bench/install-tools.sh installs the Debian tools they drive. Results go to BENCHMARKS.md.
.PHONY: bench-tools bench-publish bench-crash
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

bench-quick: $(STAMP)
	$(BIN)/python bench/run.py --quick $(BENCH_ARGS)

bench-tools: $(STAMP)
	bash bench/install-tools.sh

bench-publish: $(STAMP)
	$(BIN)/python bench/publish.py --config 3:500:1 $(BENCH_ARGS)

bench-crash: $(STAMP)
	$(BIN)/python bench/crash.py $(BENCH_ARGS)
