# Everything the project needs is installed from here: a virtual environment from PyPI,
# and the few Debian tools the tests use (kcat) when they are missing and we are root.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo test test-slow bench-sla lint system-deps clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[embedded,dev]'
	touch $(STAMP)

system-deps:
	@command -v kcat >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq kcat; \
	  else echo "kcat is missing: install Debian's kcat package" >&2; exit 1; fi; }

run: $(STAMP)
	$(BIN)/python -m devstack run

demo: $(STAMP)
	$(BIN)/python -m devstack demo

test: $(STAMP) system-deps
	$(BIN)/python -m pytest

test-slow: $(STAMP) system-deps
	$(BIN)/python -m pytest -m slow

bench-sla: $(STAMP)
	$(BIN)/python -m bench.sla

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .data
