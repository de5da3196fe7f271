# The whole developer loop: make run, make test, make bench, make check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXAMPLE ?= examples/patients/all-second-relapse-34f.json
AS_OF ?= 2026-11-29
# Debian packages the tests use: chromium (browser tests), the Pango libraries and a font
# (WeasyPrint, the plan PDF), postgresql (the PostgreSQL store tests).
SYSTEM_PACKAGES ?= chromium fonts-dejavu-core libpango-1.0-0 libpangoft2-1.0-0 postgresql

.PHONY: run test bench check lint typecheck unit schemas clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## run: set up, evaluate the bundled example patient (writes out/report.html) and load the
## synthetic examples into the web application's database (actnav serve shows them)
run: $(STAMP)
	$(BIN)/actnav evaluate $(EXAMPLE) --as-of $(AS_OF) --format html --out out/report.html
	$(BIN)/actnav patients load --example --as-of $(AS_OF) examples/patients/*.json

## test: set up and run ruff, mypy and pytest (system packages installed first when root)
test: $(STAMP) system-deps lint typecheck
	$(BIN)/python -m pytest -q

## system-deps: install the missing SYSTEM_PACKAGES with apt when root; otherwise say what is missing
## (the tests needing them then skip, and fail in CI)
system-deps:
	@missing=""; \
	for pkg in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -z "$$missing" ]; then \
	  echo "system packages present: $(SYSTEM_PACKAGES)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing system packages:$$missing"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	else \
	  echo "system packages missing:$$missing"; \
	  echo "  install them with: sudo make system-deps (Debian/Ubuntu); the tests needing them will be skipped"; \
	fi

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
	$(BIN)/python benchmarks/bench_screen.py
	$(BIN)/python benchmarks/bench_notes_extraction.py
	$(BIN)/python benchmarks/bench_notes_extraction.py --gold benchmarks/notes/heldout.yaml --out out/bench/notes-extraction-heldout.json
	$(BIN)/python benchmarks/bench_notes_extraction.py --gold benchmarks/notes/testset.yaml --out out/bench/notes-extraction-testset.json
	$(BIN)/python benchmarks/bench_notes_ranking.py

check: test

## schemas: regenerate the published JSON Schemas from the models
schemas: $(STAMP)
	$(BIN)/python scripts/export_schemas.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
