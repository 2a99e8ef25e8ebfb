"""Write the crawl's stats to STATS_FILE as JSON when the spider closes.

Scrapy runs in a subprocess (its reactor cannot restart in one process), so the Dagster asset
reads the drop reasons, retries and image counts from this file.
"""

import json
from pathlib import Path

from scrapy import signals

from pipelines.processing.atomic import write_text_atomically


class StatsFile:
    def __init__(self, crawler, path: str | None):
        self.crawler = crawler
        self.path = path

    @classmethod
    def from_crawler(cls, crawler):
        ext = cls(crawler, crawler.settings.get("STATS_FILE"))
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_closed(self, spider, reason):
        if not self.path:
            return
        stats = dict(self.crawler.stats.get_stats())
        stats["finish_reason"] = reason
        write_text_atomically(Path(self.path),
                              json.dumps(stats, default=str, indent=1, sort_keys=True))
