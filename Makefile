# The two quick-start commands (README.md): `make bench` and `make test`.
PYTHON ?= python3

.PHONY: bench test test-deep setup setup-system setup-python lint typecheck pytest man install-man

## Set up a fresh machine and run the main job: the backend comparison on embedded defaults.
bench: setup
	$(PYTHON) -m swapio bench

## Set up everything the tests need (system packages included) and run the whole suite.
test: setup lint typecheck pytest

setup: setup-system setup-python install-man

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

## The whole suite including the deep (slow-marked) variants.
test-deep: setup lint typecheck
	$(PYTHON) -m pytest -q -m 'slow or not slow'

## Regenerate the manual pages shipped in swapio/man/ after a verb's help changed
## (tests/cli/test_man.py fails until they match the commands).
man:
	rm -f swapio/man/*.1
	$(PYTHON) -m swapio man --install swapio/man >/dev/null

MANDIR ?= /usr/local/share/man/man1

## Install the manual pages, rendered from the installed commands (plugin verbs included).
install-man:
	@$(PYTHON) -m swapio man --install $(MANDIR) >/dev/null \
		|| echo "install-man: could not write $(MANDIR); run as root or set MANDIR=..." >&2
	-mandb -q 2>/dev/null
