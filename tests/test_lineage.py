"""Lineage tags: a registered version names the Dagster run, the git commit, the catalogue
snapshot and the dataset that made it, read back from a real sqlite MLflow store after a tiny
Dagster materialize; and the device helper the stage reports in its metadata."""

import shutil
import subprocess

import pandas as pd

from training.leaderboard import file_digest
from training.lineage import git_state
from training.paths import REPO_ROOT
from training.runtime import device


def test_git_state_outside_a_clone_is_unknown(tmp_path):
    assert git_state(tmp_path) == {"git_commit": "unknown", "git_dirty": "unknown"}


def test_device_is_cuda_when_present_unless_overridden(monkeypatch):
    import torch

    monkeypatch.delenv("FASHION_GAN_DEVICE", raising=False)
    assert device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("FASHION_GAN_DEVICE", "cpu")
    assert device() == torch.device("cpu")


def test_a_registered_version_carries_its_lineage(tmp_path, colour_store):
    import mlflow
    from dagster import DagsterInstance, RunConfig, materialize

    from pipelines.assets.training import ASSETS_BY_NAME, asset_config
    from pipelines.resources import MLflowResource, StorageResource

    store = tmp_path / "store"
    (store / "datasets").mkdir(parents=True)
    (store / "catalogue").mkdir()
    shutil.copy(colour_store, store / "datasets" / "packshots.h5")
    catalogue = store / "catalogue" / "catalogue.parquet"
    pd.DataFrame({"product_id": ["a", "b", "c"], "color": ["black", "white", "black"]}
                 ).to_parquet(catalogue)
    uri = f"sqlite:///{store}/mlflow/mlflow.db"
    result = materialize(
        [ASSETS_BY_NAME["classifier_dense"]], instance=DagsterInstance.ephemeral(),
        resources={"storage": StorageResource(root=str(store)),
                   "mlflow": MLflowResource(tracking_uri=uri,
                                            artifact_root=str(store / "mlflow" / "artifacts"))},
        run_config=RunConfig(ops={"classifier_dense": asset_config(
            "classifier_dense", steps=2, batch_size=8, hidden=8, label_columns=["color"])}))
    assert result.success
    [event] = result.asset_materializations_for_node("classifier_dense")
    assert event.metadata["device"].value == device().type  # the stage says where it ran

    [version] = mlflow.MlflowClient(uri).search_model_versions(
        "name = 'fashion-classifier-dense'")
    tags = version.tags
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert tags["dagster_run_id"] == result.run_id
    assert tags["git_commit"] == head and tags["git_dirty"] in ("true", "false")
    assert tags["catalogue_rows"] == "3"
    assert tags["catalogue_hash"] == file_digest(catalogue)
    assert tags["dataset_path"] == str(store / "datasets" / "packshots.h5")
    assert tags["dataset_digest"] == file_digest(colour_store)
