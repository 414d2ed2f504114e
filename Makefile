# Rebalance: the two commands a newcomer needs are `make demo` and `make test`.
# Everything runs from ./.venv; local state (embedded warehouse, Airflow home, demo files)
# lives under ./.rebalance. No docker, no system service.

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed-stamp

export REBALANCE_HOME ?= $(CURDIR)/.rebalance
export AIRFLOW_HOME ?= $(REBALANCE_HOME)/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export GX_ANALYTICS_ENABLED := False
export PYTHONWARNINGS ?= ignore::DeprecationWarning

DEMO_LANDING := $(REBALANCE_HOME)/demo-landing
DEMO_DATES := 2014-01-02 2014-01-03
DEMO_LATEST := 2014-01-06

.PHONY: venv demo test test-fast bench lint ui constraints clean stop docs docs-gen

$(STAMP): pyproject.toml requirements/constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Rebalance needs Python 3.11 or newer (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e ".[airflow,celery,dev,docs]"
	@touch $(STAMP)

venv: $(STAMP)

## demo: sample landing folder -> embedded warehouse -> nightly DAG through Airflow -> ops view
demo: venv
	@mkdir -p $(REBALANCE_HOME)
	@rm -rf $(DEMO_LANDING)
	@echo "== sample landing folder: 36 funds, 3 trading days, in $(DEMO_LANDING)"
	@$(BIN)/rebalance sample --out $(DEMO_LANDING) --start 2014-01-02 --days 3 --funds 36 --holdings 12 --models 3
	@$(BIN)/rebalance warehouse migrate
	@for d in $(DEMO_DATES); do $(BIN)/rebalance run --date $$d --landing $(DEMO_LANDING) --quiet || exit 1; done
	@echo "== Airflow metadata database in $(AIRFLOW_HOME)"
	@$(BIN)/airflow db migrate > $(REBALANCE_HOME)/airflow-db-migrate.log 2>&1 || (cat $(REBALANCE_HOME)/airflow-db-migrate.log; exit 1)
	@echo "== airflow dags test rebalance_nightly $(DEMO_LATEST) (log: $(REBALANCE_HOME)/demo-dag.log)"
	@REBALANCE_LANDING_DIR=$(DEMO_LANDING) $(BIN)/airflow dags test rebalance_nightly $(DEMO_LATEST) \
		> $(REBALANCE_HOME)/demo-dag.log 2>&1 || (tail -50 $(REBALANCE_HOME)/demo-dag.log; exit 1)
	@$(BIN)/rebalance report --date $(DEMO_LATEST)
	@echo "== drift report (HTML with charts): $$($(BIN)/rebalance report-html --date $(DEMO_LATEST))"
	@echo "Next: 'make ui' to review and approve in the Airflow UI (menu Rebalance), or at the terminal:"
	@echo "      export PATH=\"$(BIN):\$$PATH\""
	@echo "      rebalance proposals --status pending_review; rebalance approve <id> --by <you>; rebalance export"
	@echo "      the second morning: rebalance sample --out $(DEMO_LANDING) --extend (the synthetic desk executes"
	@echo "      what you approved and exported: executions.csv), then"
	@echo "      rebalance run --date <the date it prints> --landing $(DEMO_LANDING)"

## ui: Airflow (api-server, scheduler, dag-processor) with the Rebalance view on the demo warehouse
UI_PORT ?= 8080
UI_PASSWORDS := $(REBALANCE_HOME)/ui-passwords.json
ui: venv
	@mkdir -p $(REBALANCE_HOME)
	@if [ ! -d $(DEMO_LANDING) ]; then \
		$(BIN)/rebalance sample --out $(DEMO_LANDING) --start 2014-01-02 --days 3 --funds 36 --holdings 12 --models 3 >/dev/null; fi
	@$(BIN)/rebalance warehouse migrate
	@for d in $(DEMO_DATES) $(DEMO_LATEST); do $(BIN)/rebalance run --date $$d --landing $(DEMO_LANDING) --quiet || exit 1; done
	@$(BIN)/airflow db migrate > $(REBALANCE_HOME)/airflow-db-migrate.log 2>&1 || (cat $(REBALANCE_HOME)/airflow-db-migrate.log; exit 1)
	@test -f $(UI_PASSWORDS) || $(BIN)/python -c 'import json, secrets; print(json.dumps({u: secrets.token_urlsafe(9) for u in ("ops", "viewer", "admin")}))' > $(UI_PASSWORDS)
	@echo "== Airflow UI: http://127.0.0.1:$(UI_PORT)/  (Rebalance view: menu 'Rebalance' or http://127.0.0.1:$(UI_PORT)/rebalance/)"
	@echo "   users (role): ops (User: may approve), viewer (Viewer: look only), admin (Admin); passwords in $(UI_PASSWORDS):"
	@cat $(UI_PASSWORDS); echo
	@echo "   Ctrl-C stops Airflow; 'make stop' stops the embedded warehouse."
	@echo "   logs of the scheduler and dag-processor: $(REBALANCE_HOME)/ui-*.log"
	@# The components run in the background so that Ctrl-C (trapped here) stops them all with
	@# SIGTERM (airflow standalone does not stop on Ctrl-C). Local only: bound to 127.0.0.1.
	@export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="ops:user,viewer:viewer,admin:admin" \
		AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=$(UI_PASSWORDS) \
		AIRFLOW__API__BASE_URL=http://127.0.0.1:$(UI_PORT) AIRFLOW__CORE__EXECUTOR=LocalExecutor \
		AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$(UI_PORT)/execution/ \
		AIRFLOW__CORE__PARALLELISM=4 REBALANCE_LANDING_DIR=$(DEMO_LANDING); \
	trap 'kill -TERM $$api $$scheduler $$processor 2>/dev/null; sleep 5; pkill -KILL -P $$scheduler 2>/dev/null; kill -KILL $$scheduler $$processor 2>/dev/null; wait' INT TERM; \
	$(BIN)/airflow scheduler > $(REBALANCE_HOME)/ui-scheduler.log 2>&1 & scheduler=$$!; \
	$(BIN)/airflow dag-processor > $(REBALANCE_HOME)/ui-dag-processor.log 2>&1 & processor=$$!; \
	$(BIN)/airflow api-server --host 127.0.0.1 --port $(UI_PORT) & api=$$!; \
	wait $$api

## test: the whole suite (every marker) against real PostgreSQL, real Airflow and real GX
## test-fast: the unit and db tests only (no Airflow, browser or Celery); see docs/development/testing.md
## PYTEST_ARGS: more pytest arguments, e.g. make test PYTEST_ARGS="-k export --durations=20"
FAST_MARKERS := not airflow and not browser and not celery
# pytest exits 5 when it collected no test: a run that tested nothing is a failure, said plainly.
define run_pytest
	@$(BIN)/python -m pytest -q $(1) $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no test (exit 5): nothing was tested" >&2; fi; exit $$status
endef

test: venv
	$(call run_pytest,)

test-fast: venv
	$(call run_pytest,-m "$(FAST_MARKERS)")

## bench: 10,000 funds x 100 holdings, then the wealth book of 100,000 x 20 on 20 models (wall time, peak
## memory, ratio to plain COPY, the review pages at that size)
## and the speed bench (bench/bench_speed.py, issue 18): the write floor and a rerun at 1M, the fixed cost of a
## one-fund night, the replay of a year (1,000 x 100; 4 funds against cvxportfolio). Each run alone:
##   make bench BENCH_RUNS=speed BENCH_PARTS="fixed replay"   (runs: nightly wealth speed; parts: night fixed
##   replay cvx); BENCH_SPEED_ARGS="--repeat 3 --funds 1000" for sizes (python bench/bench_speed.py --help).
BENCH_RUNS ?= nightly wealth speed
BENCH_PARTS ?= night fixed replay cvx
BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): $(STAMP) pyproject.toml requirements/constraints.txt
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e ".[airflow,celery,dev,bench]"
	@touch $(BENCH_STAMP)

