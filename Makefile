# Billfold. `make demo` and `make test` bootstrap everything they need into .venv/.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export BILLFOLD_TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/postgres

.PHONY: demo test lint unit test-sqlite test-postgres bench lock serve clean browser
AXE := node_modules/axe-core/axe.min.js

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Billfold needs Python 3.11 ($(PYTHON))"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

demo: $(STAMP)
	@mkdir -p var
	$(BIN)/billfold db upgrade
	$(BIN)/billfold demo
	$(BIN)/billfold serve --host 127.0.0.1 --port 8000

lint: $(STAMP)
	$(BIN)/ruff check src tests bench migrations
	$(BIN)/mypy
	$(BIN)/lint-imports

# The page tests drive Debian's Chromium through Playwright (never a downloaded browser);
# one test runs the curl command the demo prints.
browser:
	@{ test -x /usr/bin/chromium && command -v curl >/dev/null; } || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium curl; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq chromium curl; fi; }

# axe-core, run inside the portal's pages by the browser tests (npm ci installs exactly
# what package-lock.json pins).
$(AXE): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $(AXE)

test-sqlite: $(STAMP) browser $(AXE)
	BILLFOLD_TEST_DATABASE=sqlite $(BIN)/pytest -q -n 2 -p no:cacheprovider

test-postgres: $(STAMP) browser $(AXE)
	BILLFOLD_TEST_DATABASE=postgres $(BIN)/pytest -q -n 2 -p no:cacheprovider

test: lint test-sqlite test-postgres

bench: $(STAMP)
	$(BIN)/python -m bench

# Regenerate requirements.lock from pyproject.toml (needs network access to the index).
lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==0.13.8
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 --universal \
		-o requirements.lock --quiet

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache node_modules
