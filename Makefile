# The portal's two commands: `make run` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp
POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: run test test-postgres bench lint lock messages system-packages compiled-messages clean

run: system-packages $(STAMP)-runtime node_modules/.stamp compiled-messages
	DEBUG=true $(PY) manage.py migrate --no-input
	DEBUG=true $(PY) manage.py seed_demo
	DEBUG=true $(PY) manage.py run_portal

test: system-packages $(STAMP)-dev node_modules/.stamp compiled-messages
	$(PY) -m ruff check .
	$(PY) -m pytest -n 2

# The same suite on PostgreSQL (the CI's second pass).
test-postgres: system-packages $(STAMP)-dev node_modules/.stamp compiled-messages
	DATABASE_URL=$(POSTGRES_URL) $(PY) -m pytest -n 2

# Every benchmark of bench/README.md, one summary table against the floors; writes bench/results/.
bench: system-packages $(STAMP)-dev compiled-messages
	$(PY) -m bench

lint: $(STAMP)-dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Refresh the translation catalogues after changing user-visible text.
messages: $(STAMP)-dev
	DEBUG=true $(PY) manage.py makemessages -l da -l en --no-obsolete --no-location \
		--ignore '.venv/*' --ignore 'node_modules/*' --ignore 'tests/*'

system-packages:
	@scripts/system-packages.sh

$(STAMP)-runtime: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "Python 3.11 or newer is needed (found $$($(PYTHON) --version))."; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.txt
	touch $@

$(STAMP)-dev: requirements-dev.txt $(STAMP)-runtime
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.txt
	touch $@

# After changing requirements.in or requirements-dev.in: every package, the ones they pull in
# too, pinned with the hashes PyPI publishes. This machine's own pip settings (local mirrors,
# a wheel folder) are set aside, so the locks hold what any machine downloads.
LOCK := env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL PIP_CONFIG_FILE=/dev/null \
	$(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--index-url https://pypi.org/simple --no-emit-index-url
lock: $(STAMP)-dev
	$(LOCK) --output-file requirements.txt requirements.in
	$(LOCK) --output-file requirements-dev.txt requirements-dev.in

node_modules/.stamp: package.json package-lock.json
	@command -v npm >/dev/null || { echo "Node.js 18+ with npm is needed."; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# .mo files are built, not committed.
compiled-messages: $(STAMP)-runtime
	DEBUG=true $(PY) manage.py compilemessages --ignore '.venv/*' --ignore 'node_modules/*' -v0

clean:
	rm -rf $(VENV) node_modules staticfiles .pytest_cache .ruff_cache