bench: venv $(BENCH_STAMP)
ifneq (,$(filter nightly,$(BENCH_RUNS)))
	$(BIN)/python bench/bench_nightly.py $(BENCH_ARGS)
endif
ifneq (,$(filter wealth,$(BENCH_RUNS)))
	@echo "== the wealth book: 100,000 accounts x 20 holdings on 20 models (restrictions, harvesting)"
	$(BIN)/python bench/bench_nightly.py --funds 100000 --holdings 20 --models 20 $(BENCH_WEALTH_ARGS)
endif
ifneq (,$(filter speed,$(BENCH_RUNS)))
	@echo "== speed: $(BENCH_PARTS) (figures in $(REBALANCE_HOME)/bench/)"
	$(BIN)/python bench/bench_speed.py --parts $(BENCH_PARTS) $(BENCH_SPEED_ARGS)
endif

## lint: ruff with the rule set of pyproject.toml ([tool.ruff.lint]), Airflow 3 rules (AIR3) included
lint: venv
	$(BIN)/ruff check .

## docs: the site (docs/, mkdocs.yml) into .rebalance/site; strict: a broken link or a page missing
## from the nav fails it, and so do generated reference pages older than the code (make docs-gen)
docs: venv
	$(BIN)/python docs/gen/generate.py --check
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $(REBALANCE_HOME)/site

docs-gen: venv
	$(BIN)/python docs/gen/generate.py

## stop the embedded warehouse (it keeps running between commands otherwise)
stop: venv
	$(BIN)/rebalance warehouse stop

constraints: venv
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e' > requirements/constraints.txt

clean: stop
	rm -rf $(REBALANCE_HOME) $(VENV) .pytest_cache .ruff_cache .hypothesis
