# The two commands: `make run` (set up everything, serve on http://127.0.0.1:8000) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run run-postgres test lint install migrate seed clean

run: $(STAMP)  ## venv + install, migrate, demo data if the database is empty, serve (SQLite file)
	$(BIN)/heroes up --host $(HOST) --port $(PORT)

run-postgres: $(STAMP)  ## the same lab on PostgreSQL: DATABASE_URL if set, else an embedded server in .pgdata/
	$(BIN)/heroes up --postgres --host $(HOST) --port $(PORT)

test: $(STAMP)  ## the whole suite, on SQLite and on a real PostgreSQL (embedded unless TEST_DATABASE_URL)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check heroes migrations tests
	$(BIN)/ruff format --check heroes migrations tests

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

migrate: $(STAMP)
	$(BIN)/heroes db upgrade

seed: $(STAMP)
	$(BIN)/heroes seed

clean:
	rm -rf $(VENV) heroes.db heroes.db-* .pgdata .pytest_cache
