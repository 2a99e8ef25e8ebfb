"""The one item every spider yields: a product, with the fields contract 1 of
docs/ARCHITECTURE.md lists."""

import scrapy


class ProductItem(scrapy.Item):
    id = scrapy.Field()
    shop = scrapy.Field()
    product_url = scrapy.Field()
    img_url = scrapy.Field()  # the packshot
    model_img_urls = scrapy.Field()  # list, in page order
    brand = scrapy.Field()
    name = scrapy.Field()
    attributes = scrapy.Field()  # list of German strings, as on the page
    category_slug = scrapy.Field()
    color_slug = scrapy.Field()  # None when the listing had no colour filter
    price = scrapy.Field()
    # filled by the images pipeline: paths relative to IMAGES_STORE (None: download failed)
    img_path = scrapy.Field()
    model_img_paths = scrapy.Field()
