"""The demo shop through Dagster in-process: crawl on loopback -> images -> catalogue -> checks."""

import json

import h5py
import pandas as pd
import pytest
from dagster import DagsterInstance, RunConfig, build_sensor_context

from pipelines.assets.model_images import CropConfig, DetectorConfig
from pipelines.assets.training import (
    ASSETS_BY_NAME,
    ClassifierConfig,
    LeaderboardConfig,
    asset_config,
    gan_leaderboard,
)
from pipelines.definitions import build_definitions, catalogue_after_scrape
from pipelines.processing.catalogue import THESIS_COLUMNS
from pipelines.processing.images import decodes
from pipelines.resources import CrawlResource, MLflowResource, StorageResource
from training.families.dcgan import VARIANTS


def metadata(result, asset: str) -> dict:
    [event] = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in event.metadata.items()}


def checks_passed(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    defs = build_definitions(
        storage=StorageResource(root=str(store)),
        crawl=CrawlResource(demo_products=30, demo_seed=0, demo_port=port),
        mlflow=MLflowResource(tracking_uri=f"sqlite:///{store}/mlflow/mlflow.db",
                              artifact_root=str(store / "mlflow" / "artifacts")))
    instance = DagsterInstance.ephemeral()
    first = defs.resolve_job_def("full_pipeline").execute_in_process(
        instance=instance, run_config=FAST)
    return {"store": store, "defs": defs, "instance": instance, "first": first}


# The detector trains for a few steps only (quality is measured in benchmarks/, not here), so
# the crops accept any score.
FAST = RunConfig(ops={
    "person_detector": DetectorConfig(steps=4, batch_size=2),
    "person_crops": CropConfig(min_score=0.0),
    "attribute_classifier": ClassifierConfig(steps=3, width=8),
    "gan_leaderboard": LeaderboardConfig(samples=40),
    # the demo set, one model of each kind
    # scored by their assets with the leaderboard's 40 samples: the leaderboard takes the
    # scores from its cache; train_job's extras below score 60, so the leaderboard scores them
    "gan": asset_config("gan", steps=2, batch_size=4, ngf=8, ndf=8, eval_samples=40),
    "cgan": asset_config("cgan", steps=2, batch_size=4, ngf=8, ndf=8, eval_samples=40),
    "pix2pix_packshot_to_person": asset_config("pix2pix_packshot_to_person", steps=2,
                                               batch_size=4, ngf=4, ndf=4, eval_samples=10)})
# what train_job adds beside the demo set, tiny
TRAIN_JOB_EXTRA = {
    "bigan": asset_config("bigan", steps=2, batch_size=4, ngf=8, nef=8, ndf=8,
                          eval_samples=60),
    "wgan_gp": asset_config("wgan_gp", steps=2, batch_size=4, ngf=8, ndf=8, eval_samples=60),
    **{f"dcgan_{v}": asset_config(f"dcgan_{v}", steps=2, batch_size=4, ngf=8, ndf=8,
                                  repair_steps=3, eval_samples=60)
       for v in VARIANTS}}


@pytest.fixture(scope="module")
def extra(env):
    """train_job's families beside the demo set (the three DCGAN variants, BiGAN, WGAN-GP)
    through their generated assets, then the leaderboard, in the same store and registry."""
    from dagster import materialize

    resources = {k: env["defs"].resources[k] for k in ("storage", "mlflow")}
    return materialize(
        [*(ASSETS_BY_NAME[name] for name in TRAIN_JOB_EXTRA), gan_leaderboard],
        resources=resources, instance=env["instance"],
        run_config=RunConfig(ops={**TRAIN_JOB_EXTRA,
                                  "gan_leaderboard": LeaderboardConfig(samples=40)}))


def test_full_pipeline_on_demo(env):
    store, first = env["store"], env["first"]
    assert first.success
    raw = metadata(first, "raw_products")
    # 30 products: one 404s and one has a truncated packshot; both are counted, not fatal
    assert raw["products"] == 28
    drops = raw["drop_reasons"]
    assert drops["http_404"] == 1 and drops["packshot_download_failed"] == 1
    assert drops["listed_twice"] == 1 and drops["model_photo_failed"] == 1
    assert drops["retried_requests"] >= 1  # the listing that answered 500 once
    assert raw["images_downloaded"] > 28 * 3
    # fetched images minus the two truncated JPEGs, which are fetched but never stored
    assert len(list((store / "raw" / "demo" / "images" / "full").glob("*.jpg"))) == \
        raw["images_downloaded"] - 2
    assert (store / "raw" / "demo" / "truth.json").exists()

    cat = pd.read_csv(store / "catalogue" / "catalogue.csv", sep=";")
    assert list(cat.columns[:len(THESIS_COLUMNS)]) == THESIS_COLUMNS
    assert len(cat) == 28 and cat["id"].is_unique
    assert len(pd.read_parquet(store / "catalogue" / "catalogue.parquet")) == 28
    for path in cat["img_path"]:
        assert decodes(store / "catalogue" / "images" / path)
    labels = pd.read_csv(store / "catalogue" / "img_attr.csv", sep=";")
    assert labels.shape == (28, 43)
    splits = pd.read_csv(store / "catalogue" / "splits.csv", sep=";")
    assert set(splits["id"]) == set(cat["id"])

    with h5py.File(store / "datasets" / "packshots.h5") as f:
        assert f["images"].shape == (28, 64, 64, 3) and f["labels"].shape == (28, 42)
        assert list(f.attrs["label_names"])[0] == "category_blouses"
        assert f["split"].shape == (28,)
    checks = checks_passed(first)
    assert len(checks) == 11 and all(checks.values()), checks  # paired_images_arrays too
    meta = metadata(first, "catalogue")
    assert meta["rows"] == 28 and meta["preview"].startswith("![packshots](data:image/jpeg")


def test_model_image_stages_on_demo(env):
    store, first = env["store"], env["first"]
    fronts = pd.read_parquet(store / "model_images" / "front_model_images.parquet")
    assert list(fronts.columns) == ["id", "image_path", "image_url", "cluster", "distance"]
    assert len(fronts) == 28 and fronts["id"].is_unique
    assert all((store / p).exists() for p in fronts["image_path"])
    meta = metadata(first, "front_model_images")
    assert meta["demo_front_accuracy"] >= 0.8 and meta["products"] == 28

    detector = metadata(first, "person_detector")
    assert detector["variant"] == "demo_small" and detector["steps"] == 4
    assert (store / "models" / "person_detector.pt").exists()

    crops = metadata(first, "person_crops")
    with h5py.File(store / "datasets" / "person_crops.h5") as f:
        n = len(f["ids"])
        assert f["images"].shape == (n, 64, 64, 3) and f["images"].dtype == "uint8"
        assert f["boxes"].shape == (n, 4) and f["scores"].shape == (n,)
    assert n == crops["crops"] and n + sum(crops["drop_reasons"].values()) == 28

    seg = metadata(first, "segmentation_store")
    with h5py.File(store / "datasets" / "segmentation.h5") as f:
        assert f["labels"].shape == (28, 128, 128) and f["coarse"].shape == (28, 8, 8)
    assert seg["samples"] == 28 and seg["label_bytes_per_sample"] * 50 < 7 * 128 * 128 * 4


def test_full_pipeline_trains_one_model_of_each_kind(env):
    """The demo set: a sampler (GAN), a conditional sampler (CGAN), a translator
    (pix2pix packshot -> person, on the paired store full_pipeline builds) beside the
    attribute classifier; each registered with a champion. train_job trains the rest."""
    import mlflow

    store, first = env["store"], env["first"]
    trained = {e.asset_key.to_user_string() for e in first.get_asset_materialization_events()}
    assert {"attribute_classifier", "paired_images", "gan", "cgan",
            "pix2pix_packshot_to_person"} <= trained
    assert not trained & {"dcgan_baseline", "dcgan_augment", "dcgan_symmetric", "bigan",
                          "wgan_gp"}
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store}/mlflow/mlflow.db")
    kinds = {}
    for model in ("fashion-gan", "fashion-cgan", "fashion-pix2pix",
                  "fashion-classifier-multihead"):
        champion = client.get_model_version_by_alias(model, "champion")
        kinds[model] = champion.tags["kind"]
    assert set(kinds.values()) == {"sampler", "conditional", "translator", "classifier"}
    board = metadata(first, "translator_leaderboard")
    assert set(board["champions"]) == {"fashion-pix2pix"}
    assert "pix2pix" in (store / "evaluation" / "translators.md").read_text()


