# Two commands do all set-up on a fresh machine with Python 3.11:
#   make dev    - run the server with every dependency embedded (data in ./.copilot-data)
#   make test   - run the whole test suite (lint, types, tests) against real services
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: dev test lint install bench clean help browser

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	@echo ">> creating $(VENV) and installing (first run takes a minute)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -e '.[test]'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP) ## create the virtualenv and install the project

dev: $(STAMP) ## run everything embedded: Temporal (+UI), Postgres, Redis, worker, API
	$(BIN)/copilot dev $(ARGS)

lint: $(STAMP) ## ruff + mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

browser: ## Debian's chromium for the web console test (playwright drives /usr/bin/chromium)
	@test -x /usr/bin/chromium || { echo ">> installing Debian's chromium for the browser test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || { echo "could not install chromium: run 'apt-get install chromium' as root"; exit 1; }; }

test: lint browser ## lint, type-check and run the whole suite against real services
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP) ## run the benchmarks (see bench/README.md)
	$(BIN)/python -m bench $(ARGS)

clean: ## remove the virtualenv (keeps .copilot-data)
	rm -rf $(VENV)
