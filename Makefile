# Two commands matter: `make run` (Airflow with the sandbox) and `make test`. Everything installs itself.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test test-unit repeat lint docs bench reliability format wheel clean

install: $(STAMP)

# Re-installs only when a requirements file changed, so repeated `make test` runs start at once. uv (its
# pin in requirements-dev.txt) installs the pinned sets in seconds from its package cache (~/.cache/uv, shared
# with the wheel-deploy tests' fresh Airflow installs); pip only bootstraps uv into the new venv.
# Bytecode is compiled at install (compileall over site-packages): where PYTHONDONTWRITEBYTECODE is set (many
# CI images, and this project's machines) Python never caches it, and every Airflow process would compile
# Airflow from source again: 3.5 s instead of 1.6 s per `import airflow.sdk` (measured), and the DAG files'
# parse time with it. The Makefile is a prerequisite so that a venv installed before this gets it too.
UV := $(BIN)/uv
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (the HTTP provider 6.3.0 requires it); set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$$(grep -E '^uv==' requirements-dev.txt | cut -d' ' -f1)"
	$(UV) pip install --quiet --python $(BIN)/python -r requirements.txt -r requirements-dev.txt
	# This project itself, editable (the package under plugins/, registered as an Airflow provider).
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	# setuptools leaves plugins/*.egg-info behind; on the plugins folder's path it is a second copy of the
	# package's metadata, and Airflow would register the UI plugin twice (an import error on every page).
	rm -rf plugins/*.egg-info
	$(BIN)/python -m compileall -qq -j 0 "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
	@touch $(STAMP)

# This checkout's own modules, compiled for the same reason (py_compile writes whatever
# PYTHONDONTWRITEBYTECODE says; a file changed since is recompiled, the rest is an mtime check).
BYTECODE = $(BIN)/python -m compileall -q -j 0 plugins dags dev tests scripts > /dev/null

run: install
	@$(BYTECODE)
	@PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python scripts/run_sandbox.py

# PostgreSQL, Redis and Chromium are found or provided by scripts/services.py (see the README's "Tests"),
# and whatever it starts it stops; PROVISION=none starts and installs nothing (their tests then skip).
PROVISION ?= all
TEST_WORKERS ?= 4
test: install
	@$(BYTECODE)
	KANDJI_OOMNITZA_PROVISION=$(PROVISION) $(BIN)/python scripts/services.py -- \
		$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --durations=25

# The unit tests alone (no emulator, no DAG run): well under a minute.
test-unit: install
	@$(BYTECODE)
	$(BIN)/python -m pytest -q tests/unit

# The same tests REPEAT times in a row, each a fresh session, stopping at the first failure (flake hunting).
REPEAT ?= 10
TESTS ?= tests/e2e/ui/test_browser.py
repeat: install
	@$(BYTECODE)
	KANDJI_OOMNITZA_PROVISION=$(PROVISION) $(BIN)/python scripts/services.py -- \
		$(BIN)/python scripts/repeat_tests.py $(REPEAT) $(TESTS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff check --select C901 plugins/
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python scripts/settings_reference.py --check
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# The documentation site (docs/, mkdocs.yml), rebuilt as pages change; DOCS_ADDRESS=host:port.
DOCS_ADDRESS ?= 127.0.0.1:8000
docs: install
	$(BIN)/python scripts/settings_reference.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr $(DOCS_ADDRESS)

# The fault-injection suite over the real DAGs, then its table (faults, calls retried, loaded, reported, lost).
reliability: install
	@$(BYTECODE)
	$(BIN)/python -m pytest -q tests/e2e/integrations/test_reliability.py
	$(BIN)/python scripts/reliability_report.py

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# SCENARIOS=quick|default|large or a comma list of scenario names; LATENCY_MS=50;
# BENCH_MODE=executor|in-process; PROFILE=py-spy|memray (see scripts/bench.py).
bench: install
	@$(BYTECODE)
	$(BIN)/python scripts/bench.py

# The sdist and wheel a deployment installs (docs/deploy.md), into dist/.
wheel: install
	$(BIN)/python scripts/build_wheel.py dist

clean:
	rm -rf $(VENV) .airflow .airflow_test_home artifacts bench-results dist build site plugins/*.egg-info
