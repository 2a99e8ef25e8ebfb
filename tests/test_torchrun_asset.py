"""Training on several processes through the asset: nproc_per_node=2 launches torchrun (gloo,
two CPU processes) with the family's CLI, and the asset logs, evaluates and registers its run
exactly as an in-process one; the registered model loads and samples."""

import shutil
from pathlib import Path

import pytest

from training.family import load_families


@pytest.mark.parametrize("profile", ["demo", "full"])
def test_cli_args_rebuild_every_familys_config(profile):
    """The torchrun child trains the asset's config: every field survives the CLI."""
    from training.cli import config_from_args, parser
    from training.launch import cli_args

    for family in load_families().values():
        if profile not in family.Config.PROFILES:
            continue
        cfg = family.Config.profile(profile, seed=3, bf16=False)
        args = parser().parse_args(cli_args(family, cfg, "d.h5", "out", profile))
        assert config_from_args(family, args) == cfg, family.name


def test_gan_asset_on_two_processes_registers_a_loadable_model(tmp_path, colour_store):
    import mlflow
    import torch
    from dagster import DagsterInstance, RunConfig, materialize

    from pipelines.assets.training import ASSETS_BY_NAME, asset_config
    from pipelines.resources import MLflowResource, StorageResource
    from training.classifier import save_classifier, train_classifier

    store = tmp_path / "store"
    (store / "datasets").mkdir(parents=True)
    shutil.copy(colour_store, store / "datasets" / "packshots.h5")
    # the metrics' feature space (the registry has no classifier yet)
    save_classifier(train_classifier(colour_store, steps=2, batch_size=8, width=8),
                    store / "models" / "attribute_classifier.pt", 8)
    uri = f"sqlite:///{store}/mlflow/mlflow.db"
    result = materialize(
        [ASSETS_BY_NAME["gan"]], instance=DagsterInstance.ephemeral(),
        resources={"storage": StorageResource(root=str(store)),
                   "mlflow": MLflowResource(tracking_uri=uri,
                                            artifact_root=str(store / "mlflow" / "artifacts"))},
        run_config=RunConfig(ops={"gan": asset_config(
            "gan", backbone="infogan", steps=4, batch_size=8, log_every=1, nz=8,
            eval_samples=10, nproc_per_node=2)}))
    assert result.success
    [event] = result.asset_materializations_for_node("gan")
    assert (Path(event.metadata["run_dir"].value) / "torchrun.log").is_file()

    client = mlflow.MlflowClient(uri)
    run = client.get_run(event.metadata["mlflow_run_id"].value)
    assert run.data.params["world_size"] == "2" and run.data.params["backbone"] == "infogan"
    # both ranks trained in the arithmetic rank 0 chose, and the run says which and why
    assert event.metadata["arithmetic"].value == run.data.tags["arithmetic"]
    assert run.data.tags["arithmetic"].split(":")[0] in ("bf16", "fp32")
    history = client.get_metric_history(run.info.run_id, "d_loss")
    assert [m.step for m in history] == [0, 1, 2, 3]  # losses.jsonl, one row per step
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {
        "checkpoint", "losses.jsonl"}

    [version] = client.search_model_versions("name = 'fashion-gan'")
    assert version.run_id == run.info.run_id
    assert event.metadata["model"].value == "fashion-gan version 1"
    previous = mlflow.get_tracking_uri()
    try:
        mlflow.set_tracking_uri(uri)
        generator = mlflow.pytorch.load_model("models:/fashion-gan/1")
    finally:
        mlflow.set_tracking_uri(previous)
    images = generator(torch.randn(3, int(version.tags["nz"]), 1, 1))
    assert images.shape[0] == 3 and images.abs().max() <= 1
