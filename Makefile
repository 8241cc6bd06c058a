# citygate — `make run` starts the gateway on SQLite; `make test` runs every check.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
export CITYGATE_CONFIG ?= config.yaml

.PHONY: run test lint format typecheck install migrate clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

migrate: install
	$(VENV)/bin/citygate migrate

run: install
	CITYGATE_DEV_MODE=$${CITYGATE_DEV_MODE:-1} $(VENV)/bin/citygate migrate
	CITYGATE_DEV_MODE=$${CITYGATE_DEV_MODE:-1} $(VENV)/bin/citygate serve --host 127.0.0.1 --port 8000

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: install
	$(VENV)/bin/mypy

test: install lint typecheck
	$(VENV)/bin/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var/*.db var/*.db-* .pytest_cache .mypy_cache .ruff_cache

# Benchmarks (bench/, docs/BENCHMARKS.md): not part of `make test`. `bench` takes ~16
# minutes and writes bench/results/<date>.json; `bench-smoke` runs every part once,
# briefly (< 1 minute). Both install Debian's wrk with apt-get when it is missing.
.PHONY: bench bench-smoke
bench: install
	$(VENV)/bin/python -m bench $(BENCH_ARGS)

bench-smoke: install
	$(VENV)/bin/python -m bench --smoke $(BENCH_ARGS)
