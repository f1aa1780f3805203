# Bananas: the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
BASE   := $(VENV)/.installed-base
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast chaos lint venv redis-server chromium faketime clean

# The demo needs only the package; tests, lint and bench add the test extra.
$(BASE): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $(BASE)

$(STAMP): $(BASE)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

redis-server:
	@scripts/ensure-redis.sh

chromium:
	@scripts/ensure-chromium.sh

faketime:
	@scripts/ensure-faketime.sh

## make demo: run Bananas' main job end to end (see README)
demo: $(BASE)
	$(BIN)/bananas demo

## make test: the whole suite against a real redis-server the tests start themselves
## (--durations=25: the output names the slowest tests)
test: venv redis-server chromium faketime
	$(BIN)/python -m pytest --durations=25

## make test-fast: the tiers without worker processes, in well under a minute:
## unit tests, the broker conformance suite and the in-process Worker tier, each
## on both brokers where it applies (redis-server started by the tests)
FAST_TESTS := tests/test_config.py tests/test_logs.py tests/test_imports.py tests/test_broker_redis.py \
              tests/conformance tests/inprocess
test-fast: venv redis-server
	$(BIN)/python -m pytest -q $(FAST_TESTS)

## make chaos: the chaos suite at full scale; figures go to docs/reliability.md
## (`make test` runs the same scenarios shortened)
chaos: venv redis-server faketime
	CHAOS_FULL=1 $(BIN)/python -m pytest tests/chaos -s --timeout 900 -q

## make lint: ruff + mypy (strict)
lint: venv
	$(BIN)/ruff check src tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .bananas

## make bench: Bananas vs Celery, Dramatiq, Huey, RQ, arq, SAQ, Taskiq on a private
## loopback redis-server (peers in bench/.envs/*); writes bench/RESULTS.md and
## bench/results/*.json. QUICK=1 for a small smoke run; BENCH_ARGS for more flags
## (e.g. BENCH_ARGS="--libs bananas,celery --workloads drain1"). Bounded: 100 min.
## Then Bananas on Redis Cluster against standalone (bench/harness/cluster_scale.py,
## bench/results/cluster-scale.md; CLUSTER=0 skips it). Bounded: 20 min.
.PHONY: bench bench-cluster
bench: venv
	@scripts/ensure-redis.sh
	timeout -s INT -k 60 6000 $(BIN)/python -m bench.harness $(if $(QUICK),--quick) $(BENCH_ARGS)
	$(if $(filter 0,$(CLUSTER)),,$(MAKE) bench-cluster)

bench-cluster: venv
	@scripts/ensure-redis.sh
	timeout -s INT -k 60 1200 $(BIN)/python -m bench.harness.cluster_scale \
		$(if $(QUICK),--runs 1 --jobs 5000,--runs 3) --out bench/results/cluster-scale.md
