# campaign-sync: `make demo` runs the sample campaign end to end; `make test` runs every check.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
DEMO_ROWS ?= 100000
DEMO_CAMPAIGN ?= lifecycle_winback

# A project-local Airflow: its own home, this repository's dags and plugins, no examples.
export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__UNIT_TEST_MODE := False
export CAMPAIGN_SYNC_STAGING_ROOT ?= $(AIRFLOW_HOME)/campaign_sync/staging
export CAMPAIGN_SYNC_OUTPUT_ROOT ?= $(AIRFLOW_HOME)/campaign_sync/outputs
DEMO_DB := $(AIRFLOW_HOME)/data/merged_customers.duckdb

.PHONY: help install test-servers demo ui cluster test lint format schema lock clean bench

help:
	@echo "make demo    install, then run the sample campaign end to end (no cloud account)"
	@echo "make test    install, lint, run the whole test suite (starts its own test servers)"
	@echo "make ui      the Airflow UI on this project (airflow standalone, after make demo;"
	@echo "            port: AIRFLOW__API__PORT, default 8080)"
	@echo "make cluster a distributed Airflow: CeleryExecutor, two workers, Redis, Postgres,"
	@echo "            staging on a local S3 server (needs make test-servers; Ctrl-C stops all)"
	@echo "make lint    ruff check and format check"
	@echo "make schema  regenerate include/campaign.schema.json"
	@echo "make lock    re-pin requirements*.txt from requirements*.in"
	@echo "make bench   measure parse, build/project, API export; writes BENCHMARKS.md"

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 \
		|| $(PYTHON) -m pip install --quiet uv
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	$(UV) pip install --quiet --python $(BIN)/python -r requirements.txt -r requirements-dev.txt
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

# The test suite's servers: Azurite from npm (package.json); OpenSSH's sshd, Redis and Postgres
# from Debian's openssh-server, redis-server and postgresql (as root; CI runs as root). moto and
# gcp-storage-emulator come with requirements-dev.txt. The tests start and stop the servers
# themselves (Postgres as the system user campaign_sync_pg, see scripts/cluster.py). The browser
# check drives Debian's chromium with Playwright (never Playwright's own browser download).
test-servers: node_modules/.installed /usr/sbin/sshd /usr/bin/redis-server /usr/share/postgresql-common \
	/usr/bin/chromium

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

/usr/sbin/sshd:
	@if [ "$$(id -u)" != 0 ]; then \
		echo "the SFTP tests need OpenSSH's sshd: install openssh-server as root"; exit 1; fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		openssh-server > /dev/null

/usr/bin/chromium:
	@if [ "$$(id -u)" != 0 ]; then \
		echo "the browser check needs Debian's chromium: install it as root"; exit 1; fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		chromium > /dev/null

/usr/bin/redis-server /usr/share/postgresql-common:
	@if [ "$$(id -u)" != 0 ]; then \
		echo "the Celery and Postgres tests need redis-server and postgresql: install them as root"; \
		exit 1; fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		redis-server postgresql > /dev/null

demo: install
	@mkdir -p $(AIRFLOW_HOME)/data
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 \
		|| { cat $(AIRFLOW_HOME)/db-migrate.log; exit 1; }
	$(BIN)/campaign-sync sample-data $(DEMO_DB) --rows $(DEMO_ROWS)
	$(BIN)/campaign-sync validate
	@$(BIN)/airflow connections delete campaign_sync_sample > /dev/null 2>&1 || true
	$(BIN)/airflow connections add campaign_sync_sample --conn-type duckdb \
		--conn-host $(DEMO_DB) > /dev/null
	@# Local S3 (moto) and SFTP servers for the sample's s3/sftp destinations, for this run only.
	$(BIN)/python scripts/demo_servers.py --log $(AIRFLOW_HOME)/demo-run.log -- \
		$(BIN)/airflow dags test $(DEMO_CAMPAIGN) \
		|| { grep -E -B2 -A25 "Traceback|ERROR|error   " $(AIRFLOW_HOME)/demo-run.log | cut -c1-300 | tail -n 60; exit 1; }
	@echo
	$(BIN)/campaign-sync summary --latest $(DEMO_CAMPAIGN)
	@echo
	@echo "Run log:       $(AIRFLOW_HOME)/demo-run.log"
	@echo "Review files:  $(CAMPAIGN_SYNC_OUTPUT_ROOT)/review/"
	@echo "Dry-run files: $(CAMPAIGN_SYNC_OUTPUT_ROOT)/dry_run/"
	@echo "S3 files:      $(AIRFLOW_HOME)/demo_servers/s3/ (copied from the demo S3 server)"
	@echo "SFTP files:    $(AIRFLOW_HOME)/demo_servers/sftp/"

# airflow standalone under a launcher: this venv's bin first on PATH (standalone starts its
# components by the bare name `airflow`), the port from AIRFLOW__API__PORT (default 8080), and
# on Ctrl-C or SIGTERM every component, LocalExecutor workers and the demo servers stop.
ui: install
	@mkdir -p $(AIRFLOW_HOME)
	@# The pools the campaigns' platform exports run in (one per connection), before the scheduler.
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 \
		|| { cat $(AIRFLOW_HOME)/db-migrate.log; exit 1; }
	$(BIN)/campaign-sync pools
	$(BIN)/python scripts/airflow_ui.py

# CeleryExecutor with two workers, Redis, Postgres (metadata and a warehouse holding the sample
# customers, which campaign_sync_sample points at) and S3 staging; see scripts/cluster.py.
CLUSTER_ROWS ?= 20000
cluster: install test-servers
	$(BIN)/python scripts/cluster.py --log-dir $(AIRFLOW_HOME)/cluster-logs --sample-rows $(CLUSTER_ROWS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: install test-servers lint
	$(BIN)/campaign-sync schema --check
	$(BIN)/python -m pytest -q --durations=30

schema: install
	$(BIN)/campaign-sync schema

lock:
	$(UV) pip compile --quiet -p $(PYTHON) requirements.in -o requirements.txt
	$(UV) pip compile --quiet -p $(PYTHON) requirements-dev.in -o requirements-dev.txt

# Benchmarks (benchmarks/run.py): dag-factory 1.1.0 gets its own venv next to the data, in the
# git-ignored .bench folder. BENCH_ARGS passes options (e.g. --rows 1000000 --skip export).
# The end-to-end stage runs Azurite from node_modules (npm ci) and, as root, OpenSSH's sshd.
BENCH_DIR := $(CURDIR)/.bench
# --before: the parse and the 1M tasks also measured on an older revision, in the same run.
BENCH_ARGS ?= --before $(BENCH_BEFORE) --parse-direct 5000
BENCH_BEFORE ?= 02a77ca

$(BENCH_DIR)/df/.installed: requirements.txt
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(BENCH_DIR)/df
	$(UV) pip install --quiet --python $(BENCH_DIR)/df/bin/python -r requirements.txt \
		dag-factory==1.1.0
	@touch $@

bench: install $(BENCH_DIR)/df/.installed node_modules/.installed
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(AIRFLOW_HOME) .pytest_cache .ruff_cache node_modules
