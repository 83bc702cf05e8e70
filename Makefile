# `make demo` and `make test` set everything up on a fresh Debian / Raspberry Pi OS machine.
SHELL := bash
.SHELLFLAGS := -eo pipefail -c
# The venv is built on the interpreter the installed gate runs (systemd/install.sh makes its
# venv with /usr/bin/python3), so the tests and the benchmarks run on that same build. Where it
# is missing or older than 3.11: the first python3 on PATH. `make PYTHON=...` picks another.
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell /usr/bin/python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	2>/dev/null && echo /usr/bin/python3 || echo python3)
endif
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo validation-demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@if ! ldconfig -p 2>/dev/null | grep -q 'libzbar\.so\.0'; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing libzbar0 (for the pyzbar QR decoder)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libzbar0 >/dev/null; \
	  else \
	    echo "warning: libzbar0 is missing; run 'sudo apt-get install libzbar0' for pyzbar" >&2; \
	  fi; \
	fi
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing postgresql (for the collector's PostgreSQL backend and its tests)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else \
	    echo "warning: PostgreSQL is missing; the collector's PostgreSQL tests will be skipped ('sudo apt-get install postgresql')" >&2; \
	  fi; \
	fi
	@if ! $(PYTHON) -c 'import ensurepip' >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing python3-venv (venv's pip for $(PYTHON))"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; \
	  else \
	    echo "warning: $(PYTHON) has no ensurepip; run 'sudo apt-get install python3-venv'" >&2; \
	  fi; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[test]' 2>&1 | { grep -v '^WARNING: Location' || true; }
	touch $(STAMP)

demo: setup
	$(BIN)/gated --simulate

validation-demo: setup
	$(BIN)/python -m gate.demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	$(BIN)/python bench/validate.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
