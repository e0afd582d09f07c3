# Two commands on a fresh machine: `make run` and `make test`. Both bootstrap .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format-check typecheck pytest bench install clean console doctor wheel-smoke

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/cockpit run

console: $(STAMP)
	$(BIN)/cockpit console

doctor: $(STAMP)
	$(BIN)/cockpit doctor

lint: $(STAMP)
	$(BIN)/ruff check bot tools storage tests benchmarks

# `ruff format bot tools storage tests benchmarks` fixes what this reports.
format-check: $(STAMP)
	$(BIN)/ruff format --check bot tools storage tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy bot tools storage

pytest: $(STAMP)
	$(BIN)/pytest -q

test: lint format-check typecheck pytest

bench: $(STAMP)
	@for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

# Build the wheel, install it into a fresh virtualenv and run it outside the checkout.
WHEEL_DIR := $(shell mktemp -d -u /tmp/cockpit-wheel.XXXXXX)
wheel-smoke: $(STAMP)
	$(BIN)/python -m pip wheel --quiet --no-deps -w $(WHEEL_DIR)/dist .
	$(PYTHON) -m venv $(WHEEL_DIR)/venv
	$(WHEEL_DIR)/venv/bin/python -m pip install --quiet $(WHEEL_DIR)/dist/*.whl
	cd $(WHEEL_DIR) && $(WHEEL_DIR)/venv/bin/python $(CURDIR)/tests/wheel_smoke.py
	rm -rf $(WHEEL_DIR) build

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
