# Two commands do all set-up on a fresh machine:
#   make demo   environment, data, mini suite, every asset materialized
#   make test   environment and the test suite

PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed

# dagster-dbt runs `dbt` from PATH.
export PATH := $(BIN):$(PATH)
export DAGSTER_HOME ?= $(CURDIR)/warehouse/dagster
# No telemetry from any tool.
export DAGSTER_DISABLE_TELEMETRY := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := False
export HF_HUB_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := 1
export TOKENIZERS_PARALLELISM := false
export HF_HUB_DISABLE_PROGRESS_BARS := 1
export TRANSFORMERS_VERBOSITY := error

.PHONY: demo test lint format faults verify bench ui sql venv clean

venv: $(STAMP)

# Rebuilt whenever pyproject.toml changes; safe to run again.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: orchestration/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp orchestration/dagster.yaml $@

demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	time $(BIN)/python -m orchestration.materialize

# The tests run on every core (pytest-xdist): each test keeps its warehouse, lake and Dagster home
# in its own temporary folder, so two workers never share one. On 2 cores the suite took 16.6
# minutes this way against 23.3 in one process. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= auto
test: $(STAMP) lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --durations=25

# ruff's lint and format, as pyproject.toml configures them; `make format` rewrites in place.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The fault-injection suite alone (also part of make test): prints the faults tried and survived.
faults: $(STAMP)
	$(BIN)/python -m pytest -m fault

# Re-reads every committed partition of the lake against its manifest's sizes and checksums;
# names the damaged ones and exits 1 if there are any. `make verify QUICK=1`: sizes and footers only.
verify: $(STAMP)
	$(BIN)/python -m extract.lake.scrub $(if $(QUICK),--quick)

# Speed and size, printed beside their targets (docs/performance.md). Runs on the demo's
# warehouse; scratch data goes to warehouse/bench/.
bench: demo
	$(BIN)/python -m benchmarks.extraction
	$(BIN)/python -m benchmarks.depth_and_time
	$(BIN)/python -m benchmarks.pythia_scale
	$(BIN)/python -m benchmarks.precision
	$(BIN)/python -m benchmarks.storage
	$(BIN)/python -m benchmarks.warehouse

# The Dagster UI on http://127.0.0.1:3000 over the same instance `make demo` wrote to.
ui: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -m orchestration.definitions

# DuckDB's shell on the published copy, read-only: safe while the pipeline builds the next one.
PUBLISHED := $(or $(SEEDCONV_WAREHOUSE),warehouse)/published/seedconv.duckdb
sql: $(STAMP)
	@test -f $(PUBLISHED) || { echo "no published warehouse at $(PUBLISHED): run make demo first" >&2; exit 1; }
	$(BIN)/duckdb -readonly $(PUBLISHED)

clean:
	rm -rf warehouse/lake warehouse/suites warehouse/reports warehouse/published warehouse/dagster \
		warehouse/bench warehouse/seedconv.duckdb dbt_project/target dbt_project/logs
