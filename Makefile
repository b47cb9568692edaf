# Everything the project needs is installed from here: a virtual environment from PyPI, Apache Kafka's
# jars from Maven Central (Java 17 and Maven from Debian when missing and we are root), and the Debian
# tools the tests use (kcat, chromium, promtool, amtool, docker-compose, kubectl, wrk).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KAFKA_POM := devstack/kafka/pom.xml
KAFKA_LIBS := .kafka/libs
KAFKA_STAMP := $(KAFKA_LIBS)/.copied
APT_INSTALL := apt-get install -y -qq --no-install-recommends

.PHONY: run stop demo test test-unit test-slow bench-baseline bench-intake bench-pipeline bench-sla bench-stats lint \
	system-deps java kafka clean apidocs lock

# Every package at the version and with the hashes of requirements/dev.lock (transitive ones too); the project
# itself after, without resolving anything again. `make lock` refreshes the locks after pyproject.toml changes.
$(STAMP): pyproject.toml requirements/dev.lock
	@echo "==> Python environment in $(VENV) from requirements/dev.lock (the first time takes a minute or two)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements/dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

LOCK_VENV := build/lock-venv
LOCK := $(LOCK_VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
	--no-emit-find-links
lock:
	test -x $(LOCK_VENV)/bin/pip-compile || ($(PYTHON) -m venv $(LOCK_VENV) && $(LOCK_VENV)/bin/pip install --quiet pip-tools==7.7.0)
	$(LOCK) --output-file requirements/service.lock pyproject.toml
	$(LOCK) --extra embedded --extra dev --output-file requirements/dev.lock pyproject.toml

# Apache Kafka 4.x runs on Java 17 or newer; Maven fetches its jars.
java:
	@missing=""; \
	if ! java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])'; then missing="$$missing openjdk-17-jre-headless"; fi; \
	command -v mvn >/dev/null 2>&1 || missing="$$missing maven"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && $(APT_INSTALL) $$missing; \
	  else echo "Apache Kafka needs Java 17 or newer and Maven: install them (Debian: sudo apt-get install$$missing)," \
	    "or set JAVA_HOME to a Java 17" >&2; exit 1; fi; fi

# The broker's jars, copied once from Maven's repository (fetched there from Maven Central the first time).
$(KAFKA_STAMP): $(KAFKA_POM)
	@echo "==> Apache Kafka's jars from Maven Central into $(KAFKA_LIBS) (the first time takes a minute)"
	$(MAKE) --no-print-directory java
	rm -rf $(KAFKA_LIBS)
	mvn --batch-mode --quiet -Dstyle.color=never -f $(KAFKA_POM) dependency:copy-dependencies -DincludeScope=runtime \
		-DoutputDirectory=$(CURDIR)/$(KAFKA_LIBS)
	touch $(KAFKA_STAMP)

kafka: $(KAFKA_STAMP)

# kcat reads department topics in the tests; chromium loads the stats dashboard headless and the web
# pages under Playwright (fonts-wqy-microhei lets it draw their Chinese);
# promtool (package prometheus) checks the alert rules, amtool (prometheus-alertmanager) Alertmanager's configuration;
# docker-compose validates the compose file;
# kubectl (kubernetes-client) renders the kustomize manifests; wrk is the benchmarks' HTTP load.
system-deps:
	@missing=""; \
	command -v kcat >/dev/null 2>&1 || missing="$$missing kcat"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing="$$missing fonts-wqy-microhei"; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v amtool >/dev/null 2>&1 || missing="$$missing prometheus-alertmanager"; \
	command -v docker-compose >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	command -v kubectl >/dev/null 2>&1 || missing="$$missing kubernetes-client"; \
	command -v wrk >/dev/null 2>&1 || missing="$$missing wrk"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && $(APT_INSTALL) $$missing; \
	  else echo "missing Debian packages:$$missing" >&2; exit 1; fi; fi

run: $(STAMP) $(KAFKA_STAMP)
	$(BIN)/python -m devstack run

# Stops a stack started in the background (`make run > run.log 2>&1 &`) and anything it left.
stop: $(STAMP)
	$(BIN)/python -m devstack stop

demo: $(STAMP)
	$(BIN)/python -m devstack demo

test: $(STAMP) $(KAFKA_STAMP) system-deps
	$(BIN)/python -m pytest

# The pure rules, the contract and the handlers on FastStream's in-memory broker: seconds, no server.
test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

test-slow: $(STAMP) $(KAFKA_STAMP) system-deps
	$(BIN)/python -m pytest -m slow

bench-baseline: $(STAMP) $(KAFKA_STAMP) system-deps
	$(BIN)/python -m bench.baseline

bench-intake: $(STAMP) $(KAFKA_STAMP) system-deps
	$(BIN)/python -m bench.intake

bench-pipeline: $(STAMP) $(KAFKA_STAMP) system-deps
	$(BIN)/python -m bench.pipeline

bench-sla: $(STAMP) $(KAFKA_STAMP)
	$(BIN)/python -m bench.sla

bench-stats: $(STAMP)
	$(BIN)/python -m bench.stats

apidocs: $(STAMP)
	$(BIN)/python -m devstack apidocs

# Style, formatting and types; CI runs it before the tests.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .data .kafka
