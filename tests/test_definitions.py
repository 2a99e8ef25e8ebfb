"""The code location loads and every job, schedule and sensor resolves."""

from datetime import UTC, datetime

from dagster import DefaultScheduleStatus, build_schedule_context

from pipelines.definitions import defs


def test_definitions_load_and_jobs_resolve():
    for name in ("scrape_job", "catalogue_job", "full_pipeline"):
        job = defs.resolve_job_def(name)
        assert job.name == name
    full = defs.resolve_job_def("full_pipeline")
    assert full.tags["dagster/partition"] == "demo"  # runs with no argument
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"raw_products", "catalogue", "attribute_labels", "dataset_splits"} <= keys


def test_weekly_schedules_are_off_by_default():
    schedules = {s.name: s for s in defs.schedules}
    assert set(schedules) == {"weekly_scrape_zalando", "weekly_scrape_aboutyou",
                              "weekly_scrape_fashionid"}
    for s in schedules.values():
        assert s.default_status == DefaultScheduleStatus.STOPPED
        assert s.cron_schedule.endswith("* * 1")  # weekly
    sensor = defs.resolve_sensor_def("catalogue_after_scrape")
    assert sensor.job_name == "catalogue_job"


def test_schedule_requests_its_shop_partition():
    schedule = defs.resolve_schedule_def("weekly_scrape_zalando")
    context = build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 23, 2, tzinfo=UTC))
    request = schedule(context)
    assert request.partition_key == "zalando" and request.run_key == "zalando-2026-11-23"


def test_training_steps_run_one_at_a_time():
    from pipelines.assets.model_images import person_detector
    from pipelines.assets.pools import TRAINING_TAG
    from pipelines.assets.training import attribute_classifier, family_assets
    from training.family import load_families

    # one asset per (family, variant): DCGAN's three, the classifiers' dense and conv, ...
    families = load_families()
    assert len(family_assets) == sum(len(f.variants) or 1 for f in families.values())
    names = {a.key.path[-1] for a in family_assets}
    assert {"dcgan_symmetric", "bigan", "wgan_gp", "classifier_conv",
            "pix2pix_packshot_to_person", "fashiongan"} <= names
    for asset_def in [*family_assets, attribute_classifier, person_detector]:
        assert asset_def.op.tags.items() >= TRAINING_TAG.items()
        assert asset_def.op.pool == "gpu"
    for job in ("full_pipeline", "train_job"):
        config = defs.resolve_job_def(job).executor_def.apply_config_mapping({}).value
        assert {"key": "fashion-gan/device", "value": "accelerator", "limit": 1} in \
            config["config"]["tag_concurrency_limits"]


def test_step_processes_fork_from_the_code_location_workspace_yaml_loads():
    """The forkserver preloads the module by name and skips one it cannot import without a
    word: the name must be the code location's, or every step imports it again."""
    from pipelines.executors import CODE_LOCATION
    from pipelines.launch import location_origin

    assert CODE_LOCATION == location_origin().loadable_target_origin.module_name
    for job in ("full_pipeline", "train_job"):
        config = defs.resolve_job_def(job).executor_def.apply_config_mapping({}).value
        assert config["config"]["start_method"] == {
            "forkserver": {"preload_modules": [CODE_LOCATION]}}
