# passgate — `make help` lists the targets.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
NODE_DIR := chain/node

.DEFAULT_GOAL := help
.PHONY: help setup demo test test-sqlite lint typecheck imports check contracts bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: ## Install uv if missing, the Python environment (locked) and the dev-chain npm packages
	@command -v uv >/dev/null 2>&1 || [ -x "$(UV)" ] || python3 -m pip install --quiet --user uv
	# Bytecode up front: where PYTHONDONTWRITEBYTECODE is set (as on CI machines), every process
	# would otherwise compile the whole environment again: ~9 s instead of ~3 s per start.
	$(UV) sync --frozen --compile-bytecode
	@if [ -f $(NODE_DIR)/package-lock.json ] && [ ! -d $(NODE_DIR)/node_modules ]; then \
		npm ci --prefix $(NODE_DIR) --ignore-scripts --no-audit --no-fund --loglevel=error; fi

demo: setup ## Run passgate end to end on embedded defaults (SQLite, one-box serve, anvil)
	$(UV) run passgate demo

test: setup ## Run the whole test suite (SQLite and PostgreSQL, real Redis and anvil)
	$(UV) run pytest

lint: setup ## ruff
	$(UV) run ruff check app workers chain webhooks tests benchmarks migrations

typecheck: setup ## mypy --strict on the packages
	$(UV) run mypy

imports: setup ## The import contract (layers in pyproject.toml)
	$(UV) run lint-imports --no-logo

check: lint typecheck imports ## Lint, type-check and the import contract

contracts: ## Rebuild chain/contracts/{TestUSDC,TestUptoProxy}.json with solc from npm
	npm ci --prefix $(NODE_DIR) --ignore-scripts --no-audit --no-fund --loglevel=error
	node $(NODE_DIR)/compile.mjs

bench: setup ## Run every benchmark (prints figures, writes benchmarks/results/)
	@for b in benchmarks/[!_]*.py; do echo "== $$b"; $(UV) run python $$b || exit 1; done

clean: ## Remove caches and local databases
	rm -rf .pytest_cache .mypy_cache .ruff_cache passgate.db*
