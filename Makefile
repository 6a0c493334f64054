# Two commands do all the set-up on a fresh clone: `make demo` and `make test`.
# Everything is installed into .venv/ at the repository root.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_DIR := $(VENV)/node
AZURITE := $(NODE_DIR)/node_modules/.bin/azurite
CHECKOV_VENV := $(VENV)/checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
AZURITE_VERSION := 3.35.0
CHECKOV_VERSION := 3.3.30

.PHONY: demo test lint typecheck unit venv clean bench browser azurite postgres

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet -e '.[cli,dev]'
	touch $(STAMP)

azurite: $(AZURITE)

$(AZURITE):
	mkdir -p $(NODE_DIR)
	cd $(NODE_DIR) && npm install --no-audit --no-fund --silent azurite@$(AZURITE_VERSION)

# checkov pins an older Bicep parser than our tests use, so it lives in its own venv.
$(CHECKOV): | $(STAMP)
	$(PY) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet checkov==$(CHECKOV_VERSION)

demo: $(STAMP)
	$(VENV)/bin/connector demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# The HTML report tests drive Debian's Chromium (screenshots; Playwright, pinned in the dev
# extras, launches /usr/bin/chromium: no browser download), and the README walkthrough test
# runs under zsh as well as bash; install both where we can (root).
browser:
	@{ command -v chromium && command -v zsh; } >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium zsh >/dev/null) || echo "chromium or zsh missing: run 'sudo apt-get install chromium zsh' (the report screenshot and README walkthrough tests will fail until then)"; }

# The sql-source tests start a throwaway PostgreSQL server from Debian's server binaries.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) || echo "postgresql missing: run 'sudo apt-get install postgresql' (the sql-source tests will fail until then)"; }

unit: $(STAMP) $(AZURITE) $(CHECKOV) browser postgres
	AZURITE_BIN=$(abspath $(AZURITE)) CHECKOV_BIN=$(abspath $(CHECKOV)) $(PY) -m pytest -q

test: lint typecheck unit

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
