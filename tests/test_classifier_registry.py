"""Classifiers as registered models: the attribute classifier as fashion-classifier-multihead,
the GAN metrics' classifier loaded from the registry (the file only when it has none, said in
the log) and named on every score, the PGD of the sweep, the registered classifiers' sweep and
the classifier_robustness asset. Real MLflow on sqlite, real Dagster, tiny stores."""

import numpy as np
import pandas as pd
import pytest
import torch

from pipelines.processing.h5store import write_image_store
from training.families.classifier import (
    Classifier,
    ClassifierConfig,
    champion_classifier,
    registered_classifiers,
)
from training.robustness import (
    correct_counts,
    fgsm,
    heldout_images,
    pgd,
    pgd_counts,
    sweep_registered,
)
from training.tracking import mlflow_run

SHADES = {"black": (20, 20, 20), "red": (200, 30, 30)}


def packshot_store(path, n: int, size: int, seed: int = 0):
    """Packshots on white: a garment square, its colour (black/red) and its place (top or
    bottom half: the `category`) the labels; every 7th has no category."""
    rng = np.random.default_rng(seed)
    colour, place = rng.integers(0, 2, n), rng.integers(0, 2, n)
    images = np.full((n, size, size, 3), 255, np.uint8)
    half, w = size // 2, size // 4
    for i in range(n):
        rows = slice(2, half - 2) if place[i] == 0 else slice(half + 2, size - 2)
        images[i, rows, w:size - w] = list(SHADES.values())[colour[i]]
    labels = np.stack([colour == 0, colour == 1, place == 0, place == 1], 1).astype(np.uint8)
    labels[::7, 2:] = 0
    return write_image_store(path, [f"P{i}" for i in range(n)], images, {"labels": labels},
                             attrs={"label_names": ["color_black", "color_red", "category_top",
                                                    "category_bottom"]})


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    return packshot_store(tmp_path_factory.mktemp("small") / "packshots.h5", 100, 16)


def tiny(**kw) -> ClassifierConfig:
    return ClassifierConfig(**{"arch": "dense", "label_columns": ["color", "category"],
                               "steps": 40, "batch_size": 16, "log_every": 10, "bf16": False,
                               "hidden": 16, "lr": 3e-3, "flip": False, "sample_every": 10 ** 6,
                               "checkpoint_every": 10 ** 6, **kw})


def register_family_version(store, out, uri, root, **kw) -> tuple[str, Classifier]:
    """Train a classifier on the frame and register it as the classifier assets do."""
    from training.datasets import open_dataset
    from training.families.classifier import register_classifier, set_classifier_champion
    from training.loop import train

    cfg = tiny(**kw)
    summary = train("classifier", cfg, store, out)
    family = Classifier.restore(cfg, open_dataset(store, **Classifier.data_options(cfg)), out)
    import mlflow

    with mlflow_run(f"classifier-{cfg.arch}", uri, root):
        version = register_classifier(out / "classifier.pt", {
            **family.registry_tags(), "data": "packshots",
            "mean_heldout_accuracy": str(summary["mean_heldout_accuracy"])})
    set_classifier_champion(mlflow.MlflowClient(uri), f"fashion-classifier-{cfg.arch}")
    return version, family


# ----- PGD of the sweep ------------------------------------------------------------------------
def test_the_attack_direction_of_an_image_does_not_depend_on_its_batch(small_store):
    from training.datasets import open_dataset
    from training.models.classifier import build_classifier

    torch.manual_seed(0)
    net = build_classifier("dense", {"color": 2, "category": 2}, 3, 16, hidden=8).eval()
    data = open_dataset(small_store, label_columns=("color", "category"))
    x = data.images[:12].float() / 127.5 - 1
    t = {c: data.label_index[:12, i] for i, c in enumerate(data.label_columns)}
    batch = fgsm(net, x, t, 0.1)
    alone = torch.cat([fgsm(net, x[i:i + 1], {c: v[i:i + 1] for c, v in t.items()}, 0.1)
                       for i in range(12)])
    assert torch.equal(batch, alone)


