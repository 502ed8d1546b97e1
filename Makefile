# Every target bootstraps what it needs: a pinned uv in .tools/, then the locked
# virtual environment in .venv/. Safe to run twice.
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)

.PHONY: all demo demo-ui test lint typecheck unit chromium bench docs clean

all: test

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

venv: $(VENV)/.synced

# The demo: 1,000 AWS Batch jobs of about 30 s each on a local Batch emulator, with
# live progress and a summary. State and logs go to ./.airloop (or $AIRLOOP_HOME).
demo: $(VENV)/.synced
	$(VENV)/bin/python examples/batch_demo.py --jobs 1000 --job-seconds 30

# The same demo watched in the web UI: airloop standalone (scheduler + UI) over the demo
# DAG; open http://127.0.0.1:8080/dags/batch_fanout/grid. State in ./.airloop-ui.
demo-ui: $(VENV)/.synced
	$(VENV)/bin/python examples/batch_demo_ui.py --jobs 1000 --job-seconds 30

lint: $(VENV)/.synced
	$(VENV)/bin/ruff check src tests examples benchmarks
	$(VENV)/bin/ruff format --check src tests examples benchmarks
	$(VENV)/bin/lint-imports

typecheck: $(VENV)/.synced
	$(VENV)/bin/mypy

# The engine suite runs a second time without the async executor (tasks that name
# none run on the thread executor), so a behaviour that differs there fails the
# build; test_run_basics checks the pass really ran on that executor. The executor
# behaviour suite (tests/executors) already runs every test on all four executors.
#
# Most tests wait on I/O (subprocesses, servers, sleeps), so they run in TEST_WORKERS
# pytest-xdist workers, a module's tests on one worker (module fixtures are shared).
# The browser tests (tests/ui) run in processes of their own: Playwright's sync API
# keeps an event loop on the main thread, which the asyncio tests cannot share. The
# several-schedulers suite (tests/ha) runs alone at the end: its leases expire on the
# clock, and a loaded machine delays renewals.
TEST_WORKERS ?= 4
unit: $(VENV)/.synced chromium
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile --ignore=tests/ha --ignore=tests/ui
	$(VENV)/bin/pytest -n 2 --dist loadfile tests/ui
	$(VENV)/bin/pytest tests/ha
	AIRLOOP_USE_ASYNC=false AIRLOOP_TEST_DEFAULT_EXECUTOR=thread \
		$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadfile tests/engine

test: lint typecheck unit

# The browser tests (tests/ui) drive Debian's chromium; install it when missing (as
# root, or with password-less sudo). If that fails they skip, and fail under CI=true.
CHROMIUM ?= /usr/bin/chromium
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
chromium:
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		$(APT_INSTALL) || (apt-get update && $(APT_INSTALL)) \
		|| echo "could not install chromium: browser tests skip (fail under CI)"; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then \
		sudo -n sh -c '$(APT_INSTALL) || (apt-get update && $(APT_INSTALL))' \
		|| echo "could not install chromium: browser tests skip (fail under CI)"; \
	else echo "chromium missing and not root: browser tests skip (fail under CI)"; fi

bench: $(VENV)/.synced
	$(VENV)/bin/python benchmarks/throughput.py --tasks 10000

# The settings table in docs/configuration.md, from the settings model itself.
docs: $(VENV)/.synced
	$(VENV)/bin/python -m airloop.settings docs/configuration.md

clean:
	rm -rf .tools $(VENV) .pytest_cache .mypy_cache .ruff_cache
