from scrapers.spiders.base import ShopSpider


class AboutYouSpider(ShopSpider):
    """aboutyou.de women's clothing; selectors in scrapers/shops/aboutyou.toml."""

    name = shop = "aboutyou"
