# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= config.toml
SAMPLE_SUBSCRIBER ?= reader@example.org
PYTEST_ARGS ?=
TEST_WORKERS ?= 3
# Every package the project and its tests install, each at one version with its hashes.
# Written by uv from the ranges in pyproject.toml (`make lock`, `make upgrade`); installed by pip.
LOCK := requirements.lock
PIP_VERSION := 26.3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
UV_COMPILE := $(UV) pip compile pyproject.toml --extra test --universal --generate-hashes \
	--python-version 3.11 --quiet --output-file $(LOCK)

.PHONY: run test test-fast venv lock upgrade clean messages

# The virtualenv holds exactly what the lock says (hash-checked), then the project itself;
# it is rebuilt when pyproject.toml or the lock changes.  `pip check` fails when the lock
# no longer satisfies pyproject.toml (a range changed without `make lock`).
$(VENV)/.installed: pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet pip==$(PIP_VERSION)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	touch $@

venv: $(VENV)/.installed

## Start the daemon on the sample config, with one sample subscriber (cadence instant).
run: venv
	$(BIN)/publisher --config $(CONFIG) subscribers add $(SAMPLE_SUBSCRIBER) --name "Sample Reader" --cadence instant
	@echo "publisher: pages on the [site] url of $(CONFIG); to type 'publisher' in a shell: . $(BIN)/activate"
	$(BIN)/publisher --config $(CONFIG) run

## Run the whole test suite. Store tests run on SQLite and on PostgreSQL (a local server by default;
## PUBLISHER_TEST_POSTGRES_URL=postgresql://… names another, =off skips them: see tests/support/databases.py).
## The tests run on TEST_WORKERS processes (pytest-xdist; most of them wait on I/O, so more workers than
## cores pay); TEST_WORKERS=0 runs them in this one process.  loadgroup keeps an xdist_group on one worker.
test: venv
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

## The suite without the tests marked slow (subprocesses, the daemon, the wheel, the browser).
test-fast: venv
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "not slow" $(PYTEST_ARGS)

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet uv==$(UV_VERSION)

## Write the lock again after a change to pyproject.toml's dependencies (keeps every pin that still fits).
lock: $(UV)
	$(UV_COMPILE)

## Move every package to the newest version pyproject.toml allows, reinstall, and run the tests:
## upgrades happen on purpose, in one commit of requirements.lock that the tests passed with.
upgrade: $(UV)
	$(UV_COMPILE) --upgrade
	$(MAKE) test

clean:
	rm -rf var

## Extract the readers' strings (babel.cfg) into publisher/locale/messages.pot and merge them into every
## language's catalog: a new string shows up there untranslated, a changed one marked fuzzy, for a
## translator to fill in (tests/unit/test_i18n.py fails until every catalog is complete).
messages: venv
	$(BIN)/pybabel extract --mapping-file babel.cfg --keywords N_ --add-comments TRANSLATORS: --no-location \
		--sort-output --project publisher --copyright-holder "publisher" --msgid-bugs-address "" \
		--output-file publisher/locale/messages.pot .
	$(BIN)/pybabel update --input-file publisher/locale/messages.pot --output-dir publisher/locale \
		--domain messages --ignore-obsolete --ignore-pot-creation-date
