# The whole developer loop: make run, make test, make bench, make check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXAMPLE ?= examples/patients/all-second-relapse-34f.json
AS_OF ?= 2026-11-29

.PHONY: run test bench check lint typecheck unit schemas clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## run: set up and evaluate the bundled example patient (writes out/report.html)
run: $(STAMP)
	$(BIN)/actnav evaluate $(EXAMPLE) --as-of $(AS_OF) --format html --out out/report.html

## test: set up and run ruff, mypy and pytest
test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

typecheck: $(STAMP)
	$(BIN)/mypy

## bench: speed and accuracy figures (evaluation, CLI cold start, trial recognition, parsing, matching)
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_evaluate.py
	$(BIN)/python benchmarks/bench_act_recognition.py
	$(BIN)/python benchmarks/bench_parse_lct.py
	$(BIN)/python benchmarks/bench_parse_hint.py
	$(BIN)/python benchmarks/bench_match.py

check: test

## schemas: regenerate the published JSON Schemas from the models
schemas: $(STAMP)
	$(BIN)/python scripts/export_schemas.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
