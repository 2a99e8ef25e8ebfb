"""Per-shop crawl data (start URLs, slugs, selectors) kept as TOML, not code."""

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHOPS = ("demo", "zalando", "aboutyou", "fashionid")


@dataclass(frozen=True)
class ShopConfig:
    name: str
    listing_url: str  # format string with {category} and {color}
    listing_regex: str  # named groups category and color, searched in a listing URL
    categories: list[str]
    colors: list[str]
    selectors: dict[str, str]
    id_regex: str = ""  # fallback: the product id from its URL (first group)
    settings: dict = field(default_factory=dict)  # per-shop Scrapy settings

    def listing_urls(self) -> list[str]:
        return [self.listing_url.format(category=c, color=col)
                for c in self.categories for col in self.colors]


def load_shop(name: str) -> ShopConfig:
    path = HERE / f"{name}.toml"
    if not path.exists():
        raise ValueError(f"unknown shop {name!r}: expected one of {', '.join(SHOPS)}")
    with path.open("rb") as f:
        data = tomllib.load(f)
    return ShopConfig(name=name, **data)
