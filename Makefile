# The two quick-start commands (README.md): `make bench` and `make test`.
PYTHON ?= python3

.PHONY: bench test setup setup-system setup-python lint typecheck pytest

## Set up a fresh machine and run the main job: the backend comparison on embedded defaults.
bench: setup
	$(PYTHON) -m swapio bench

## Set up everything the tests need (system packages included) and run the whole suite.
test: setup lint typecheck pytest

setup: setup-system setup-python

setup-system:
	./scripts/setup-system.sh

setup-python:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[test,plot]'

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

typecheck:
	$(PYTHON) -m mypy --strict swapio plugins

pytest:
	$(PYTHON) -m pytest -q