def test_pgd_counts_is_at_least_as_strong_as_the_final_iterate(registry, small_store):
    from training.datasets import open_dataset

    net = registry["families"]["dense"][1].classifier().eval()
    data = open_dataset(small_store, label_columns=("color", "category"))
    x = data.images.float() / 127.5 - 1
    t = {c: data.label_index[:, i] for i, c in enumerate(data.label_columns)}
    for eps in (0.02, 0.1, 0.3):
        final = correct_counts(net, pgd(net, x, t, eps, 4,
                                        generator=torch.Generator().manual_seed(1)), t)
        anytime = pgd_counts(net, x, t, eps, 4, generator=torch.Generator().manual_seed(1))
        assert set(anytime) == {"color", "category"}
        for c in anytime:
            assert anytime[c][1] == final[c][1]  # the same known labels
            assert anytime[c][0] <= final[c][0], (eps, c, anytime, final)
    assert pgd_counts(net, x, t, 0.0) == correct_counts(net, x, t)
    # at a large ε every head falls
    assert sum(r for r, _ in pgd_counts(net, x, t, 0.5, 4).values()) < \
        sum(r for r, _ in correct_counts(net, x, t).values())


# ----- the registry ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def registry(small_store, tmp_path_factory):
    """Two dense versions (a plain and an adversarially trained one, which trails) and a conv
    version, registered in a sqlite MLflow store."""
    import mlflow

    tmp = tmp_path_factory.mktemp("registry")
    uri, root = f"sqlite:///{tmp / 'mlflow.db'}", str(tmp / "artifacts")
    families = {}
    for name, kw in (("dense", {}), ("dense_adv", {"adversarial": "fgsm", "adv_eps": 0.3,
                                                   "steps": 5}),
                     ("conv", {"arch": "conv", "steps": 5, "hidden": 8})):
        families[name] = register_family_version(small_store, tmp / name, uri, root, **kw)
    return {"client": mlflow.MlflowClient(uri), "uri": uri, "root": root, "tmp": tmp,
            "families": families}


def test_registered_classifiers_are_each_champion_and_latest(registry):
    client = registry["client"]
    found = {(v.name, v.version, v.champion) for v in registered_classifiers(client)}
    dense_champion = str(client.get_model_version_by_alias("fashion-classifier-dense",
                                                           "champion").version)
    assert ("fashion-classifier-conv", "1", True) in found
    assert ("fashion-classifier-dense", dense_champion, True) in found
    assert ("fashion-classifier-dense", "2", dense_champion == "2") in found
    assert len(found) == 2 + (dense_champion != "2")
    tags = client.get_model_version("fashion-classifier-dense", "2").tags
    assert (tags["seed"], tags["holdout"], tags["heldout_of"], tags["adversarial"]) == (
        "0", "0.2", "labelled", "fgsm")


def test_heldout_images_are_the_ones_the_classifier_held_out(registry, small_store):
    _, family = registry["families"]["dense"]
    tags = registry["client"].get_model_version("fashion-classifier-dense", "1").tags
    values = {c: family.data.label_values[c] for c in family.columns}
    s = heldout_images(tags, small_store, values, 1000)
    images, targets = family.heldout()
    assert torch.equal(s.images, images) and s.split.startswith("held out")
    assert all(torch.equal(s.targets[c], targets[c]) for c in targets)
    # no holdout tags: every labelled image, and the split says so
    s = heldout_images({}, small_store, values, 1000)
    assert len(s.images) == 100 and "no holdout" in s.split


def test_the_metrics_classifier_is_the_registry_champion_else_the_file(registry, tmp_path):
    from training.classifier import save_classifier, train_classifier
    from training.leaderboard import METRIC_HEADS, metrics_classifier

    client, lines = registry["client"], []
    name, version = champion_classifier(client, columns=METRIC_HEADS)
    judge = metrics_classifier(client, tmp_path / "missing.pt", log=lines.append)
    assert judge.name == f"{name} v{version}" and len(judge.id) == 16
    assert "champion" in lines[-1] and name in lines[-1]
    assert judge.net.features(torch.zeros(2, 3, 64, 64)).shape[0] == 2
    # a registry without classifiers: the file, and the log says so
    import mlflow

    empty = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'empty.db'}")
    store = packshot_store(tmp_path / "p.h5", 40, 16)
    fallback = save_classifier(train_classifier(store, steps=2, width=4), tmp_path / "a.pt", 4)
    judge = metrics_classifier(empty, fallback, log=lines.append)
    assert judge.name == "file a.pt" and "falling back to the file" in lines[-1]
    with pytest.raises(ValueError, match="no champion .* and no classifier file") as e:
        metrics_classifier(empty, tmp_path / "gone.pt")
    assert "\n" not in str(e.value)


