# Code Things developer commands. The logic lives in scripts/dev.py (standard library
# only, so it runs before any virtualenv exists); these targets only name it.
#
#   make up                 app on http://127.0.0.1:3000 with the local identity provider
#   make test               the whole test suite (unit, runtime, end-to-end; SQLite and PostgreSQL)
#   make token SUB=alice    a token for subject alice from the local identity provider
#   make build [FORCE=1]    build the components (skipped when the sources are unchanged)
#   make lint               ruff and mypy
#   make bench              run the benchmark scripts in bench/
#   make env                create or update .venv and .venv-build
#   make clean              remove build output and .spin/ state; distclean also the venvs

SHELL := bash
PYTHON ?= python3
DEV := $(PYTHON) scripts/dev.py
SUB ?= alice
PYTEST_ARGS ?=

.PHONY: up test token build lint bench env clean distclean

up:
	@$(DEV) up

test:
	@$(DEV) test $(PYTEST_ARGS)

token:
	@$(DEV) token --sub "$(SUB)"

build:
	@$(DEV) build $(if $(FORCE),--force)

lint:
	@$(DEV) lint

bench:
	@$(DEV) bench

env:
	@$(DEV) env

clean:
	@$(DEV) clean

distclean:
	@$(DEV) clean --all
