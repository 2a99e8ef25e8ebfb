"""Each spider's parsing on saved pages, and the pipelines' validation."""

from pathlib import Path

import pytest
from scrapy.exceptions import DropItem
from scrapy.http import HtmlResponse, Request
from scrapy.utils.test import get_crawler

import scrapers.settings as project_settings
from pipelines.processing.translate import translate_attributes
from scrapers.demo_shop import DemoShop
from scrapers.items import ProductItem
from scrapers.pipelines import ValidationPipeline
from scrapers.shops import SHOPS, load_shop
from scrapers.spiders.aboutyou import AboutYouSpider
from scrapers.spiders.demo import DemoSpider
from scrapers.spiders.fashionid import FashionIdSpider
from scrapers.spiders.zalando import ZalandoSpider

FIXTURES = Path(__file__).parent / "fixtures"


PROJECT_SETTINGS = {k: v for k, v in vars(project_settings).items() if k.isupper()}


def crawler_for(cls):
    return get_crawler(cls, settings_dict=PROJECT_SETTINGS)


def make_spider(cls, **kwargs):
    return cls.from_crawler(crawler_for(cls), **kwargs)


def page(url: str, body: bytes) -> HtmlResponse:
    return HtmlResponse(url=url, body=body, request=Request(url), encoding="utf-8")


def saved(shop: str, name: str, url: str) -> HtmlResponse:
    return page(url, (FIXTURES / shop / f"{name}.html").read_bytes())


CASES = {
    "zalando": dict(
        cls=ZalandoSpider,
        listing="https://www.zalando.de/damenbekleidung-kleider/_schwarz/",
        slugs=("kleider", "schwarz"),
        products=["https://www.zalando.de/only-onlnova-blusenkleid-black-on321c1kd-q11.html",
                  "https://www.zalando.de/vero-moda-vmsimply-easy-jerseykleid-black-ve121c2gv"
                  "-q11.html"],
        next="https://www.zalando.de/damenbekleidung-kleider/_schwarz/?p=2",
        product="https://www.zalando.de/only-onlnova-blusenkleid-black-on321c1kd-q11.html",
        expect=dict(id="ON321C1KD-Q11", brand="ONLY", name="ONLNOVA - Blusenkleid - black",
                    price=29.99, n_models=3,
                    english=dict(category="dresses", color="black", length="knee",
                                 sleeve_length="long", fit="loose", pattern="unicolors",
                                 neckline="v"))),
    "aboutyou": dict(
        cls=AboutYouSpider,
        listing="https://www.aboutyou.de/c/frauen/bekleidung/blusen-tuniken?farbe=weiss",
        slugs=("blusen-tuniken", "weiss"),
        products=["https://www.aboutyou.de/p/vero-moda/bluse-vmeasy-5318012",
                  "https://www.aboutyou.de/p/esprit/bluse-mit-blumenprint-4901234"],
        next="https://www.aboutyou.de/c/frauen/bekleidung/blusen-tuniken?farbe=weiss&page=2",
        product="https://www.aboutyou.de/p/vero-moda/bluse-vmeasy-5318012",
        expect=dict(id="5318012", brand="VERO MODA", name="Bluse 'VMEASY'", price=24.99,
                    n_models=3,
                    english=dict(category="blouses", color="white", sleeve_length="half",
                                 fit="normal", pattern="unicolors", neckline="round"))),
    "fashionid": dict(
        cls=FashionIdSpider,
        listing="https://www.fashionid.de/damen/bekleidung/roecke/farbe-rot/",
        slugs=("roecke", "rot"),
        products=["https://www.fashionid.de/esprit/faltenrock-mit-punkten-rot-12345678/",
                  "https://www.fashionid.de/marc-o-polo/midirock-rot-87654321/"],
        next="https://www.fashionid.de/damen/bekleidung/roecke/farbe-rot/?page=2",
        product="https://www.fashionid.de/esprit/faltenrock-mit-punkten-rot-12345678/",
        expect=dict(id="12345678", brand="ESPRIT", name="Faltenrock mit Punkten", price=59.99,
                    n_models=2,
                    english=dict(category="skirts", color="red", length="3-4", fit="tight",
                                 pattern="polkadots"))),
}


@pytest.mark.parametrize("shop", sorted(CASES))
def test_listing_page(shop):
    case = CASES[shop]
    spider = make_spider(case["cls"])
    requests = list(spider.parse(saved(shop, "listing", case["listing"])))
    product_requests = [r for r in requests if r.callback == spider.parse_product]
    assert [r.url for r in product_requests] == case["products"]
    for r in product_requests:
        assert r.cb_kwargs == {"category_slug": case["slugs"][0], "color_slug": case["slugs"][1]}
    assert [r.url for r in requests if r.callback == spider.parse] == [case["next"]]


