# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= config.toml
SAMPLE_SUBSCRIBER ?= reader@example.org
PYTEST_ARGS ?=

.PHONY: run test venv clean

# The virtualenv is rebuilt when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

## Start the daemon on the sample config, with one sample subscriber (cadence instant).
run: venv
	$(BIN)/publisher --config $(CONFIG) subscribers add $(SAMPLE_SUBSCRIBER) --name "Sample Reader" --cadence instant
	@echo "publisher: pages on the [site] url of $(CONFIG); to type 'publisher' in a shell: . $(BIN)/activate"
	$(BIN)/publisher --config $(CONFIG) run

## Run the whole test suite. Store tests run on SQLite and on PostgreSQL (a local server by default;
## PUBLISHER_TEST_POSTGRES_URL=postgresql://… names another, =off skips them: see tests/databases.py).
test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf var
