# make run: set up and materialise full_pipeline on the demo shop.  make test: set up and test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# FASHION_GAN_STORE moves the whole store (Dagster home, MLflow, data) as it does for Python
STORE := $(or $(FASHION_GAN_STORE),$(CURDIR)/assets_store)
export DAGSTER_HOME := $(STORE)/dagster_home
export MLFLOW_TRACKING_URI ?= sqlite:///$(STORE)/mlflow/mlflow.db

.PHONY: setup run test ui mlflow-ui lint bench bench-gan clean

setup: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	grep -q DAGSTER_HOME $(BIN)/activate || printf '%s\n' \
	  'export DAGSTER_HOME="$(DAGSTER_HOME)"' \
	  'export MLFLOW_TRACKING_URI="$${MLFLOW_TRACKING_URI:-sqlite:///$(STORE)/mlflow/mlflow.db}"' \
	  >> $(BIN)/activate
	touch $@

$(DAGSTER_HOME)/dagster.yaml: pipelines/dagster_home/dagster.yaml
	mkdir -p $(DAGSTER_HOME) $(STORE)/mlflow
	cp $< $@

# A run of the code location the UI loads (workspace.yaml), so it shows on the job's page and the
# Overview timeline; `dagster job execute -m` records runs with no location (pipelines/launch.py).
run: setup
	$(BIN)/python -m pipelines.launch -j full_pipeline

test: setup
	$(BIN)/python -m pytest -q

ui: setup
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

mlflow-ui: setup
	@echo "MLflow UI: http://127.0.0.1:5000 (opens in its Model training view; the registry" \
	  "is 'Model registry' in its sidebar: http://127.0.0.1:5000/#/models)"
	$(BIN)/mlflow ui --app-name fashion-gan --backend-store-uri "$(MLFLOW_TRACKING_URI)" \
	  --default-artifact-root "$(STORE)/mlflow/artifacts" -h 127.0.0.1 -p 5000

# The tracking server: the same sqlite store as mlflow-ui under the store root, artifacts
# served from its mlflow/artifacts (mlflow-artifacts:/), so any machine that reaches the port
# logs with MLFLOW_TRACKING_URI=http://127.0.0.1:$(MLFLOW_PORT) (README, "Tracking server").
MLFLOW_PORT ?= 5000
SERVER_STORE = $(or $(FASHION_GAN_STORE),$(STORE))
.PHONY: mlflow-server run-dask
mlflow-server: setup
	@echo "MLflow tracking server: http://127.0.0.1:$(MLFLOW_PORT); the pipeline logs to it" \
	  "with MLFLOW_TRACKING_URI=http://127.0.0.1:$(MLFLOW_PORT)"
	mkdir -p "$(SERVER_STORE)/mlflow"
	$(BIN)/mlflow server --app-name fashion-gan \
	  --backend-store-uri "sqlite:///$(SERVER_STORE)/mlflow/mlflow.db" --serve-artifacts \
	  --artifacts-destination "$(SERVER_STORE)/mlflow/artifacts" -h 127.0.0.1 -p $(MLFLOW_PORT)

# The demo end to end on a local Dask cluster (CPU workers and one accelerator worker), its
# dashboard link printed first (README, "Running on a Dask cluster").
run-dask: setup
	$(BIN)/python -m pipelines.executors -j full_pipeline

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python benchmarks/crawl_throughput.py
	$(BIN)/python benchmarks/catalogue_build.py
	$(BIN)/python benchmarks/translation_accuracy.py
	$(BIN)/python benchmarks/front_view_accuracy.py
	$(BIN)/python benchmarks/person_detector.py
	$(BIN)/python benchmarks/segmentation_store.py
	$(MAKE) bench-gan

# GPU training speed (images/s, bf16 and fp32, full profile's batch) on the GPU present;
# exits 2 with a message on a CPU-only machine. After make run it trains on the store's data
# (every family); before, on synthetic packshots. Figures: benchmarks/README.md.
.PHONY: bench-gpu
bench-gpu: setup
	$(BIN)/python benchmarks/gpu_speed.py $(if $(wildcard $(STORE)/datasets/packshots.h5),--store $(STORE)) \
	  --out benchmarks/gpu_speed.md

# The training benchmarks read the demo's packshots.h5 and attribute classifier: make run first.
bench-gan: run
	$(BIN)/python benchmarks/dcgan_speed.py --steps 30 --warmup 3
	$(BIN)/python benchmarks/cli_speed.py --steps 30 --warmup 5
	$(BIN)/python benchmarks/dcgan_bf16_quality.py --seeds 0 1 2 --steps 300
	$(BIN)/python benchmarks/gan_replication.py --steps 300 --seeds 0 1 2
	$(BIN)/python benchmarks/classic_speed.py --out $(STORE)/benchmarks/classic_speed.json

clean:
	rm -rf $(STORE)/raw $(STORE)/catalogue
