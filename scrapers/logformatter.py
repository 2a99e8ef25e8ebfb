"""Log a dropped product as one line with its reason, not the whole item at WARNING."""

import logging

from scrapy import logformatter


class ConciseLogFormatter(logformatter.LogFormatter):
    def dropped(self, item, exception, response, spider):
        return {"level": logging.INFO, "msg": "Dropped: %(exception)s",
                "args": {"exception": exception}}
