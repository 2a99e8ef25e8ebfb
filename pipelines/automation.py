"""Retraining after re-scrapes: Dagster's declarative automation, off by default.

FASHION_GAN_AUTOMATION=on (or build_definitions(automation=True)) turns the whole chain on:
- the catalogue, model-photo and segmentation/dataset assets update as soon as a crawl (a
  `raw_products` partition) lands: any upstream update, including one requested in the same
  evaluation, so one crawl requests the whole chain at once;
- the training assets of full_pipeline (the attribute classifier and the demo GANs) and the
  leaderboards wait for a weekly cron tick (Mondays 08:00 Berlin, after the 02:00-0x:00
  crawls) and retrain only when one of their inputs was updated since they last ran;
- the leaderboards follow the training assets, so the registry's champions are re-crowned.
Nothing is requested when the switch is on but nothing was crawled: a chain starts at a crawl.
"""

import os

from dagster import (
    AssetsDefinition,
    AssetSelection,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
)

AUTOMATION_ENV = "FASHION_GAN_AUTOMATION"
RETRAIN_CRON = "0 8 * * 1"  # Monday 08:00, after the weekly crawls (definitions.schedules)
TIMEZONE = "Europe/Berlin"
EAGER_GROUPS = ("catalogue", "model_images", "segmentation")
EVALUATION_GROUP = "evaluation"


def automation_enabled(flag: bool | None = None) -> bool:
    """The switch: an explicit flag, else FASHION_GAN_AUTOMATION (on/true/1)."""
    if flag is not None:
        return flag
    return os.environ.get(AUTOMATION_ENV, "").strip().lower() in ("on", "true", "1", "yes")


def _idle() -> AutomationCondition:
    return ~AutomationCondition.in_progress() & ~AutomationCondition.any_deps_in_progress()


def after_upstream_update() -> AutomationCondition:
    """An input was updated (or is requested in this evaluation) since this asset was last
    requested or updated, and nothing here runs. eager() without its missing-input rule: a
    catalogue reads every crawl on disk and must not wait for shops never crawled (eager()
    holds back while any raw_products partition is missing)."""
    return (AutomationCondition.any_deps_updated().since_last_handled() & _idle()
            ).with_label("after a crawl")


def weekly_if_inputs_changed(cron: str = RETRAIN_CRON, timezone: str = TIMEZONE
                             ) -> AutomationCondition:
    """On the cron tick, only if an input was updated since this asset last ran or was
    requested (so a week without a crawl trains nothing)."""
    changed = AutomationCondition.any_deps_updated().since(
        AutomationCondition.newly_requested() | AutomationCondition.newly_updated())
    return (AutomationCondition.cron_tick_passed(cron, timezone) & changed & _idle()
            & ~AutomationCondition.any_deps_missing()).with_label("weekly, if inputs changed")


def condition_for(asset_def: AssetsDefinition, trained: set[str]) -> AutomationCondition | None:
    """The condition an asset gets: eager groups, the cron for `trained` assets and the
    evaluation group, none for the rest (crawls stay with their schedules)."""
    group = next(iter(asset_def.specs)).group_name
    name = asset_def.key.to_user_string()
    if group in EAGER_GROUPS:
        return after_upstream_update()
    if name in trained:
        return weekly_if_inputs_changed()
    if group == EVALUATION_GROUP:
        return after_upstream_update()
    return None


def with_automation(assets: list, trained: list[str]) -> list:
    """The assets with their automation conditions (the others unchanged)."""
    names = set(trained)
    out = []
    for a in assets:
        condition = condition_for(a, names) if isinstance(a, AssetsDefinition) and \
            len(a.keys) == 1 else None
        out.append(a.map_asset_specs(lambda spec, c=condition: spec.replace_attributes(
            automation_condition=c)) if condition is not None else a)
    return out


def automation_sensor() -> AutomationConditionSensorDefinition:
    """The sensor that evaluates the conditions, running as soon as the switch is on."""
    return AutomationConditionSensorDefinition(
        "retrain_after_rescrape", target=AssetSelection.all(),
        default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=60,
        description="Declarative automation (pipelines/automation.py): the catalogue chain "
                    "after a crawl, the demo training weekly if its inputs changed.")