@pytest.mark.parametrize("shop", sorted(CASES))
def test_product_page(shop):
    case, expect = CASES[shop], CASES[shop]["expect"]
    spider = make_spider(case["cls"])
    item = spider.extract_product(saved(shop, "product", case["product"]), *case["slugs"])
    assert item["id"] == expect["id"] and item["shop"] == shop
    assert item["brand"] == expect["brand"] and item["name"] == expect["name"]
    assert item["price"] == expect["price"]
    assert item["img_url"].startswith("https://") and item["img_url"].endswith(".jpg")
    assert len(item["model_img_urls"]) == expect["n_models"]
    assert item["img_url"] not in item["model_img_urls"]
    english = translate_attributes(item["attributes"], item["category_slug"],
                                   item["color_slug"], item["name"])
    for column, value in expect["english"].items():
        assert english[column] == value, column
    ValidationPipeline().process_item(item, spider)  # a real page's item is valid


def test_max_products_and_start_urls():
    case = CASES["zalando"]
    spider = make_spider(ZalandoSpider, start_urls=case["listing"], max_products="1")
    assert spider.start_urls == [case["listing"]]
    requests = list(spider.parse(saved("zalando", "listing", case["listing"])))
    assert len([r for r in requests if r.callback == spider.parse_product]) == 1


def test_default_start_urls_are_category_x_colour():
    for shop in SHOPS:
        config = load_shop(shop)
        urls = config.listing_urls()
        assert len(urls) == len(config.categories) * len(config.colors) == 63
        spider_cls = {"zalando": ZalandoSpider, "aboutyou": AboutYouSpider,
                      "fashionid": FashionIdSpider, "demo": DemoSpider}[shop]
        if shop != "demo":
            spider = make_spider(spider_cls)
            assert spider.slugs(urls[0]) == (config.categories[0], config.colors[0])
            assert translate_attributes([], *spider.slugs(urls[-1]))["category"] is not None


def test_real_shops_are_polite_and_demo_is_fast():
    settings = crawler_for(ZalandoSpider).settings
    assert settings.getbool("ROBOTSTXT_OBEY") and settings.getbool("AUTOTHROTTLE_ENABLED")
    assert settings.getbool("HTTPCACHE_ENABLED")
    assert settings.getint("HTTPCACHE_EXPIRATION_SECS") < 7 * 24 * 3600
    assert "research" in settings.get("USER_AGENT")
    demo = crawler_for(DemoSpider).settings
    assert not demo.getbool("AUTOTHROTTLE_ENABLED") and not demo.getbool("HTTPCACHE_ENABLED")
    assert demo.getfloat("DOWNLOAD_DELAY") == 0


def test_demo_pages_parse():
    shop = DemoShop(n_products=10, seed=4)
    p = next(p for p in shop.products if not p.faults)
    spider = make_spider(DemoSpider, start_urls="http://127.0.0.1:1/")
    base = "http://127.0.0.1:1"
    item = spider.extract_product(page(f"{base}/artikel/{p.id}.html",
                                       shop.product_page(p).encode()),
                                  p.category_slug, p.color_slug)
    assert item["id"] == p.id and item["brand"] == p.brand and item["name"] == p.name
    assert item["attributes"] == p.attributes  # NBSPs and all, as on the page
    assert len(item["model_img_urls"]) == len(p.views)
    nav = list(spider.parse(page(base + "/", shop.home_page().encode())))
    assert len(nav) == 63


@pytest.mark.parametrize("field,value,reason", [
    ("id", "", "bad_id"), ("id", "a/b", "bad_id"), ("img_url", "ftp://x/y.jpg", "no_packshot_url"),
    ("name", None, "no_name"), ("category_slug", None, "no_category"),
    ("attributes", "Kurzarm", "bad_attributes")])
def test_validation_drops_with_counted_reason(field, value, reason):
    spider = make_spider(ZalandoSpider)
    item = ProductItem(id="A1", shop="zalando", product_url="https://x/p.html",
                       img_url="https://x/a.jpg", model_img_urls=[], brand="B", name="N",
                       attributes=["Kurzarm"], category_slug="kleider", color_slug=None)
    item[field] = value
    with pytest.raises(DropItem):
        ValidationPipeline().process_item(item, spider)
    assert spider.crawler.stats.get_value(f"dropped/{reason}") == 1