def test_scores_name_their_classifier_and_another_version_rescores(registry, small_store,
                                                                   tmp_path):
    import mlflow

    from training.datasets import H5ImageDataset
    from training.leaderboard import markdown, metrics_classifier, score_registered
    from training.models.dcgan import define_G
    from training.tracking import log_generator

    client = registry["client"]
    with mlflow_run("gen", registry["uri"], registry["root"]):
        log_generator(define_G(8, 4), "dcgan", 8, {"variant": "baseline", "kind": "sampler"})
    judge = metrics_classifier(client, tmp_path / "none.pt")
    data, cache = H5ImageDataset(small_store), tmp_path / "scores.parquet"

    def score(j):
        return score_registered(client, data, j.net, j.values, 20, 5, 0, None, cache, j.id,
                                "d", classifier_name=j.name)

    table, counts = score(judge)
    assert counts == {"scored": 1, "cached": 0}
    assert list(table["classifier"]) == [judge.name]
    assert judge.name in markdown(table, {})
    assert score(judge)[1] == {"scored": 0, "cached": 1}
    # a new champion version: every GAN is scored again, the rows name it
    _, family = registry["families"]["conv"]
    with mlflow_run("classifier-conv", registry["uri"], registry["root"]):
        from training.families.classifier import register_classifier

        version = register_classifier(registry["tmp"] / "conv" / "classifier.pt",
                                      {**family.registry_tags(), "data": "packshots",
                                       "mean_heldout_accuracy": "1.0"})
    client.set_registered_model_alias("fashion-classifier-conv", "champion", version)
    newer = metrics_classifier(client, tmp_path / "none.pt")
    assert newer.name == f"fashion-classifier-conv v{version}"
    table, counts = score(newer)
    assert counts == {"scored": 1, "cached": 0} and list(table["classifier"]) == [newer.name]
    client.set_registered_model_alias("fashion-classifier-conv", "champion", "1")
    mlflow.MlflowClient(registry["uri"]).delete_model_version("fashion-classifier-conv", version)


# ----- the registered classifiers' sweep -------------------------------------------------------
def test_sweep_registered_on_packshots_and_person_crops(registry, small_store, tmp_path):
    from pipelines.processing.segmentation import CLASS_NAMES, SIZE, write_store
    from training.robustness import write_robustness

    # person crops of four products of the store and one it does not know
    ids = ["P0", "P1", "P2", "P3", "Q9"]
    images = np.full((5, SIZE, SIZE, 3), 200, np.uint8)
    labels = np.zeros((5, SIZE, SIZE), np.uint8)
    labels[:, 20:70, 30:100] = CLASS_NAMES.index("upper_clothes")
    labels[:, 0:20, 50:80] = CLASS_NAMES.index("face")
    segmentation = write_store(tmp_path / "segmentation.h5", ids, images, labels)
    lines = []
    result = sweep_registered(registry["client"], lambda data: small_store, segmentation, n=50,
                              eps_list=(0, 0.1), pgd_steps=2, log=lines.append)
    table = result.table
    assert set(table["data"]) == {"packshots", "person_crops"}
    assert set(table["attack"]) == {"fgsm", "fgsm_garment", "pgd"}
    crops = table[(table["data"] == "person_crops") & (table["head"] == "color")]
    assert set(crops["n"]) == {4}  # Q9 has no labels
    assert {"conv v1 (champion)", "conv v1 (champion), person crops"} <= set(table["model"])
    at_zero = table[table["eps"] == 0].groupby(["model", "head"])["accuracy"].nunique()
    assert (at_zero == 1).all()
    assert len(result.timings) == len(set(table["model"])) and len(lines) == len(result.timings)
    files = write_robustness(result, tmp_path / "out")
    assert files["png"].stat().st_size > 5000 and "ε 0.1" in files["md"].read_text()


