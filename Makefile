# Two commands for a fresh clone:  make run  |  make test
# Both create .venv when missing and (re)install only when pyproject.toml or
# constraints.txt changed since the last install (tracked by a stamp file).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EXTRAS := ml,notebooks,dev,fast

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[$(EXTRAS)]"
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/novacron simulate

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check novacron sim backends tests benchmarks experiments

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) results .pytest_cache
