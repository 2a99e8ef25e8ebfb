"""Retraining after re-scrapes, driven by Dagster's own automation evaluation: off by default;
switched on, a crawl requests the catalogue chain at once, and the demo training waits for the
Monday tick and runs only if its inputs changed."""

import datetime as dt
from zoneinfo import ZoneInfo

from dagster import AssetKey, AssetMaterialization, DagsterInstance, evaluate_automation_conditions

BERLIN = ZoneInfo("Europe/Berlin")
CHAIN = {"catalogue", "attribute_labels", "dataset_splits", "packshot_store",
         "front_model_images", "person_detector", "person_crops", "segmentation_store"}
TRAINING = {"attribute_classifier", "paired_images", "gan", "cgan",
            "pix2pix_packshot_to_person", "gan_leaderboard", "translator_leaderboard"}


def test_automation_is_off_by_default(monkeypatch):
    from pipelines.definitions import build_definitions

    monkeypatch.delenv("FASHION_GAN_AUTOMATION", raising=False)
    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    assert all(graph.get(k).automation_condition is None for k in graph.get_all_asset_keys())
    assert [s.name for s in defs.sensors] == ["catalogue_after_scrape"]


def test_a_crawl_requests_the_chain_and_the_monday_tick_the_training(monkeypatch):
    from pipelines.definitions import build_definitions

    monkeypatch.setenv("FASHION_GAN_AUTOMATION", "on")
    defs = build_definitions()
    assert [s.name for s in defs.sensors] == ["retrain_after_rescrape"]
    instance = DagsterInstance.ephemeral()
    cursor = None

    def evaluate(day: int, hour: int) -> set[str]:
        nonlocal cursor
        result = evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=cursor,
            evaluation_time=dt.datetime(2026, 11, day, hour, tzinfo=BERLIN))
        cursor = result.cursor
        return {r.key.to_user_string() for r in result.results if r.true_subset.size}

    def materialized(names: set[str]) -> None:  # what the requested runs would write
        for name in sorted(names):
            instance.report_runless_asset_event(AssetMaterialization(AssetKey(name)))

    assert evaluate(22, 12) == set()  # switched on (a Sunday): nothing was crawled
    instance.report_runless_asset_event(AssetMaterialization("raw_products", partition="demo"))
    requested = evaluate(22, 13)
    assert requested == CHAIN  # at once, without waiting for shops never crawled; no training
    materialized(requested)
    assert evaluate(22, 14) == set()  # nothing twice
    assert evaluate(23, 7) == set()  # Monday before the tick
    requested = evaluate(23, 9)  # after Monday 08:00: the inputs changed, so the demo retrains
    assert requested == TRAINING  # not the families only train_job trains, not the crawl
    materialized(requested)
    assert evaluate(23, 10) == set()
    assert evaluate(30, 9) == set()  # a week without a crawl trains nothing
