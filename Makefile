# Two commands: `make run` (everything, with demo data) and `make test` (lint, types, all tests).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export XDG_RUNTIME_DIR ?= /tmp/relais-runtime-$(shell id -u)

.PHONY: install run test lint clean

$(VENV)/.installed: pyproject.toml constraints.txt
	@mkdir -p -m 700 $(XDG_RUNTIME_DIR)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	@mkdir -p -m 700 $(XDG_RUNTIME_DIR)
	$(PY) -m wiring devstack

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .

test: lint
	@mkdir -p -m 700 $(XDG_RUNTIME_DIR)
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .data test-artifacts
