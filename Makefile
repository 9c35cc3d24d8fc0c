# The two commands a newcomer needs: `make run` and `make test`. Everything else is a helper.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
export FLASK_APP := app.py

.PHONY: run test test-fast lint format migrate shell clean bench lock

# The venv is rebuilt whenever a requirements file changes.
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

run: $(VENV)/.installed  ## set up everything; web, worker and clock on http://127.0.0.1:5000
	$(BIN)/python bin/run

test: $(VENV)/.installed  ## the whole test suite (TEST_DATABASE_URL=postgresql://... for PostgreSQL)
	$(BIN)/python -m pytest

test-fast: $(VENV)/.installed  ## the unit tests only: no Redis, worker or browser needed
	$(BIN)/python -m pytest -m "not integration" -q

bench: $(VENV)/.installed  ## the worker benchmarks, one table (docs/performance.md); ARGS="--help"
	$(BIN)/python -m bench $(ARGS)

lock: $(VENV)/.installed  ## after editing requirements*.in: pin everything in requirements*.txt
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links \
		--allow-unsafe -o requirements.txt requirements.in
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links \
		--allow-unsafe -o requirements-dev.txt requirements-dev.in

lint: $(VENV)/.installed  ## ruff, as CI runs it
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrate: $(VENV)/.installed  ## write a migration after changing blog/models.py: make migrate m="what changed"
	$(BIN)/flask db migrate -m "$(m)"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
