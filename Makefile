# Developer entry points; `make test` is also what CI runs (.ci/run).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv services lint test demo

venv: $(VENV)/.installed

# Re-install whenever pyproject.toml changes (new or bumped dependencies).
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

services:
	bash scripts/services.sh

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy leap streams connectors schemas api bench

test: lint services
	$(BIN)/pytest -q

demo: venv
	bash scripts/services.sh redis
	$(BIN)/leap dev
