"""One spider for every shop: category x colour listings with pagination, then product pages.

What differs between shops (start URLs, slugs, selectors) lives in scrapers/shops/<shop>.toml.
Fields come from the page's schema.org Product JSON-LD where present and from the shop's CSS
selectors otherwise.
"""

import json
import re
from urllib.parse import urlsplit

import scrapy

from scrapers.items import ProductItem
from scrapers.shops import ShopConfig, load_shop


def product_ld(response) -> dict:
    """The first schema.org Product object in the page's JSON-LD blocks, or {}."""
    for raw in response.css('script[type="application/ld+json"]::text').getall():
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        stack = data if isinstance(data, list) else [data]
        while stack:
            obj = stack.pop(0)
            if not isinstance(obj, dict):
                continue
            kind = obj.get("@type")
            if kind == "Product" or (isinstance(kind, list) and "Product" in kind):
                return obj
            stack.extend(obj.get("@graph", []))
    return {}


def clean(text: str | None) -> str | None:
    """Outer whitespace off; inner spaces (U+00A0 included) kept as on the page."""
    if text is None:
        return None
    text = re.sub(r"[ \t\r\n]+", " ", text).strip(" \t\r\n")
    return text or None


class ShopSpider(scrapy.Spider):
    """Crawl a shop described by a ShopConfig. Arguments (contract 1):

    -a start_urls=URL[,URL...]  listing pages (or a page linking to listings) instead of the
                                shop's category x colour defaults
    -a max_products=N           schedule at most N product pages
    """

    shop: str = ""

    def __init__(self, start_urls: str | None = None, max_products: str | None = None, **kw):
        super().__init__(**kw)
        self.config: ShopConfig = load_shop(self.shop)
        self._listing = re.compile(self.config.listing_regex)
        self._id = re.compile(self.config.id_regex) if self.config.id_regex else None
        self.start_urls = ([u.strip() for u in start_urls.split(",") if u.strip()]
                           if start_urls else self.config.listing_urls())
        self.max_products = int(max_products) if max_products else None
        self.scheduled: set[str] = set()

    @classmethod
    def update_settings(cls, settings):
        super().update_settings(settings)
        settings.setdict(load_shop(cls.shop).settings, priority="spider")

    async def start(self):
        for url in self.start_urls:
            yield scrapy.Request(url, callback=self.parse)

    def slugs(self, url: str) -> tuple[str | None, str | None]:
        parts = urlsplit(url)
        m = self._listing.search(parts.path + ("?" + parts.query if parts.query else ""))
        if not m:
            return None, None
        return m.groupdict().get("category"), m.groupdict().get("color")

    def parse(self, response):
        """A listing page; or a navigation page, whose listing links are followed."""
        category, color = self.slugs(response.url)
        sel = self.config.selectors
        if category is None:
            for href in response.css(sel["listing_links"]).getall():
                url = response.urljoin(href)
                if self.slugs(url)[0] is not None:
                    yield scrapy.Request(url, callback=self.parse)
            return
        self.crawler.stats.inc_value("pages/listing")
        for href in response.css(sel["product_links"]).getall():
            url = response.urljoin(href).split("#")[0]
            if url in self.scheduled:
                self.crawler.stats.inc_value("listing/duplicate_product")
                continue
            if self.max_products is not None and len(self.scheduled) >= self.max_products:
                return
            self.scheduled.add(url)
            yield scrapy.Request(url, callback=self.parse_product,
                                 cb_kwargs={"category_slug": category, "color_slug": color})
        next_page = response.css(sel["next_page"]).get()
        if next_page:
            yield scrapy.Request(response.urljoin(next_page), callback=self.parse)

    def parse_product(self, response, category_slug: str, color_slug: str | None):
        self.crawler.stats.inc_value("pages/product")
        yield self.extract_product(response, category_slug, color_slug)

    def extract_product(self, response, category_slug, color_slug) -> ProductItem:
        sel = self.config.selectors
        ld = product_ld(response)
        images = ld.get("image") or []
        images = [images] if isinstance(images, str) else list(images)
        brand = ld.get("brand")
        brand = brand.get("name") if isinstance(brand, dict) else brand
        offers = ld.get("offers") or {}
        offers = offers[0] if isinstance(offers, list) and offers else offers
        product_id = ld.get("sku") or ld.get("productID") or ld.get("mpn")
        if not product_id and self._id:
            m = self._id.search(response.url)
            product_id = m.group(1).upper() if m else None
        packshot = images[0] if images else response.css(sel["packshot"]).get()
        price = offers.get("price") if isinstance(offers, dict) else None
        price = price or clean(response.css(sel["price"]).get())
        return ProductItem(
            id=clean(str(product_id)) if product_id else None,
            shop=self.shop,
            product_url=response.url,
            img_url=response.urljoin(packshot) if packshot else None,
            model_img_urls=[response.urljoin(u) for u in response.css(sel["model_images"]).getall()
                            if response.urljoin(u) != response.urljoin(packshot or "")],
            brand=clean(brand) or clean(response.css(sel["brand"]).get()),
            name=clean(ld.get("name")) or clean(response.css(sel["name"]).get()),
            attributes=self.extract_attributes(response),
            category_slug=category_slug,
            color_slug=color_slug,
            price=_price(price),
        )

    def extract_attributes(self, response) -> list[str]:
        sel = self.config.selectors
        out = []
        if "attribute_rows" in sel:  # <dt>Key:</dt><dd>Value</dd> pairs
            for row in response.css(sel["attribute_rows"]):
                key = clean(" ".join(row.css(sel["attribute_key"]).getall()))
                value = clean(" ".join(row.css(sel["attribute_value"]).getall()))
                if key and value:
                    out.append(f"{key.rstrip(':')}: {value}")
                elif key or value:
                    out.append(key or value)
        else:  # one tag per element, as written
            for node in response.css(sel["attributes"]):
                text = clean("".join(node.css("::text").getall()))
                if text:
                    out.append(text)
        return out


def _price(text) -> float | None:
    if text is None:
        return None
    m = re.search(r"\d+(?:[.,]\d+)?", str(text).replace(".", "").replace(",", ".")
                  if "," in str(text) else str(text))
    return float(m.group(0)) if m else None
