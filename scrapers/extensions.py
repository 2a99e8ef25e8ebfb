"""Write the crawl's stats to STATS_FILE as JSON when the spider closes.

Scrapy runs in a subprocess (its reactor cannot restart in one process), so the Dagster asset
reads the drop reasons, retries and image counts from this file.
"""

import json
from pathlib import Path

from scrapy import signals


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
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        Path(self.path).write_text(json.dumps(stats, default=str, indent=1, sort_keys=True))
