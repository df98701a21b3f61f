# The two commands: `make run` and `make test`. Everything else is a helper of theirs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run test lint types pytest bench install clean manage

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[dev,embedded]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

## make run: web + worker + scheduler on embedded PostgreSQL/Redis (or DATABASE_URL/REDIS_URL when set)
run: install
	DJANGO_ENV=development $(PY) -m config.devrun

## make manage ARGS="...": a management command beside `make run`, on the same embedded (or given) databases,
## e.g. make manage ARGS="simulate_inbound --tenant demo --from +15551234567 --text hi"
manage: install
	DJANGO_ENV=development $(PY) -m config.embedded -- $(PY) manage.py $(ARGS)

## make test: ruff, mypy and the whole pytest suite against real PostgreSQL and Redis
test: install lint types pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

types: install
	DJANGO_ENV=test $(VENV)/bin/mypy .

pytest: install
	DJANGO_ENV=test $(PY) -m config.embedded -- $(PY) -m pytest $(PYTEST_ARGS)

bench: install
	DJANGO_ENV=development $(PY) -m config.embedded -- $(PY) -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
