from scrapers.spiders.base import ShopSpider


class ZalandoSpider(ShopSpider):
    """zalando.de women's clothing; selectors in scrapers/shops/zalando.toml."""

    name = shop = "zalando"
