# The project's tasks. `make setup` once, then `make run` or `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV ?= uv
VENV := .venv
BIN := $(VENV)/bin
MODEL_VERSION ?= 1.0
MODEL := models/churn_prediction_model_v$(subst .,_,$(MODEL_VERSION)).joblib
SYNTHETIC := build/synthetic_customers.csv
# uv must trust the system's CA store where HTTPS goes through a corporate proxy.
export UV_SYSTEM_CERTS ?= 1
# Installed packages get their bytecode at install, as in an image: a process that
# imports pandas, scikit-learn or pyspark (the service, each Spark worker, every CLI
# call) does not compile them again where PYTHONDONTWRITEBYTECODE keeps no cache.
export UV_COMPILE_BYTECODE ?= 1

.PHONY: help setup sync migrate import model test lint typecheck pytest clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

setup: sync import ## virtual environment, locked dependencies, bundled model in the BentoML store

sync: ## install the locked dependencies into .venv
	$(UV) sync --frozen --all-extras

migrate: sync ## rewrite model store entries of the older form (a pickle inside) without it
	$(BIN)/churn migrate-store

import: migrate ## verify the bundled model's checksum and import it into the BentoML store
	$(BIN)/churn import-model $(MODEL) $(if $(MODEL_SHA256),--sha256 $(MODEL_SHA256))

model: sync ## retrain the bundled model from synthetic data (reproducible from nothing)
	$(BIN)/churn data synth --rows 10000 --seed 42 --out $(SYNTHETIC)
	$(BIN)/churn train --data $(SYNTHETIC) --out models --seed 42 --version $(MODEL_VERSION)

test: lint typecheck batch-runtimes pytest pytest-spark35 ## ruff, mypy and pytest (and the Spark job on pyspark 3.5)

lint: sync
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: sync
	$(BIN)/mypy

# Most of the suite waits on servers, Spark and drift windows, so two workers (one file
# each at a time: a file's module fixtures are started once) halve its time on 2 cores.
PYTEST_WORKERS ?= 2
PYTEST_PARALLEL = -n $(PYTEST_WORKERS) --dist loadfile

pytest: sync
	$(BIN)/pytest $(PYTEST_PARALLEL)

clean: ## remove build output and caches (not the model store)
	rm -rf build .pytest_cache .mypy_cache .ruff_cache test-artifacts

# --- benchmarks (issue 3; owned by benchmarks/, see benchmarks/README.md) ----------
# Not part of `make test` or CI: needs wrk (`apt-get install -y wrk`) and a quiet machine.
# Options: make bench BENCH_ARGS="--seconds 15 --rows 1000000 --only single,batchable,csv"
BENCH_ARGS ?=

.PHONY: bench bench-inprocess bench-latency
bench: sync ## performance benchmark against the old Flask app (needs wrk)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

bench-inprocess: sync ## each route's CPU per request inside the app, without HTTP
	$(BIN)/python -m benchmarks.inprocess

bench-latency: sync ## one client's latency on /v2/predict and /v1/customer, before and after bulk requests
	$(BIN)/python -m benchmarks.latency $(BENCH_ARGS)

# --- the old app on its own model (issue 26, part 3; benchmarks/legacy/) -------------
# make bench-legacy [BENCH_LEGACY_ARGS="--rounds 3 --seconds 15"] [PUBLIC_DATA=...]:
# the old Flask app, in the notebook's environment (build/legacy-env, from hashed pins),
# serving a department-style model that the notebook script makes there
# (build/legacy/churn_prediction_model_v1_0.joblib), against the service serving the same
# model imported with `churn import-model FILE --sha256`. Installs wrk (apt) if missing.
PUBLIC_DATA ?= ../shared/data/Churn_Modelling.csv
LEGACY_ENV := build/legacy-env
LEGACY_REQUIREMENTS := benchmarks/legacy/requirements.txt
LEGACY_MODEL := build/legacy/churn_prediction_model_v1_0.joblib
# The digest the notebook printed, kept outside the model's folder: the import's anchor.
LEGACY_DIGEST := build/legacy-model.sha256
BENCH_LEGACY_ARGS ?=

.PHONY: legacy-env legacy-model legacy-requirements bench-legacy wrk

legacy-requirements: ## recompile benchmarks/legacy/requirements.txt (the old app's pins, hashed)
	$(UV) pip compile benchmarks/legacy/requirements.in --override benchmarks/legacy/overrides.txt \
		--universal --python-version 3.11 --exclude-newer 2025-03-01 --generate-hashes \
		--custom-compile-command 'make legacy-requirements' --quiet -o $(LEGACY_REQUIREMENTS)

