# Everything the project needs is installed from here: a virtual environment from PyPI,
# and the Debian tools the tests use (kcat, chromium, promtool, docker-compose) when they are
# missing and we are root.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo test test-slow bench-baseline bench-intake bench-pipeline bench-sla bench-stats lint system-deps \
	clean apidocs

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[embedded,dev]'
	touch $(STAMP)

# kcat reads department topics in the tests; chromium loads the stats dashboard headless;
# promtool (package prometheus) checks the alert rules; docker-compose validates the compose file;
# kubectl (kubernetes-client) renders the kustomize manifests; wrk is the benchmarks' HTTP load.
system-deps:
	@missing=""; \
	command -v kcat >/dev/null 2>&1 || missing="$$missing kcat"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v docker-compose >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	command -v kubectl >/dev/null 2>&1 || missing="$$missing kubernetes-client"; \
	command -v wrk >/dev/null 2>&1 || missing="$$missing wrk"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $$missing; \
	  else echo "missing Debian packages:$$missing" >&2; exit 1; fi; fi

run: $(STAMP)
	$(BIN)/python -m devstack run

demo: $(STAMP)
	$(BIN)/python -m devstack demo

test: $(STAMP) system-deps
	$(BIN)/python -m pytest

test-slow: $(STAMP) system-deps
	$(BIN)/python -m pytest -m slow

bench-baseline: $(STAMP) system-deps
	$(BIN)/python -m bench.baseline

bench-intake: $(STAMP) system-deps
	$(BIN)/python -m bench.intake

bench-pipeline: $(STAMP) system-deps
	$(BIN)/python -m bench.pipeline

bench-sla: $(STAMP)
	$(BIN)/python -m bench.sla

bench-stats: $(STAMP)
	$(BIN)/python -m bench.stats

apidocs: $(STAMP)
	$(BIN)/python -m devstack apidocs

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .data
