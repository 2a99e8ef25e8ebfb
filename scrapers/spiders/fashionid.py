from scrapers.spiders.base import ShopSpider


class FashionIdSpider(ShopSpider):
    """fashionid.de women's clothing; selectors in scrapers/shops/fashionid.toml."""

    name = shop = "fashionid"