legacy-env: $(LEGACY_ENV)/.synced ## the old app's environment: the notebook's pins, made by uv (cached)

# This machine's Python 3.11 (the one .venv runs on); uv never downloads one here.
$(LEGACY_ENV)/.synced: $(LEGACY_REQUIREMENTS)
	UV_PYTHON_DOWNLOADS=never $(UV) venv --quiet --allow-existing --python $(BIN)/python $(LEGACY_ENV)
	$(UV) pip sync --quiet --require-hashes --python $(LEGACY_ENV)/bin/python $(LEGACY_REQUIREMENTS)
	touch $@

legacy-model: $(LEGACY_MODEL) ## the department-style pipeline, trained by the notebook script in the old env

$(LEGACY_MODEL): benchmarks/legacy/notebook.py $(LEGACY_ENV)/.synced
	$(LEGACY_ENV)/bin/python benchmarks/legacy/notebook.py --data '$(PUBLIC_DATA)' \
		--out $(LEGACY_MODEL) --digest $(LEGACY_DIGEST)

wrk: ## wrk for the load benchmarks, from Debian, if it is missing
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }

bench-legacy: sync wrk legacy-model ## the old app in its own env vs the service, on the same model
	$(BIN)/python -m benchmarks.legacy --data '$(PUBLIC_DATA)' $(BENCH_LEGACY_ARGS)

# --- images and deployment (issues 5, 21; owned by deploy/, see deploy/README.md) --
# make images [BASE_IMAGE=python:3.11-slim] [CONTAINER_BACKEND=docker|podman]
#             [PLATFORMS=linux/amd64,linux/arm64] [PUSH=1]
#             [BUILD_OPTS="network=host ..."] [IMAGE_VERSION=1.0]
# make bundle [BUNDLE_OUT=build/bundle]
# make bundle-verify FINGERPRINT=<sha256 of SHA256SUMS, as announced> [DIR=build/bundle/churn-1.0]
BASE_IMAGE ?= python:3.11-slim
CONTAINER_BACKEND ?= docker
PLATFORMS ?=
PUSH ?=
BUILD_OPTS ?=
IMAGE_VERSION ?= $(MODEL_VERSION)
REQUIREMENTS := deploy/bento/requirements.txt
BUNDLE_OUT ?= build/bundle
DIR ?= $(BUNDLE_OUT)/churn-$(IMAGE_VERSION)

.PHONY: requirements bento images bundle bundle-verify ci-images

requirements: ## export uv.lock's main dependencies for the Bento (run after `uv lock`)
	$(UV) export --frozen --no-default-groups --no-emit-project --no-hashes --no-header \
		--no-annotate --quiet -o $(REQUIREMENTS)

bento: import ## build the Bento: service, sources, locked requirements and the model
	$(BIN)/bentoml build .

images: import ## build the churn-service and churn-ui images (PLATFORMS=...), tagged latest and 1.0
	BASE_IMAGE='$(BASE_IMAGE)' CONTAINER_BACKEND='$(CONTAINER_BACKEND)' PLATFORMS='$(PLATFORMS)' \
		PUSH='$(PUSH)' BUILD_OPTS='$(BUILD_OPTS)' VERSION='$(IMAGE_VERSION)' deploy/images.sh

bundle: sync ## a region bundle of the built images (podman): archives, pinned manifests, SBOMs
	$(BIN)/python deploy/bundle.py make --out '$(BUNDLE_OUT)' --version '$(IMAGE_VERSION)'

bundle-verify: ## check a bundle (DIR=...) against its FINGERPRINT, sums and pins, then load its images
	python3 deploy/bundle.py verify '$(DIR)' $(if $(FINGERPRINT),--fingerprint '$(FINGERPRINT)')

ci-images: sync ## CI: build the real images (amd64, arm64) with podman, run and check them (as root)
	deploy/ci/images.sh

# --- the web UI (churn/clients/ui/) ---------------------------------------------------
# make run [SERVICE_PORT=3000] [UI_PORT=8501] [RUN_HOST=127.0.0.1]: the service and the UI
# together; Ctrl-C stops both. make ui: the UI alone, against CHURN_API_URL (default
# http://127.0.0.1:3000). Both listen on this machine only unless RUN_HOST says otherwise:
# without CHURN_API_KEYS, anyone who reaches the service can score customers.
SERVICE_PORT ?= 3000
UI_PORT ?= 8501
RUN_HOST ?= 127.0.0.1
UI_FLAGS = --server.address $(RUN_HOST) --server.port $(UI_PORT) --server.headless true \
	--browser.gatherUsageStats false \
	--client.toolbarMode viewer --client.showErrorDetails none
