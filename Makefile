# newsradar: `make up` runs the demo, `make test` runs the whole test suite.
# Everything is installed by the project's own files into .venv and $NEWSRADAR_HOME/cache.

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up test install deps lint kafka-jars prism portable-env prometheus browser clean-venv

up: deps
	$(BIN)/newsradar up --demo

# The tests also run Prometheus, promtool and Alertmanager, and a headless Chromium (Debian
# packages, needs root), and the portable path's SDK worker pool from its own virtualenv.
test: deps prometheus browser portable-env
	$(BIN)/python -m pytest

# Python environment: the package (editable) with its test extras.
install: $(STAMP)
$(STAMP): setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# Everything a run needs besides Python: the Kafka jars and the Prism runner binary.
deps: install kafka-jars prism

kafka-jars:
	deploy/kafka/fetch-jars.sh

prism: install
	PATH="$(abspath $(BIN)):$$PATH" deploy/prism/build.sh

# The SDK worker pool's own virtualenv (newsradar from its sdist), cached by a hash of the
# sources; tests/pipelines/test_portable.py builds it too if missing (minutes, needs pip's index).
portable-env: install
	PYTHON=$(abspath $(BIN))/python deploy/portable/worker-env.sh

# Prometheus, promtool, Alertmanager, amtool from Debian's packages (root or sudo; idempotent).
prometheus:
	deploy/prometheus/install.sh

# Headless Chromium from Debian's packages: the backtest report is rendered in it.
browser:
	deploy/chromium/install.sh

lint: install
	$(BIN)/ruff check .

clean-venv:
	rm -rf $(VENV)
