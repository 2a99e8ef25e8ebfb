"""The person detector as a registered model: fashion-person-detector, its variant and training
data as tags, `champion` by held-out IoU, loaded back without unpickling; the leaderboard does
not try to sample it. Real MLflow on sqlite, real Dagster."""

import pytest
import torch

from pipelines.processing.person_detector import (
    REGISTERED,
    build_detector,
    detector_tags,
    load_registered_detector,
    register_detector,
    save_detector,
    set_detector_champion,
)
from training.tracking import mlflow_run


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    return save_detector(build_detector("demo_small"), "demo_small", tmp_path / "det.pt",
                         {"trained_on": "demo shop boxes", "train_photos": 12, "steps": 3})


def test_detector_versions_with_a_champion_by_heldout_iou(weights, tmp_path):
    import mlflow

    uri, root = f"sqlite:///{tmp_path / 'm.db'}", str(tmp_path / "artifacts")
    meta = {"trained_on": "demo shop boxes", "train_photos": 12, "steps": 3,
            "variant": "demo_small"}
    for iou in (0.3, 0.6, None):
        scores = {} if iou is None else {"heldout_mean_iou": iou, "heldout_recall": 0.9,
                                         "heldout_front_photos": 5}
        with mlflow_run("person-detector", uri, root):
            register_detector(weights, detector_tags(meta, scores, None))
    client = mlflow.MlflowClient(uri)
    tags = client.get_model_version(REGISTERED, "2").tags
    assert (tags["kind"], tags["variant"], tags["training_data"], tags["train_photos"]) == (
        "detector", "demo_small", "demo shop boxes", "12")
    assert tags["heldout_mean_iou"] == "0.6"
    assert "heldout_mean_iou" not in client.get_model_version(REGISTERED, "3").tags
    assert set_detector_champion(client) == "2"
    model, loaded = load_registered_detector(client)
    assert loaded["variant"] == "demo_small" and loaded["train_photos"] == 12
    original = torch.load(weights, weights_only=True)["state_dict"]
    assert all(torch.equal(v, original[k]) for k, v in model.state_dict().items())
    assert load_registered_detector(client, "3")[1]["variant"] == "demo_small"

    # the leaderboard passes over it (a detector is no sampler)
    from training.datasets import H5ImageDataset
    from training.leaderboard import score_registered
    from training.models.classifier import define_classifier

    store = tmp_path / "p.h5"
    import numpy as np

    from pipelines.processing.h5store import write_image_store

    write_image_store(store, ["a", "b"], np.zeros((2, 64, 64, 3), np.uint8), {})
    lines = []
    table, counts = score_registered(client, H5ImageDataset(store),
                                     define_classifier({"color": 2}, 4).eval(),
                                     {"color": ["a", "b"]}, 8, 5, 0, None,
                                     tmp_path / "scores.parquet", "c", "d", log=lines.append)
    assert counts == {"scored": 0, "cached": 0} and table.empty
    assert any("is a detector: not sampled" in line for line in lines)


def test_tags_say_what_a_detector_learnt_from():
    coco = detector_tags({"variant": "resnet50_fpn", "source": "torchvision COCO_V1"}, {},
                         "coco")
    assert coco == {"kind": "detector", "variant": "resnet50_fpn",
                    "training_data": "torchvision COCO_V1"}
    given = detector_tags({"variant": "demo_small"}, {}, "/data/weights/mine.pt")
    assert given["training_data"] == "file mine.pt"


def test_the_detector_asset_logs_and_registers_its_weights(weights, tmp_path):
    import mlflow
    from dagster import materialize

    from pipelines.assets.model_images import person_detector
    from pipelines.resources import MLflowResource, StorageResource

    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow' / 'mlflow.db'}"
    result = materialize(
        [person_detector], resources={
            "storage": StorageResource(root=str(tmp_path / "store")),
            "mlflow": MLflowResource(tracking_uri=uri,
                                     artifact_root=str(tmp_path / "store" / "mlflow" / "a"))},
        run_config={"ops": {"person_detector": {"config": {"weights": str(weights)}}}})
    assert result.success
    [event] = result.asset_materializations_for_node("person_detector")
    meta = {k: v.value for k, v in event.metadata.items()}
    assert meta["model"] == f"{REGISTERED} version 1"
    assert meta["training_data"] == "demo shop boxes"
    assert meta["champion_version"].startswith("none")  # no demo truth: no held-out IoU
    client = mlflow.MlflowClient(uri)
    version = client.get_model_version(REGISTERED, "1")
    assert version.tags["variant"] == "demo_small" and version.run_id == meta["mlflow_run_id"]
    run = client.get_run(meta["mlflow_run_id"])
    assert run.info.run_name == "person-detector" and run.data.params["variant"] == "demo_small"
    assert (tmp_path / "store" / "models" / "person_detector.pt").exists()