UI_REQUIREMENTS := deploy/ui/requirements.txt

.PHONY: run ui ui-requirements

run: import ## the service on :3000 and the UI on :8501, on the bundled model
	@set -m; trap 'exit 130' INT TERM; \
	trap 'kill -TERM -- -$$service -$$ui 2>/dev/null; wait' EXIT; \
	$(BIN)/bentoml serve service:ChurnService --host $(RUN_HOST) --port $(SERVICE_PORT) & service=$$!; \
	CHURN_API_URL=http://127.0.0.1:$(SERVICE_PORT) \
		$(BIN)/streamlit run churn/clients/ui/app.py $(UI_FLAGS) & ui=$$!; \
	echo "service http://127.0.0.1:$(SERVICE_PORT)  UI http://127.0.0.1:$(UI_PORT)  (Ctrl-C stops both)"; \
	wait -n $$service $$ui

ui: sync ## the UI alone on :8501, talking to the service at CHURN_API_URL
	$(BIN)/streamlit run churn/clients/ui/app.py $(UI_FLAGS)

ui-requirements: ## pin the UI image's dependencies (deploy/ui/) to uv.lock's versions
	mkdir -p build
	$(UV) export --frozen --all-extras --no-hashes --no-header --no-annotate \
		--no-emit-project --quiet -o build/lock-constraints.txt
	printf 'streamlit\naltair\npandas\nhttpx\npydantic\npydantic-settings\n' | $(UV) pip compile - \
		--constraint build/lock-constraints.txt --universal --python-version 3.11 \
		--custom-compile-command 'make ui-requirements' --no-annotate --quiet \
		-o $(UI_REQUIREMENTS)

# --- soak and faults (issue 6; owned by benchmarks/soak.py, benchmarks/faults.py) --
# Not part of `make test` or CI; figures, not assertions (see benchmarks/README.md).
# make soak SOAK_ARGS="--seconds 300 --warmup 30 --connections 64"   (needs wrk)
# make faults FAULTS_ARGS="--only kill,readiness --seconds 30 --kill-at 10"
SOAK_ARGS ?=
FAULTS_ARGS ?=

.PHONY: soak faults

soak: sync ## 5 min on /v1/customer + /v2/predict at 64 connections; errors and RSS
	$(BIN)/python -m benchmarks.soak $(SOAK_ARGS)

faults: sync ## a worker SIGKILLed under load; /readyz while the service starts
	$(BIN)/python -m benchmarks.faults $(FAULTS_ARGS)

# --- Apache Spark (issues 19, 28; owned by churn/spark/, README "Score the whole book on Spark")
# make spark-wheel: the batch wheel, churn_batch (deploy/batch/): the console script
#   churn-batch and the modules it runs, from the same source tree; it requires only the
#   `batch` dependency group, and pyspark, the platform's, as its `spark` extra.
# make spark-env: the executors' environment, packed with its own interpreter (below).
# make spark35 / pytest-spark35: the job's and cluster tests on pyspark 3.5 (EMR 7,
#   Databricks 14.3-16.4 LTS) in a second environment: the lock's packages with pyspark 3.5
#   in place of 4.3.
# make batch-runtimes: the batch wheel on the platforms' other Pythons, each with the Spark
#   their runtimes pair it with (below); tests/spark/test_runtimes.py runs the job there.
# make spark-cluster: a standalone master and worker on 127.0.0.1, the job submitted to it
#   in cluster deploy mode with the packed environment, both stopped by PID.
# make bench-spark BENCH_SPARK_ARGS="--rows 1000000 --only spark,file"
SPARK_ENV := build/spark-env
SPARK_ENV_ARCHIVE := build/churn-spark-env.tar.gz
SPARK35 := build/spark35
PYSPARK35 ?= pyspark==3.5.9
BENCH_SPARK_ARGS ?=

.PHONY: spark-wheel spark-env spark35 pytest-spark35 batch-runtimes spark-cluster bench-spark

spark-wheel: ## the batch wheel (build/dist/churn_batch-*.whl): churn-batch, no service dependencies
	$(UV) build --quiet --wheel --out-dir build/dist deploy/batch

