# Two commands for a fresh clone:  make run  |  make test
# Both create .venv when missing and (re)install only when pyproject.toml or
# constraints.txt changed since the last install (tracked by a stamp file).

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EXTRAS := ml,notebooks,dev,fast,bench,distributed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml constraints.txt Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "NovaCron needs Python >= 3.11; run: make PYTHON=python3.11 ...")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing novacron[$(EXTRAS)] into $(VENV) (first run only; a few minutes)..."
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[$(EXTRAS)]" \
		2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/novacron simulate

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check novacron sim backends tests benchmarks experiments notebooks

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) results .pytest_cache
