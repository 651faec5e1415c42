# Developer entry points; `make test` is also what CI runs (.ci/run).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv services lint test demo bench

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

# Benchmarks (docs/benchmarks.md): all five, ~9 min on 2 cores; BENCH_ARGS=--quick for a
# smoke run. wrk is the API benchmark's load generator (Debian's package).
bench: venv services
	@command -v wrk >/dev/null || { \
		if [ "$$(id -u)" != 0 ]; then echo "missing: wrk; install with: sudo apt-get install -y wrk" >&2; exit 1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null && echo "installed wrk"; }
	$(BIN)/python -m bench $(BENCH_ARGS)
