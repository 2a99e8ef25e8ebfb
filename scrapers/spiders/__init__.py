"""One spider per shop; all share ShopSpider and differ only in their TOML config."""
