# Winnow: `make run` starts the app on an embedded PostgreSQL; `make test` runs the suite on real services.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run psql test venv dev-deps services chromium migrate lint bench-ingest bench-export clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall only when the pinned requirements change.
$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

dev-deps: $(VENV)/.installed-dev

migrate: venv
	$(BIN)/python manage.py migrate --noinput

# Web app and Celery worker on the embedded PostgreSQL (var/postgres) and a filesystem broker; Ctrl-C
# stops all three. A DATABASE_URL in the environment is used instead of the embedded server.
run: venv
	@mkdir -p var
	@set -e; \
	if [ -z "$${DATABASE_URL:-}" ]; then \
	  DATABASE_URL=$$($(BIN)/python winnow/embedded_db.py start); export DATABASE_URL; started_db=1; \
	fi; \
	trap 'trap - INT TERM EXIT; kill $$(jobs -p) 2>/dev/null; wait; [ -n "$${started_db:-}" ] && $(BIN)/python winnow/embedded_db.py stop' INT TERM EXIT; \
	$(BIN)/python manage.py migrate --noinput; \
	$(BIN)/python manage.py seed_demo; \
	echo ""; \
	echo "Winnow is starting at http://$(HOST):$(PORT)/  (API docs: http://$(HOST):$(PORT)/api/docs/)"; \
	echo "Database: $$DATABASE_URL"; \
	echo "Press Ctrl-C to stop the web app, the worker and the embedded database."; \
	set +e; \
	WINNOW_TRAINING_QUEUE=$${WINNOW_TRAINING_QUEUE:-default} $(BIN)/celery -A winnow worker -P solo -Q default,gpu -l warning & \
	$(BIN)/python manage.py runserver $(HOST):$(PORT) --noreload & \
	wait -n

# Open psql on the embedded database of `make run`.
psql: venv
	$(BIN)/python winnow/embedded_db.py psql

# Redis when it is down (PostgreSQL: tests/run.sh uses the machine's or the embedded one); Chromium for browser tests.
services:
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
	@for i in $$(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; fi; }

test: dev-deps services chromium
	tests/run.sh $(PYTEST_ARGS)

lint: dev-deps
	$(BIN)/ruff check .

bench-ingest: dev-deps services
	$(BIN)/python benchmarks/ingest.py

bench-export: dev-deps services
	$(BIN)/python benchmarks/export.py

clean:
	rm -rf var test-artifacts .pytest_cache
