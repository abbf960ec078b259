# SkyDriver developer entry points. `make demo` and `make test` set everything up first
# (virtualenv, RabbitMQ, the MongoDB-wire server) and are idempotent.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup venv services browser stop-services demo test test-fast lint bench clean

setup: venv services

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@scripts/ensure-venv.sh "$(PYTHON)" "$(VENV)"
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[test,mongo-wire]'
	@touch $@

services: venv
	$(PY) scripts/services.py up

# Debian's chromium for the dashboard's browser tests (installed once, as root)
browser: venv
	$(PY) scripts/services.py browser

stop-services: venv
	$(PY) scripts/services.py down

demo: setup
	$(VENV)/bin/skydriver demo --out demo-output

# Integration tests wait on processes far more than they compute: three at a time (a file per
# worker, so module fixtures start once). Tests that restart or disrupt a shared service run
# alone afterwards.
test: setup browser
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -p no:cacheprovider -n 3 --dist loadfile -m "not restarts_services"
	$(PY) -m pytest -q -p no:cacheprovider -m restarts_services

test-fast: venv
	$(PY) -m pytest -q -m "not integration and not faults"

lint: venv
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) bench/throughput

clean:
	rm -rf demo-output bench-output .pytest_cache
