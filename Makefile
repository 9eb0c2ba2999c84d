# Two commands on a fresh machine: `make run` and `make test`. Everything else is a convenience.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK := $(PY) -m trialsite.localstack --
PYTEST_ARGS ?=
# TEST_CLOCK=2026-11-01T05:55:00Z: the whole test session at that instant, ticking (trialsite/tests/clock.py)
TEST_CLOCK ?=

.PHONY: run test lint fmt migrations check-deploy bench clean shell manage

# Runtime pins (requirements.txt, all the production image installs) plus development/test pins. The venv is made
# when missing and installed into when the pins change: the stamp holds the sha256 of the requirement files it was
# installed from. Content, not file times: a fresh clone or a git worktree (whose .venv may be a symlink to a shared
# venv) has new file times and the same pins. An existing venv is never re-created, only installed into.
REQS_SHA = $(PYTHON) -c 'import hashlib; print(hashlib.sha256(open("requirements.txt", "rb").read() + b"\0" + open("requirements-dev.txt", "rb").read()).hexdigest())'
$(VENV)/.installed: FORCE
	@want="$$($(REQS_SHA))" && [ -n "$$want" ] || exit 1; \
	if [ -x $(PY) ] && [ "$$(cat $@ 2>/dev/null)" = "$$want" ]; then exit 0; fi; \
	set -e; \
	if [ ! -x $(PY) ]; then \
		echo "$(PYTHON) -m venv $(VENV)"; $(PYTHON) -m venv $(VENV); $(PY) -m pip install --quiet --upgrade pip; \
	fi; \
	echo "$(PY) -m pip install -r requirements.txt -r requirements-dev.txt (the pins changed)"; \
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt; \
	echo "$$want" > $@

.PHONY: FORCE
FORCE:

run: $(VENV)/.installed
	$(STACK) $(PY) -m trialsite.devrun

test: $(VENV)/.installed browser-deps pgbouncer-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(STACK) sh -c '$(PY) manage.py makemigrations --check --dry-run && $(if $(TEST_CLOCK),TRIALSITE_TEST_CLOCK=$(TEST_CLOCK) )$(PY) -m pytest $(PYTEST_ARGS)'

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

migrations: $(VENV)/.installed
	$(STACK) $(PY) manage.py makemigrations

shell: $(VENV)/.installed
	$(STACK) $(PY) manage.py shell

# `make manage ARGS="grant_role alice coordinator --site LDN"`: manage.py against the running `make run`'s
# embedded servers (.local/stack.json), or embedded servers started for the command when none runs.
manage: $(VENV)/.installed
	$(PY) manage.py $(ARGS)

bench: $(VENV)/.installed
	$(STACK) sh -c 'for b in bench/*.py; do $(PY) $$b || exit 1; done'

clean:
	rm -rf .local

# --- participant app (issue 10) ---------------------------------------------------------------------------
# Chromium for the browser tests: Debian's chromium + chromium-driver, installed when root and missing. When it
# cannot be had the browser tests fail saying so, unless SKIP_BROWSER=1 is set on purpose.
.PHONY: browser-deps vendor
browser-deps:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$SKIP_BROWSER" = "1" ]; then echo "SKIP_BROWSER=1: the browser tests will be skipped"; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
		apt-get install -y chromium chromium-driver || { apt-get update && apt-get install -y chromium chromium-driver; }; \
	else echo "Chromium is missing and cannot be installed here: run (as root) apt-get install -y chromium chromium-driver, or set SKIP_BROWSER=1"; fi

# PgBouncer for the transaction-pooling test (analytics/tests/test_pgbouncer.py): Debian's, installed when root and
# missing; otherwise that test fails saying so, unless SKIP_PGBOUNCER=1 is set on purpose.
.PHONY: pgbouncer-deps
pgbouncer-deps:
	@if command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ]; then :; \
	elif [ "$$SKIP_PGBOUNCER" = "1" ]; then echo "SKIP_PGBOUNCER=1: the PgBouncer test will be skipped"; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
		apt-get install -y pgbouncer || { apt-get update && apt-get install -y pgbouncer; }; \
	else echo "PgBouncer is missing and cannot be installed here: run (as root) apt-get install -y pgbouncer, or set SKIP_PGBOUNCER=1"; fi

# Refresh the app's vendored browser libraries from the npm registry (needs node/npm; nothing else does).
vendor:
	$(PYTHON) scripts/vendor_app.py
