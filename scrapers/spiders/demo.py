from scrapy import signals

from scrapers.demo_shop import DemoShop
from scrapers.spiders.base import ShopSpider


class DemoSpider(ShopSpider):
    """The generated demo shop. Without -a start_urls it serves one itself on a free loopback
    port (-a products=N -a seed=S, default 200 and 0) and crawls it from the home page."""

    name = shop = "demo"

    def __init__(self, start_urls=None, max_products=None, products="200", seed="0", **kw):
        self.embedded = None
        if not start_urls:
            self.embedded = DemoShop(whole_number("products", products, 1),
                                     whole_number("seed", seed, 0)).start()
            start_urls = self.embedded.url + "/"
        super().__init__(start_urls=start_urls, max_products=max_products, **kw)

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.stop_embedded, signal=signals.spider_closed)
        return spider

    def stop_embedded(self, spider):
        if self.embedded is not None:
            self.embedded.stop()


def whole_number(name: str, value, least: int) -> int:
    """-a name=value as an int >= least, or a one-line error naming the argument."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number < least:
        raise ValueError(f"-a {name} must be an integer >= {least}, got {value!r}")
    return number
