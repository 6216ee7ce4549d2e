# lnrnn — `make help` lists the targets. `make test` is exactly what CI runs.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: help
help:  ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "} {printf "  %-16s %s\n", $$1, $$2}'

.PHONY: install
install:  ## create .venv if missing; torch==2.13.0 (CPU wheel) first, then lnrnn[train,serve,cpu,dev] editable
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -e '.[train,serve,cpu,dev]'

.PHONY: lint
lint: install  ## ruff check + ruff format --check + hadolint Dockerfile
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint --no-color --failure-threshold warning Dockerfile

.PHONY: format
format: install  ## ruff --fix + ruff format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

.PHONY: test
test: install lint  ## install, lint, and run the whole test suite (what CI runs)
	$(BIN)/pytest

SERVE_VENV ?= .venv-serve
MODEL ?= models/default

.PHONY: serve
serve:  ## serving-only venv (.venv-serve, no torch), then serve $(MODEL) on http://127.0.0.1:8000 (docs: /docs)
	@test -x $(SERVE_VENV)/bin/python || $(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/pip install -q --disable-pip-version-check -e '.[serve,cpu]'
	$(SERVE_VENV)/bin/lnrnn serve $(MODEL)
