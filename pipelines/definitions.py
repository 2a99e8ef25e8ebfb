"""The Dagster code location: assets by group, checks, jobs, schedules, sensors, resources.

`python -m pipelines.launch -j full_pipeline` runs the demo end to end as a run of this
location's full_pipeline (pipelines/launch.py says why not `dagster job execute -m`).
"""

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    Definitions,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    asset_sensor,
    define_asset_job,
    load_asset_checks_from_modules,
    load_assets_from_modules,
    schedule,
)

from pipelines.assets import catalogue as catalogue_assets
from pipelines.assets import fashiongan as fashiongan_assets
from pipelines.assets import model_images as model_image_assets
from pipelines.assets import scrape as scrape_assets
from pipelines.assets import segmentation as segmentation_assets
from pipelines.assets import training as training_assets
from pipelines.assets import translation as translation_assets
from pipelines.automation import automation_enabled, automation_sensor, with_automation
from pipelines.executors import choose_executors
from pipelines.partitions import REAL_SHOPS, shop_partitions
from pipelines.resources import CrawlResource, MLflowResource, StorageResource

# By default steps run in parallel except training steps, which take the machine's accelerator
# (or all of its cores) one at a time. Jobs that train nothing run their steps in the run's own
# process: a process per step re-imports torch, MLflow and the code location (about 17 s each
# on a busy 2-core box), which was 2 min of catalogue_job's 2 min 2 s (benchmarks/README.md,
# "Light jobs"). FASHION_GAN_EXECUTOR=dask runs every job on Dask instead (executors.py).
executor, light_executor = choose_executors()

ASSET_MODULES = [scrape_assets, catalogue_assets, model_image_assets, segmentation_assets,
                 training_assets, translation_assets, fashiongan_assets]
all_assets = load_assets_from_modules(ASSET_MODULES)
all_checks = load_asset_checks_from_modules(ASSET_MODULES)

scrape_job = define_asset_job(
    "scrape_job", selection=AssetSelection.assets(scrape_assets.raw_products),
    partitions_def=shop_partitions, executor_def=light_executor,
    description="Crawl one shop (pick the partition).")
catalogue_job = define_asset_job(
    "catalogue_job", selection=AssetSelection.groups("catalogue"), executor_def=light_executor,
    description="Rebuild the catalogue, labels and splits from every crawl on disk.")
model_images_job = define_asset_job(
    "model_images_job", selection=AssetSelection.groups("model_images", "segmentation"),
    description="Front-photo selection, person detector and crops, segmentation store.")
train_job = define_asset_job(
    "train_job", selection=AssetSelection.groups("training", "evaluation"),
    description="Train every model family on the prepared datasets, logged to MLflow, then "
                "the leaderboard.")
# full_pipeline's training: the classifier, the demo set and what they read in group training
# (the translator's paired_images); the weekly automation retrains the same assets
demo_training = (AssetSelection.assets(training_assets.attribute_classifier,
                                       *training_assets.DEMO_ASSETS).upstream()
                 & AssetSelection.groups("training"))
full_pipeline = define_asset_job(
    "full_pipeline",
    selection=AssetSelection.assets(scrape_assets.raw_products)
    | AssetSelection.groups("catalogue", "model_images", "segmentation", "evaluation")
    | demo_training,
    partitions_def=shop_partitions,
    tags={"dagster/partition": "demo"},  # the demo shop end to end, with no argument needed
    description="The demo shop end to end: crawl -> catalogue -> labels -> splits -> front "
                "photos -> person detector and crops -> segmentation store -> the classifier and "
                "the demo set, one model of each kind (GAN, CGAN, pix2pix "
                "packshot -> person) -> leaderboards. train_job trains every family.")


def weekly_scrape_schedule(shop: str, hour: int):
    """Mondays, one shop an hour apart; STOPPED until someone turns it on (README)."""

    @schedule(name=f"weekly_scrape_{shop}", job=scrape_job, cron_schedule=f"0 {hour} * * 1",
              execution_timezone="Europe/Berlin", default_status=DefaultScheduleStatus.STOPPED,
              description=f"Re-scrape {shop} every Monday at {hour}:00 Berlin time.")
    def _schedule(context: ScheduleEvaluationContext):
        stamp = context.scheduled_execution_time.strftime("%Y-%m-%d")
        return RunRequest(run_key=f"{shop}-{stamp}", partition_key=shop)

    return _schedule


schedules = [weekly_scrape_schedule(shop, 2 + i) for i, shop in enumerate(REAL_SHOPS)]


@asset_sensor(asset_key=scrape_assets.raw_products.key, job=catalogue_job,
              default_status=DefaultSensorStatus.RUNNING,
              description="After any crawl, rebuild the catalogue (skipped when the crawl's own "
                          "run already rebuilt it, as full_pipeline does).")
def catalogue_after_scrape(context, asset_event):
    run = context.instance.get_run_by_id(asset_event.run_id)
    if run is not None and run.job_name == full_pipeline.name:
        return SkipReason("the crawl ran inside full_pipeline, which rebuilt the catalogue")
    return RunRequest(run_key=f"catalogue-after-{asset_event.run_id}")


# what declarative automation retrains weekly when its inputs changed: full_pipeline's training
AUTOMATED_TRAINING = sorted(k.to_user_string() for k in demo_training.resolve(all_assets))


def build_definitions(automation: bool | None = None, **resources) -> Definitions:
    """The code location; tests pass their own resources (a temporary store, a small shop).
    automation (default: FASHION_GAN_AUTOMATION) turns on retraining after re-scrapes."""
    defaults = {"storage": StorageResource(), "crawl": CrawlResource(), "mlflow": MLflowResource()}
    automated = automation_enabled(automation)
    return Definitions(
        assets=with_automation(all_assets, AUTOMATED_TRAINING) if automated else all_assets,
        asset_checks=all_checks,
        jobs=[scrape_job, catalogue_job, model_images_job, train_job, full_pipeline],
        schedules=schedules,
        # with automation on, its sensor rebuilds the catalogue after a crawl (and more)
        sensors=[automation_sensor()] if automated else [catalogue_after_scrape],
        resources={**defaults, **resources},
        executor=executor,
    )


defs = build_definitions()
