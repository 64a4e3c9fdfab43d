# Parley: `make run` starts the whole platform, `make test` runs the test suite.
# Both create .venv/ and install what they need first.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint format services-up services-down bench clean-var

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

run: $(STAMP)
	$(PY) manage.py runplatform

test: $(STAMP)
	sh scripts/ensure-browser.sh
	$(PY) manage.py services exec -- $(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

services-up: $(STAMP)
	$(PY) manage.py services up

services-down: $(STAMP)
	$(PY) manage.py services down

clean-var: services-down
	rm -rf var/