def test_sweep_bad_input_is_one_line(registry, small_store, idx_train_only, tmp_path):
    import mlflow

    client = registry["client"]
    for kwargs, said in (({"eps_list": (0, 1.5)}, r"eps must be in \[0, 1\]"),
                         ({"eps_list": (-0.1,)}, r"eps must be in \[0, 1\]"),
                         ({"heads": ["sleeve"]}, "no head 'sleeve'; the classifier .* has: "
                                                 "color, category")):
        with pytest.raises(ValueError, match=said) as e:
            sweep_registered(client, lambda data: small_store, n=4, **kwargs)
        assert "\n" not in str(e.value)
    # a Fashion-MNIST version whose folder has the train files but not the test files
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte") as e:
        heldout_images({"test_data": str(idx_train_only)}, idx_train_only,
                       {"class": [str(i) for i in range(10)]}, 10)
    assert "\n" not in str(e.value)
    empty = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(ValueError, match=r"no fashion-classifier-\* version in the registry"):
        sweep_registered(empty, lambda data: small_store)


@pytest.fixture
def idx_train_only(tmp_path):
    import struct

    folder = tmp_path / "fm"
    folder.mkdir()
    labels = (np.arange(10) % 10).astype(np.uint8)
    images = np.zeros((10, 28, 28), np.uint8)
    for name, array in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte",
                                                              labels)):
        header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
        (folder / name).write_bytes(header + struct.pack(f">{array.ndim}I", *array.shape)
                                    + array.tobytes())
    return folder


