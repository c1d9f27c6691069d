# BoatLoad: `make run` starts the API and a local satellite; `make test` runs the whole suite.
# Both set up what they need on a fresh Debian machine and are safe to run twice.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test venv lint bench

$(VENV)/.installed: requirements.txt
	@command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3 python3-venv; }
	@[ -x $(PY) ] || python3 -m venv $(VENV) || { apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv $(VENV); }
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	@touch $@

venv: $(VENV)/.installed

run: venv
	@bash docker/ensure-engine.sh
	@mkdir -p var && [ -s var/secret_key ] || $(PY) -c 'import secrets; print(secrets.token_urlsafe(50))' > var/secret_key
	BOATLOAD_SECRET_KEY_FILE=$${BOATLOAD_SECRET_KEY_FILE:-var/secret_key} \
	  $(PY) manage.py runlocal

test: venv
	@bash tests/services.sh
	DATABASE_URL=$${TEST_DATABASE_URL:-postgres://boatload:boatload@127.0.0.1:5432/boatload} \
	BOATLOAD_SECRET_KEY=test-secret-key-not-for-production \
	  $(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check . 2>/dev/null || $(PY) -m pip install -q ruff && $(VENV)/bin/ruff check .

bench: venv
	@bash tests/services.sh
	$(PY) -m bench.satellite
	$(PY) -m bench.api
	$(PY) -m bench.scale
	$(PY) -m bench.streams
	$(PY) -m bench.archive
	$(PY) -m bench.observability
	$(PY) -m bench.fleet
	$(PY) -m bench.concurrency
