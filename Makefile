# The two commands: `make run` and `make test`. Everything else is a helper of theirs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Every dependency pinned with its hashes, from pyproject.toml by `make lock`: dev.lock (with the dev and
# embedded extras) for make and CI, prod.lock (neither) for the Dockerfile, resolved to the same versions.
LOCK := requirements/dev.lock
PROD_LOCK := requirements/prod.lock
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | sha1sum | cut -c1-12)
UV_COMPILE := $(VENV)/bin/uv pip compile pyproject.toml --quiet --universal --python-version 3.11 \
	--generate-hashes --custom-compile-command "make lock" $(LOCK_ARGS)

.PHONY: run test lint types pytest bench install clean manage lock system-packages

# The locked versions only (hash-checked; --no-deps: the lock is complete, and [tool.uv] leaves out a
# dependency pip would otherwise chase), then the project itself without resolving anything again.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q --require-hashes -r $(LOCK) --no-deps
	$(VENV)/bin/pip install -q --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

## make lock: re-pin after editing pyproject.toml's dependencies (keeps the other pins; to move every pin
## to its newest allowed version: make lock LOCK_ARGS=--upgrade). Commit requirements/*.lock.
lock:
	test -x $(VENV)/bin/uv || { $(PYTHON) -m venv $(VENV) && $(VENV)/bin/pip install -q uv; }
	$(UV_COMPILE) --extra dev --extra embedded -o $(LOCK)
	$(UV_COMPILE) --constraint $(LOCK) -o $(PROD_LOCK)

## Debian's chromium (browser tests) and docker-compose (validates docker-compose.yml) when missing, where
## apt-get exists and we are root (CI's and the project's machines); elsewhere those tests say why they skip.
system-packages:
	@if command -v chromium >/dev/null 2>&1 && command -v docker-compose >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian's chromium and docker-compose (the browser and compose-file tests use them)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium docker-compose >/dev/null; \
	else echo "chromium or docker-compose missing and not root with apt-get: their tests will be skipped"; fi

## make run: web + worker + scheduler on embedded PostgreSQL/Redis (or DATABASE_URL/REDIS_URL when set)
run: install
	DJANGO_ENV=development $(PY) -m config.devrun

## make manage ARGS="...": a management command beside `make run`, on the same embedded (or given) databases,
## e.g. make manage ARGS="simulate_inbound --tenant demo --from +15551234567 --text hi"
manage: install
	DJANGO_ENV=development $(PY) -m config.embedded -- $(PY) manage.py $(ARGS)

## make test: ruff, mypy and the whole pytest suite against real PostgreSQL and Redis
test: install system-packages lint types pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports  # the apps' dependency direction: pyproject.toml's [tool.importlinter]

types: install
	DJANGO_ENV=test $(VENV)/bin/mypy .

pytest: install
	DJANGO_ENV=test $(PY) -m config.embedded -- $(PY) -m pytest $(PYTEST_ARGS)

bench: install
	DJANGO_ENV=development $(PY) -m config.embedded -- $(PY) -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
