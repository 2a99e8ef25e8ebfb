"""The pipeline against a real MLflow tracking server: `make mlflow-server`'s command on a free
loopback port over a temporary store, a training asset logging through
MLFLOW_TRACKING_URI=http://..., and the registered model, its `champion` alias and the model
itself read back over HTTP."""

import os
import shlex
import shutil
import signal
import subprocess
import time
import urllib.request

import numpy as np
import pytest

from training.paths import REPO_ROOT

MODEL = "fashion-classifier-dense"


def make_mlflow_server_command(store, port: int) -> list[str]:
    """The server command `make mlflow-server` runs for this store and port, as `make -n`
    prints it."""
    printed = subprocess.run(
        ["make", "-n", "mlflow-server", f"MLFLOW_PORT={port}", f"FASHION_GAN_STORE={store}"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    [line] = [line for line in printed.replace("\\\n", " ").splitlines()
              if "mlflow server" in line]
    return shlex.split(line)


@pytest.fixture
def server(tmp_path, free_port, colour_store):
    """`make mlflow-server` over a store holding a packshots.h5; its http URI and the store."""
    store = tmp_path / "store"
    (store / "datasets").mkdir(parents=True)
    shutil.copy(colour_store, store / "datasets" / "packshots.h5")
    command = make_mlflow_server_command(store, free_port)
    assert command[command.index("--app-name") + 1] == "fashion-gan"
    assert command[command.index("-h") + 1] == "127.0.0.1"
    assert command[command.index("--backend-store-uri") + 1] == \
        f"sqlite:///{store}/mlflow/mlflow.db"
    (store / "mlflow").mkdir()
    proc = subprocess.Popen([*command, "--workers", "1"], cwd=REPO_ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"http://127.0.0.1:{free_port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, f"mlflow server exited with {proc.returncode}"
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                assert time.monotonic() < deadline, "the tracking server did not answer"
                time.sleep(1)
        yield uri, store
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)  # its graceful stop can take 20 s on a busy box; nothing to save
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_a_training_asset_logs_and_registers_through_the_server(server):
    import mlflow
    import torch
    from dagster import DagsterInstance, RunConfig, materialize

    from pipelines.assets.training import ASSETS_BY_NAME, asset_config
    from pipelines.resources import MLflowResource, StorageResource
    from training.tracking import EXPERIMENT

    uri, store = server
    result = materialize(
        [ASSETS_BY_NAME["classifier_dense"]], instance=DagsterInstance.ephemeral(),
        resources={"storage": StorageResource(root=str(store)),
                   "mlflow": MLflowResource(tracking_uri=uri,
                                            artifact_root=str(store / "mlflow" / "artifacts"))},
        run_config=RunConfig(ops={"classifier_dense": asset_config(
            "classifier_dense", steps=2, batch_size=8, hidden=8, label_columns=["color"])}))
    assert result.success
    [event] = result.asset_materializations_for_node("classifier_dense")
    run_id = event.metadata["mlflow_run_id"].value

    previous = mlflow.get_tracking_uri()
    try:
        client = mlflow.MlflowClient(uri)
        # artifacts go through the server, which keeps them under its destination in the store
        experiment = client.get_experiment_by_name(EXPERIMENT)
        assert experiment.artifact_location.startswith("mlflow-artifacts:")
        run = client.get_run(run_id)
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")
        assert {a.path for a in client.list_artifacts(run_id)} >= {
            "checkpoint", "losses.jsonl", "classifier_weights"}
        on_disk = store / "mlflow" / "artifacts" / experiment.experiment_id / run_id
        assert (on_disk / "artifacts" / "losses.jsonl").is_file()

        [version] = client.search_model_versions(f"name = '{MODEL}'")
        champion = client.get_model_version_by_alias(MODEL, "champion")
        assert champion.version == version.version == "1" and champion.run_id == run_id
        assert champion.tags["kind"] == "classifier"
        assert 0.0 <= float(champion.tags["mean_heldout_accuracy"]) <= 1.0
        assert event.metadata["model"].value == f"{MODEL} version 1"

        mlflow.set_tracking_uri(uri)
        model = mlflow.pytorch.load_model(f"models:/{MODEL}@champion")
        logits = model(torch.from_numpy(np.zeros((2, 3, 64, 64), np.float32)))
        assert logits.shape == (2, 2)  # black or white
    finally:
        mlflow.set_tracking_uri(previous)
