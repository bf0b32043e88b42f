# mmplan front door. `make demo` and `make test` work on a fresh machine with python3 >= 3.11:
# uv is installed into .tools/ from PyPI, then `uv sync --frozen --compile-bytecode` builds .venv/ from uv.lock.

PYTHON ?= python3
UV := .tools/bin/uv
MMPLAN := .venv/bin/mmplan
DEMO := out/demo
# The shipped sample (data/sample/) is made with these flags.
SAMPLE_FLAGS := --seed 7 --regions 2 --fcs 2 --scs 6 --dss 40 --days 730

.PHONY: install demo test test-fast bench bench-large lint sample clean browser

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check "uv>=0.5,<1"

# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set (this CI machine, most Docker
# images), Python never caches bytecode and recompiled ~2,000 library modules in every process:
# 6.7 s of an 11.6 s `mmplan forecast` on a tiny history. Compiling once at install costs
# ~30 s the first time and ~1 s after (compileall skips up-to-date files).
install: $(UV)
	$(UV) sync --frozen --quiet --compile-bytecode

demo: install
	mkdir -p $(DEMO)
	$(MMPLAN) sample $(DEMO)/sample $(SAMPLE_FLAGS)
	$(MMPLAN) validate data/sample/history.parquet
	$(MMPLAN) backtest data/sample/history.parquet -o $(DEMO)/backtest --gate --config configs/ci-gate.toml
	$(MMPLAN) forecast data/sample/history.parquet -o $(DEMO)/forecast.parquet --horizon 14 \
		--calibration $(DEMO)/backtest/calibration.parquet
	$(MMPLAN) optimize $(DEMO)/forecast.parquet --nodes data/sample/nodes.parquet \
		--lanes data/sample/lanes.parquet -o $(DEMO)/plan
	$(MMPLAN) simulate $(DEMO)/plan --demand $(DEMO)/forecast.parquet -o $(DEMO)/sim \
		--samples 40 --seed 1
	$(MMPLAN) report -o $(DEMO)/report.html --history data/sample/history.parquet \
		--forecast $(DEMO)/forecast.parquet --backtest $(DEMO)/backtest --plan $(DEMO)/plan \
		--simulation $(DEMO)/sim
	@echo "report: $(DEMO)/report.html"

# The report's browser test drives the system's Chromium (Playwright never downloads one):
# installed here when missing and we are root; otherwise that test fails saying how.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
		{ [ "$$(id -u)" = 0 ] && { apt-get install -y -q chromium || \
			{ apt-get update -q && apt-get install -y -q chromium; }; }; } || true

test: install browser
	.venv/bin/pytest -q -n auto

# For development: everything but the tests marked slow. `make test` still runs them all.
test-fast: install browser
	.venv/bin/pytest -q -n auto -m "not slow"

bench: install
	.venv/bin/python benchmarks/forecast_bench.py
	.venv/bin/python benchmarks/optimize_bench.py
	.venv/bin/python benchmarks/scenario_bench.py --skip-simulate
	.venv/bin/python benchmarks/simulate_bench.py
	.venv/bin/python benchmarks/joint_model.py
	.venv/bin/python benchmarks/grain_bench.py
	.venv/bin/python benchmarks/backtest_bench.py
	.venv/bin/python benchmarks/calibration_bench.py
	.venv/bin/python benchmarks/nonneg_bench.py
	.venv/bin/python benchmarks/model_choice.py
	.venv/bin/python benchmarks/engine_bench.py
	.venv/bin/python benchmarks/reconcile_bench.py --lanes 10000
	.venv/bin/python benchmarks/scale.py
	.venv/bin/python benchmarks/accuracy.py
	.venv/bin/python benchmarks/report_bench.py
	.venv/bin/python benchmarks/long_range.py

# Reconciliation and the scale ladder with their 100k-lane rungs (about 45 minutes on 2 cores).
bench-large: install
	.venv/bin/python benchmarks/reconcile_bench.py --lanes 10000 100000
	.venv/bin/python benchmarks/scale.py --large

lint: install
	.venv/bin/ruff check mmplan tests benchmarks
	.venv/bin/ruff format --check mmplan tests benchmarks
	.venv/bin/mypy

sample: install
	$(MMPLAN) sample data/sample $(SAMPLE_FLAGS)

clean:
	rm -rf out .pytest_cache .ruff_cache