# ----- the pipeline ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """A store with 64x64 packshots and person crops in the segmentation store, Dagster
    resources on it and a local instance (so pictures are served in place)."""
    from dagster import DagsterInstance

    from pipelines.processing.segmentation import CLASS_NAMES, SIZE, write_store
    from pipelines.resources import MLflowResource, StorageResource

    root = tmp_path_factory.mktemp("store")
    (root / "datasets").mkdir()
    packshot_store(root / "datasets" / "packshots.h5", 60, 64)
    labels = np.zeros((6, SIZE, SIZE), np.uint8)
    labels[:, 30:90, 40:90] = CLASS_NAMES.index("lower_clothes")
    write_store(root / "datasets" / "segmentation.h5", [f"P{i}" for i in range(6)],
                np.full((6, SIZE, SIZE, 3), 230, np.uint8), labels)
    resources = {"storage": StorageResource(root=str(root)),
                 "mlflow": MLflowResource(tracking_uri=f"sqlite:///{root}/mlflow/mlflow.db",
                                          artifact_root=str(root / "mlflow" / "artifacts"))}
    instance = DagsterInstance.local_temp(str(tmp_path_factory.mktemp("dagster")))
    return {"root": root, "resources": resources, "instance": instance,
            "uri": f"sqlite:///{root}/mlflow/mlflow.db"}


def metadata(result, asset: str) -> dict:
    [event] = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in event.metadata.items()}


def test_classifier_assets_register_and_the_robustness_asset_sweeps_them(pipeline):
    import mlflow
    from dagster import RunConfig, materialize

    from pipelines.assets.training import (
        ASSETS_BY_NAME,
        RobustnessConfig,
        asset_config,
        attribute_classifier,
        classifier_robustness,
    )
    from pipelines.assets.training import (
        ClassifierConfig as AttributeConfig,
    )

    result = materialize(
        [attribute_classifier, ASSETS_BY_NAME["classifier_dense"], classifier_robustness],
        resources=pipeline["resources"], instance=pipeline["instance"],
        run_config=RunConfig(ops={
            "attribute_classifier": AttributeConfig(steps=3, width=4),
            "classifier_dense": asset_config("classifier_dense", steps=3, batch_size=8,
                                             hidden=8, label_columns=["color", "category"]),
            "classifier_robustness": RobustnessConfig(eps=[0, 0.05, 0.2], pgd_steps=2)}))
    assert result.success
    client = mlflow.MlflowClient(pipeline["uri"])
    champion = client.get_model_version_by_alias("fashion-classifier-multihead", "champion")
    assert str(champion.version) == "1" and champion.tags["heldout_of"] == "all"
    assert champion.tags["label_columns"] == "color,category"
    meta = metadata(result, "attribute_classifier")
    assert meta["model"] == "fashion-classifier-multihead version 1"
    assert meta["champion_version"] == "1"

    meta = metadata(result, "classifier_robustness")
    assert set(meta["classifiers"]) == {
        "multihead v1 (champion)", "multihead v1 (champion), person crops",
        "dense v1 (champion)", "dense v1 (champion), person crops"}
    assert meta["curves_picture"].startswith("![robustness curves](/logs/previews/")
    rows = [line.split("|")[1:3] for line in meta["accuracy"].splitlines()[2:]]
    assert ["multihead v1 (champion)", "pgd"] in [[c.strip() for c in r] for r in rows]
    assert "ε 0.2" in meta["accuracy"] and "sweep_s" in meta["sweep_s"]
    evaluation = pipeline["root"] / "evaluation"
    table = pd.read_csv(evaluation / "robustness.csv")
    assert set(table["data"]) == {"packshots", "person_crops"}
    assert set(table["eps"]) == {0, 0.05, 0.2}
    assert (evaluation / "robustness.png").stat().st_size > 5000
    run = client.get_run(meta["mlflow_run_id"])
    assert "multihead/v1/packshots/pgd_eps_0.2" in run.data.metrics
    assert {a.path for a in client.list_artifacts(run.info.run_id, "robustness")} == {
        "robustness/robustness.csv", "robustness/robustness.md", "robustness/robustness.png"}


def test_the_gan_metrics_load_the_champion_classifier_and_name_it(pipeline):
    import mlflow
    from dagster import RunConfig, materialize

    from pipelines.assets.training import (
        ASSETS_BY_NAME,
        LeaderboardConfig,
        asset_config,
        gan_leaderboard,
    )
    from training.leaderboard import METRIC_HEADS

    client = mlflow.MlflowClient(pipeline["uri"])
    name, version = champion_classifier(client, columns=METRIC_HEADS)
    judge = f"{name} v{version}"
    result = materialize(
        [ASSETS_BY_NAME["dcgan_baseline"], gan_leaderboard], resources=pipeline["resources"],
        instance=pipeline["instance"],
        run_config=RunConfig(ops={
            "dcgan_baseline": asset_config("dcgan_baseline", steps=2, batch_size=4, ngf=8,
                                           ndf=8, repair_steps=2, eval_samples=20),
            "gan_leaderboard": LeaderboardConfig(samples=20)}))
    assert result.success
    meta = metadata(result, "dcgan_baseline")
    assert meta["classifier"] == judge
    run = client.get_run(meta["mlflow_run_id"])
    assert run.data.params["classifier"] == judge and run.data.tags["classifier"] == judge
    board = metadata(result, "gan_leaderboard")
    assert board["classifier"] == judge and judge in board["leaderboard"]
    table = pd.read_csv(pipeline["root"] / "evaluation" / "leaderboard.csv")
    assert list(table["classifier"]) == [judge]
    # the GAN's training run and its leaderboard row are the same computation
    assert table["frechet_distance"][0] == pytest.approx(
        meta["metrics"]["frechet_distance"], rel=1e-4)


def test_the_robustness_asset_refuses_eps_outside_the_unit_range_at_launch(tmp_path):
    from dagster import materialize
    from pydantic import ValidationError

    from pipelines.assets.training import RobustnessConfig, classifier_robustness
    from pipelines.resources import MLflowResource, StorageResource

    with pytest.raises(ValidationError, match=r"eps must be in \[0, 1\] \(a fraction of the "
                                              r"pixel range\), got 1\.5"):
        RobustnessConfig(eps=[0, 1.5])
    assert RobustnessConfig(eps=[0, 1]).eps == [0.0, 1.0]
    store = tmp_path / "store"
    with pytest.raises(ValidationError, match=r"eps must be in \[0, 1\].*got -0\.1"):
        materialize([classifier_robustness], resources={
            "storage": StorageResource(root=str(store)),
            "mlflow": MLflowResource(tracking_uri=f"sqlite:///{store}/m.db",
                                     artifact_root=str(store / "a"))},
            run_config={"ops": {"classifier_robustness": {"config": {"eps": [-0.1, 0.1]}}}})
    assert not store.exists()  # refused before anything ran


def test_the_robustness_asset_runs_in_train_job_only():
    from dagster import AssetKey

    from pipelines.definitions import defs

    key = AssetKey("classifier_robustness")
    assert key in defs.resolve_job_def("train_job").asset_layer.executable_asset_keys
    assert key not in defs.resolve_job_def("full_pipeline").asset_layer.executable_asset_keys
