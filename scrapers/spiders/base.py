"""One spider for every shop: category x colour listings with pagination, then product pages.

What differs between shops (start URLs, slugs, selectors) lives in scrapers/shops/<shop>.toml.
Fields come from the page's schema.org Product JSON-LD where present and from the shop's CSS
selectors otherwise.
"""

import json
import re
from urllib.parse import urlsplit

import scrapy
from scrapy import signals

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


FAILURE_STAT = "crawl/failure"  # set, with the reason, when a crawl counts as failed


def check_start_urls(text: str) -> list[str]:
    """The comma-separated start URLs, each an absolute http(s) URL with a host.

    A malformed URL fails here, when the spider is built, so `scrapy crawl` exits non-zero
    naming it, instead of logging an error and finishing "successfully" with 0 products.
    """
    urls = [u.strip() for u in str(text).split(",") if u.strip()]
    if not urls:
        raise ValueError(f"start_urls={text!r}: no URL given")
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"start_urls: {url!r} is not an absolute http(s) URL with a host "
                             "(e.g. https://www.shop.example/damen/)")
        try:
            parts.port  # noqa: B018 (raises on a port outside 0-65535)
        except ValueError as e:
            raise ValueError(f"start_urls: {url!r} has a bad port ({e})") from None
    return urls


def check_max_products(value) -> int | None:
    """None (no cap) or an integer >= 1; 0, -1 or 'abc' would silently crawl nothing."""
    if value is None or value == "":
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        number = None
    if number is None or number < 1:
        raise ValueError(f"max_products must be an integer >= 1, got {value!r}")
    return number


class ShopSpider(scrapy.Spider):
    """Crawl a shop described by a ShopConfig. Arguments (contract 1):

    -a start_urls=URL[,URL...]  listing pages (or a page linking to listings) instead of the
                                shop's category x colour defaults
    -a max_products=N           schedule at most N product pages

    A crawl that scrapes no product fails: the reason (start URLs unreachable, or pages seen
    but nothing extracted) is logged, stored in the stats as `crawl/failure`, and `scrapy
    crawl` exits 1.
    """

    shop: str = ""

    def __init__(self, start_urls: str | None = None, max_products: str | None = None, **kw):
        super().__init__(**kw)
        self.config: ShopConfig = load_shop(self.shop)
        self._listing = re.compile(self.config.listing_regex)
        self._id = re.compile(self.config.id_regex) if self.config.id_regex else None
        self.start_urls = (check_start_urls(start_urls) if start_urls is not None
                           else self.config.listing_urls())
        self.max_products = check_max_products(max_products)
        self.scheduled: set[str] = set()
        self.start_failures: dict[str, str] = {}  # start URL -> why it could not be fetched
        self.failure: str | None = None

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider._report_failure, signal=signals.engine_stopped)
        return spider

    @classmethod
    def update_settings(cls, settings):
        super().update_settings(settings)
        settings.setdict(load_shop(cls.shop).settings, priority="spider")

    async def start(self):
        for url in self.start_urls:
            yield scrapy.Request(url, callback=self.parse, errback=self.start_failed)

    def start_failed(self, failure):
        """A start URL that cannot be fetched (refused, DNS, timeout, HTTP error status)."""
        url = failure.request.url
        response = getattr(failure.value, "response", None)
        why = (f"HTTP {response.status}" if response is not None
               else f"{failure.type.__name__}: {failure.getErrorMessage()}")
        self.start_failures[url] = why
        self.crawler.stats.inc_value("start_urls/failed")
        self.logger.error(f"start URL {url} could not be fetched: {why}")

    def failure_reason(self) -> str | None:
        """Why this crawl failed, or None: it failed when it scraped no product."""
        stats = self.crawler.stats
        if stats.get_value("item_scraped_count", 0):
            return None
        if self.start_failures:
            failed = [f"{u} ({why})" for u, why in self.start_failures.items()]
            shown = "; ".join(failed[:3]) + (f"; {len(failed) - 3} more" if len(failed) > 3
                                             else "")
            return (f"0 products: {len(failed)} of {len(self.start_urls)} start URL(s) could "
                    f"not be fetched: {shown}")
        dropped = {k.split("/", 1)[1]: v for k, v in stats.get_stats().items()
                   if k.startswith("dropped/")}
        return (f"0 products from {len(self.start_urls)} start URL(s): "
                f"{stats.get_value('pages/listing', 0)} listing pages, "
                f"{stats.get_value('pages/product', 0)} product pages, dropped {dropped or 0} - "
                f"check the start URLs and the selectors in scrapers/shops/{self.shop}.toml")

    def closed(self, reason: str) -> None:
        """Record a failed crawl in the stats before the StatsFile extension writes them."""
        self.failure = self.failure_reason()
        if self.failure:
            self.crawler.stats.set_value(FAILURE_STAT, self.failure)
            self.logger.error(f"crawl failed: {self.failure}")

    def _report_failure(self) -> None:
        """Make `scrapy crawl` exit 1 on a failed crawl. Scrapy (2.19) offers no hook for the
        exit code; it exits 1 when a crawler ends without a spider, so the spider is
        detached once the engine has stopped and everything is written."""
        if self.failure:
            self.crawler.spider = None

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
