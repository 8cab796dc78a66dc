# mlvault developer entry points. Everything works from a fresh clone: the first target
# that needs it creates .venv and installs the project with its test extras.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: install test lint typecheck unit demo bench bench-keys bench-backup bench-audit bench-access bench-startup clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,interop]"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check vault cli migrations tests benchmarks
	$(BIN)/ruff format --check vault cli

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	MLVAULT_TEST_POSTGRES_URL=$${MLVAULT_TEST_POSTGRES_URL-$(PG_URL)} \
		$(BIN)/python -m pytest --cov=vault --cov=cli --cov-report=term:skip-covered -q --durations=30

# The README's test command: lint, types, then the whole suite (SQLite, PostgreSQL, moto S3).
test: lint typecheck unit

demo: $(STAMP)
	bash scripts/demo.sh

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_local.py

bench-keys: $(STAMP)
	$(BIN)/python benchmarks/bench_keys.py

# Issue 11: 2 GiB in 20 versions backed up to a local and a moto S3 target, against cp -r and restic
# (apt-get install restic). Needs ~10 GiB free where it builds: BENCH_WORKDIR=/big/disk.
bench-backup: $(STAMP)
	$(BIN)/python benchmarks/bench_backup.py --repeat 3 $(if $(BENCH_WORKDIR),--workdir $(BENCH_WORKDIR))

# Issue 10: audit verify of 1,000,000 rows and 8 appending processes, in a database
# mlvault_bench created (and dropped) on PG_URL's server.
bench-audit: $(STAMP)
	$(BIN)/python benchmarks/bench_audit.py --rows 1000000 --fill bulk --catalog $(PG_URL) --database mlvault_bench

# Issue 10: pull of 1,000 files with and without an access policy (and a trust policy).
bench-access: $(STAMP)
	$(BIN)/python benchmarks/bench_access.py

# Issue 13: start-up of ls/log/show and show of a 20,000-file version (terminal, pipe, --json).
bench-startup: $(STAMP)
	$(BIN)/python benchmarks/bench_startup.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .coverage