def test_dcgan_runs_in_mlflow(env, extra):
    import mlflow

    store = env["store"]
    assert extra.success
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store}/mlflow/mlflow.db")
    versions = client.search_model_versions("name='fashion-dcgan'")
    assert sorted(v.tags["variant"] for v in versions) == sorted(VARIANTS)
    for variant in VARIANTS:
        meta = metadata(extra, f"dcgan_{variant}")
        run = client.get_run(meta["mlflow_run_id"])
        assert run.data.params["variant"] == variant and run.data.params["steps"] == "2"
        history = client.get_metric_history(run.info.run_id, "g_loss_flip")
        assert [m.step for m in history] == [0, 1]  # per-step losses, flip terms included
        assert {"symmetry_error_real", "symmetry_error_generated", "symmetry_error_repaired",
                "flip_gap",
                "flip_inversion_reconstruction_error", "frechet_distance", "kid", "precision",
                "recall", "mode_coverage"} <= set(run.data.metrics)
        assert 0.0 <= run.data.metrics["mode_coverage"] <= 1.0
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"samples", "checkpoint", "flip_inversion", "losses.jsonl",
                "loss_curves.png"} <= artifacts


def test_leaderboard_crowns_a_champion(env):
    import mlflow

    store, first = env["store"], env["first"]
    meta = metadata(first, "gan_leaderboard")
    # both versions were scored by their training assets, with the leaderboard's settings
    assert meta["models_scored"] == 2 and meta["versions_scored_now"] == 0
    assert meta["versions_from_cache"] == 2
    table = pd.read_parquet(store / "evaluation" / "scores.parquet")
    for asset_key in ("gan", "cgan"):
        asset_meta = metadata(first, asset_key)
        model, version = asset_meta["model"].split(" version ")
        [row] = table[(table["model"] == model) & (table["version"] == int(version))
                      & (table["samples"] == 40)].to_dict("records")
        assert row["frechet_distance"] == asset_meta["metrics"]["frechet_distance"]
    assert (store / "evaluation" / "champions.png").exists()
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store}/mlflow/mlflow.db")
    assert set(meta["champions"]) == {"fashion-gan", "fashion-cgan"}
    for model, version in meta["champions"].items():
        assert int(client.get_model_version_by_alias(model, "champion").version) == version


