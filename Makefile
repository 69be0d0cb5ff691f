# One entry point for every check: `make test` = install + lint + types + the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install engine images browser run test check lint bench clean

$(STAMP): pyproject.toml clients/python/pyproject.toml
	test -x $(BIN)/python || { scripts/ensure-python.sh $(PYTHON) && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e 'clients/python[mcp]' -e '.[dev]'
	touch $@

engine:
	scripts/ensure-docker.sh

images: $(STAMP) engine
	$(BIN)/codebeaker images build

# Debian's chromium, for the playground's browser test (tests/integration/test_playground.py).
browser:
	scripts/ensure-browser.sh

install: $(STAMP) engine images browser

run: install
	$(BIN)/codebeaker serve --host 127.0.0.1 --port 5000

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy codebeaker clients/python/codebeaker_client tests benchmarks

test: install lint
	$(BIN)/pytest tests/unit
	$(BIN)/pytest tests/integration

check: test

bench: install
	$(BIN)/pip install --quiet -e 'clients/python[mcp]' -e '.[dev,bench]' || echo "bench: llm-sandbox did not install; its row is skipped"
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
