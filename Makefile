# The two commands a newcomer needs are `make run` and `make test`; both set everything up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PORT ?= $(or $(QBSYNC_PORT),8000)
CODE := $(wildcard src tests migrations bench)
# The suite's processes; each test file runs whole in one of them.
TEST_PROCESSES ?= 2

.DEFAULT_GOAL := help
.PHONY: help install browser run demo test chaos lint fmt migrate openapi clean bench

help: ## Show the available targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP) ## Create the virtual environment and install the locked dependencies

# The browser tests drive Debian's Chromium (Playwright's own browser download is not used).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser: ## Install Debian's Chromium for the browser tests when it is missing
	@command -v chromium >/dev/null 2>&1 || $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium \
		|| ($(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

run: $(STAMP) ## Migrate and start API + worker (+ QuickBooks simulator without Intuit credentials)
	$(BIN)/qbsync dev --port $(PORT)

demo: $(STAMP) ## A guided run in the terminal: connect, map, preview, push, a payment comes back
	$(BIN)/qbsync demo

chaos: $(STAMP) ## The fault matrix at full size (tests/chaos); results in bench/results/chaos.{json,md}
	$(BIN)/pytest tests/chaos --chaos-full -p no:cacheprovider -rxX

test: $(STAMP) browser lint ## Lint, then run the whole test suite
	$(BIN)/pytest -n $(TEST_PROCESSES) --dist loadfile --cov --cov-report=term

# Never part of `make test`. Postgres and Redis: QBSYNC_DATABASE__URL / QBSYNC_REDIS__URL when set
# (a scratch database is created and dropped), else the embedded ones. Options: P1_ARGS … P7_ARGS
# (see bench/README.md), e.g. `make bench P3_ARGS="--time-scale 1"`.
bench: $(STAMP) ## Run the benchmarks P1-P7 (about 40 minutes); results and charts in bench/results/
	$(BIN)/python -m bench.p1_intake $(P1_ARGS)
	$(BIN)/python -m bench.p2_webhooks $(P2_ARGS)
	$(BIN)/python -m bench.p3_push $(P3_ARGS)
	$(BIN)/python -m bench.p4_fairness $(P4_ARGS)
	$(BIN)/python -m bench.p5_reconcile $(P5_ARGS)
	$(BIN)/python -m bench.p6_memory $(P6_ARGS)
	$(BIN)/python -m bench.p7_reads $(P7_ARGS)
	$(BIN)/python -m bench.charts

lint: $(STAMP) ## ruff and mypy --strict
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)
	$(BIN)/mypy

fmt: $(STAMP) ## Format and auto-fix
	$(BIN)/ruff format $(CODE)
	$(BIN)/ruff check --fix $(CODE)

migrate: $(STAMP) ## Apply migrations (embedded Postgres unless QBSYNC_DATABASE__URL is set)
	$(BIN)/qbsync migrate

openapi: $(STAMP) ## Write openapi/openapi.json from the app
	$(BIN)/qbsync openapi --output openapi/openapi.json

lock: ## Re-resolve the lock files from pyproject.toml
	$(BIN)/python -m pip install --quiet uv
	rm -rf src/qbsync.egg-info
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra embedded --python-version 3.11 -o requirements-dev.lock
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 -o requirements.lock

clean: ## Remove the virtual environment and the embedded data folder
	rm -rf $(VENV) .qbsync .mypy_cache .ruff_cache .pytest_cache