def test_bigan_runs_in_mlflow(env, extra):
    import mlflow

    store = env["store"]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store}/mlflow/mlflow.db")
    [version] = client.search_model_versions("name='fashion-bigan'")
    assert version.tags["variant"] == "EX6" and version.tags["latent"] == "uniform"
    meta = metadata(extra, "bigan")
    run = client.get_run(meta["mlflow_run_id"])
    assert run.data.params["preset"] == "EX6" and run.data.params["latent"] == "uniform"
    for loss in ("d_loss_real", "d_loss_fake", "g_loss_adv", "l_ad", "l_ae", "l_h"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, loss)] == [0, 1]
    assert {"reconstruction_error_pixel", "reconstruction_error_latent", "flip_gap",
            "frechet_distance", "mode_coverage"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"samples", "checkpoint", "reconstruction", "losses.jsonl"} <= artifacts


def test_train_job_families_join_the_registry_and_the_leaderboard_pays_only_for_them(
        env, extra):
    """train_job's families beside the demo set (their generated assets): registered as
    fashion-<family> with their tags; the leaderboard then scores only these five new
    versions, takes the demo set's two from its cache, and crowns every family."""
    import mlflow

    store = env["store"]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store}/mlflow/mlflow.db")
    [cgan] = client.search_model_versions("name='fashion-cgan'")
    assert cgan.tags["kind"] == "conditional" and cgan.tags["label_columns"] == "category,color"
    assert client.search_model_versions("name='fashion-wgan-gp'")
    meta = metadata(extra, "gan_leaderboard")
    assert meta["versions_scored_now"] == 5 and meta["versions_from_cache"] == 2
    assert set(meta["champions"]) == {"fashion-gan", "fashion-cgan", "fashion-dcgan",
                                      "fashion-bigan", "fashion-wgan-gp"}
    table = pd.read_csv(store / "evaluation" / "leaderboard.csv")
    assert set(table["variant"].dropna()) >= {*VARIANTS, "EX6"}
    assert table["frechet_distance"].notna().all() and table["fid_inception"].isna().all()
    text = (store / "evaluation" / "leaderboard.md").read_text()
    for model, group in table.groupby("model"):
        best = int(group.sort_values(["frechet_distance", "version"]).iloc[0]["version"])
        assert meta["champions"][model] == best
        assert int(client.get_model_version_by_alias(model, "champion").version) == best
        assert f"| {model.removeprefix('fashion-')}" in text
    row = table[table["model"] == "fashion-cgan"].iloc[0]
    assert 0.0 <= row["conditional_accuracy"] <= 1.0