# The executors' environment: the batch dependency group from uv.lock (numpy, pandas,
# pyarrow, pydantic, xgboost and theirs: no BentoML, Streamlit, uvloop or scikit-learn),
# the batch wheel (with --no-deps: the lock pins its dependencies), and the interpreter
# itself: Python's binary and standard library copied in beside them, so that bin/python
# runs from wherever the archive is unpacked (a venv's bin/python is a link to one
# machine's interpreter). It needs the C libraries every Python 3.11 of the same
# platform links to (glibc, libssl, libffi, zlib): an executor image of the same
# distribution has them.
spark-env: sync spark-wheel ## pack the executors' environment (build/churn-spark-env.tar.gz)
	rm -rf $(SPARK_ENV) $(SPARK_ENV_ARCHIVE)
	$(BIN)/python deploy/spark_env.py --out $(SPARK_ENV) --archive $(SPARK_ENV_ARCHIVE) \
		--wheel "$$(ls -t build/dist/churn_batch-*.whl | head -1)"

spark35: sync ## a second environment: the locked packages with pyspark 3.5 (build/spark35)
	$(UV) venv --quiet --allow-existing --python $(BIN)/python $(SPARK35)
	$(UV) export --frozen --all-extras --no-emit-project --no-hashes --no-header --no-annotate \
		--quiet | grep -v -E '^(pyspark|py4j)==' > $(SPARK35)/requirements.txt
	$(UV) pip install --quiet --python $(SPARK35)/bin/python -r $(SPARK35)/requirements.txt \
		'$(PYSPARK35)'
	$(UV) pip install --quiet --python $(SPARK35)/bin/python --no-deps -e .

# pyspark 3.5's collect() leaves its socket to the garbage collector (a ResourceWarning,
# which 4.x no longer gives): ignored in this run only.
pytest-spark35: spark35 ## the Spark job's, call list's and cluster tests on pyspark 3.5
	$(SPARK35)/bin/python -c "import pyspark; assert pyspark.__version__.startswith('3.5')"
	$(SPARK35)/bin/pytest -p no:cacheprovider -W ignore::ResourceWarning $(PYTEST_PARALLEL) \
		tests/spark/test_job.py tests/spark/test_call_list.py tests/spark/test_cluster.py

# Databricks runtimes run Python 3.10 (14.3 LTS, Spark 3.5), 3.11 (15.4 LTS, Spark 3.5)
# and 3.12 (16.4 LTS, Spark 3.5; 17.3 LTS, Spark 4.0). For each PYTHON:PYSPARK here, an
# environment build/batch-pyPYTHON with the wheel and that pyspark, resolved from PyPI as a
# cluster library is (not the lock: that is 3.11's), as of BATCH_AS_OF so that a rerun
# resolves alike. The interpreter comes from pyenv or PATH; one not found is said and left
# out (its test says so too).
BATCH_RUNTIMES ?= 3.10:pyspark==3.5.9 3.12:pyspark==4.0.5
BATCH_AS_OF ?= 2026-12-01

batch-runtimes: spark-wheel ## the batch wheel with Python 3.10 + Spark 3.5 and 3.12 + Spark 4.0 (build/batch-py*)
	@wheel="$$(ls -t build/dist/churn_batch-*.whl | head -1)"; \
	for runtime in $(BATCH_RUNTIMES); do \
		version=$${runtime%%:*}; spark=$${runtime#*:}; venv=build/batch-py$$version; \
		python=$$(ls -d "$${PYENV_ROOT:-$$HOME/.pyenv}"/versions/$$version.*/bin/python$$version \
			2>/dev/null | tail -1); \
		if [ -z "$$python" ] && python$$version -c '' 2>/dev/null; then \
			python=$$(command -v python$$version); fi; \
		if [ -z "$$python" ]; then \
			echo "batch-runtimes: no Python $$version in pyenv or on PATH; $$venv left out"; \
			continue; fi; \
		echo "batch-runtimes: $$venv: $$python, $$spark"; \
		$(UV) venv --quiet --allow-existing --python "$$python" $$venv || exit 1; \
		$(UV) pip install --quiet --python $$venv/bin/python --exclude-newer $(BATCH_AS_OF) \
			"$$wheel[spark]" "$$spark" || exit 1; \
	done

spark-cluster: spark-env ## churn batch on a standalone Spark master + worker on 127.0.0.1
	CHURN_SPARK_ENV=$(SPARK_ENV_ARCHIVE) $(BIN)/pytest tests/spark/test_cluster.py -v

bench-spark: sync ## Spark start-up, marginal rows/s per core (1M, 10M rows) vs the file scorer, scaling, memory
	$(BIN)/python -m benchmarks.spark $(BENCH_SPARK_ARGS)
