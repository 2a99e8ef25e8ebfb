"""The shops the scrape stage is partitioned by."""

from dagster import StaticPartitionsDefinition

from scrapers.shops import SHOPS

REAL_SHOPS = tuple(s for s in SHOPS if s != "demo")
shop_partitions = StaticPartitionsDefinition(list(SHOPS))