def test_classifier_assets_register_with_a_champion(env):
    """The study's dense and conv classifiers through their generated assets: registered as
    fashion-classifier-<arch> (not as samplers) with the held-out accuracy as a tag, and the
    best version of each crowned."""
    import mlflow
    from dagster import materialize

    store, defs = env["store"], env["defs"]
    resources = {k: defs.resources[k] for k in ("storage", "mlflow")}
    tiny = dict(steps=2, batch_size=8, hidden=16)
    result = materialize(
        [ASSETS_BY_NAME["classifier_dense"], ASSETS_BY_NAME["classifier_conv"]],
        resources=resources, instance=env["instance"],
        run_config=RunConfig(ops={"classifier_dense": asset_config("classifier_dense", **tiny),
                                  "classifier_conv": asset_config("classifier_conv", **tiny)}))
    assert result.success
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store}/mlflow/mlflow.db")
    for arch in ("dense", "conv"):
        [version] = client.search_model_versions(f"name='fashion-classifier-{arch}'")
        assert version.tags["kind"] == "classifier"
        assert 0.0 <= float(version.tags["mean_heldout_accuracy"]) <= 1.0
        champion = client.get_model_version_by_alias(f"fashion-classifier-{arch}", "champion")
        assert champion.version == version.version
        meta = metadata(result, f"classifier_{arch}")
        assert meta["model"] == f"fashion-classifier-{arch} version {version.version}"


def test_attribute_classifier(env):
    meta = metadata(env["first"], "attribute_classifier")
    assert set(meta["test_accuracy"]) >= {"category", "color"}
    assert all(0.0 <= v <= 1.0 for v in meta["test_accuracy"].values())
    assert meta["heads"]["category"] == 7 and meta["heads"]["color"] == 9
    assert (env["store"] / "models" / "attribute_classifier.pt").exists()


def test_translation_matches_demo_truth(env):
    store = env["store"]
    truth = json.loads((store / "raw" / "demo" / "truth.json").read_text())
    cat = pd.read_parquet(store / "catalogue" / "catalogue.parquet")
    for row in cat.itertuples():
        expected = truth[row.id]["attributes"]
        for column in ("category", "color", "sleeve_length", "length", "fit", "pattern"):
            assert getattr(row, column) == expected[column] or (
                getattr(row, column) is None and expected[column] is None), (row.id, column)


def test_second_crawl_adds_no_rows_and_downloads_nothing(env):
    defs, instance, store = env["defs"], env["instance"], env["store"]
    second = defs.resolve_job_def("scrape_job").execute_in_process(instance=instance,
                                                                   partition_key="demo")
    assert second.success
    raw = metadata(second, "raw_products")
    # every stored image is reused; only the two truncated JPEGs, never stored, are tried again
    stored = len(list((store / "raw" / "demo" / "images" / "full").glob("*.jpg")))
    assert raw["images_already_on_disk"] == stored
    assert raw["images_downloaded"] == 2
    rebuilt = defs.resolve_job_def("catalogue_job").execute_in_process(instance=instance)
    assert rebuilt.success and all(checks_passed(rebuilt).values())
    cat = pd.read_parquet(store / "catalogue" / "catalogue.parquet")
    assert len(cat) == 28 and cat["id"].is_unique
    assert (cat["first_seen"] < cat["last_seen"]).all()  # seen in both crawls
    assert metadata(rebuilt, "catalogue")["drop_reasons"] == {"duplicate_rows_merged": 28}


def test_sensor_rebuilds_catalogue_after_a_plain_scrape_only(env):
    defs, instance = env["defs"], env["instance"]
    # the newest raw_products event comes from scrape_job (the test above): request a rebuild
    context = build_sensor_context(instance=instance, definitions=defs)
    tick = catalogue_after_scrape.evaluate_tick(context)
    assert len(tick.run_requests) == 1 and catalogue_after_scrape.job_name == "catalogue_job"
    # a crawl inside full_pipeline already rebuilt the catalogue: skip
    defs.resolve_job_def("full_pipeline").execute_in_process(instance=instance,
                                                             run_config=FAST)
    context = build_sensor_context(instance=instance, definitions=defs, cursor=tick.cursor)
    tick = catalogue_after_scrape.evaluate_tick(context)
    assert not tick.run_requests and "full_pipeline" in tick.skip_message
