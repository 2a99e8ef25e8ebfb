"""Pillow drawings of the demo shop's packshots and model photos, with 7-class label maps.

A garment is a set of polygons in a body frame (unit = the person's height, x centred, y down
from the top of the head). The packshot draws the garment alone on white; a model photo draws a
person wearing it, and every shape is drawn twice: in colour on the photo and as its class on a
label image, so the segmentation masks and person boxes are exact by construction.
"""

import io
import math
import random

from PIL import Image, ImageDraw

from scrapers.demo_shop.catalog import COLORS, Product

# The 7 segmentation classes of the FashionGAN layout.
BACKGROUND, FACE, HAIR, ARM, UPPER, LOWER, LEGS = range(7)
PACKSHOT_SIZE = (360, 480)
PHOTO_SIZE = (320, 480)

SKINS = [(241, 204, 176), (224, 172, 138), (198, 140, 102), (141, 94, 64)]
HAIRS = [(40, 28, 20), (92, 60, 34), (196, 160, 96), (140, 56, 30), (20, 20, 22)]
SECOND_GARMENT = {"pants": (60, 70, 100), "skirts": (236, 236, 232)}  # what the model also wears
FIT_WIDTH = {"tight": 0.9, "normal": 1.0, "loose": 1.2, None: 1.0}
SLEEVE_END = {"sleeveless": None, "short": 0.235, "half": 0.34, "long": 0.455, None: 0.455}
UPPER_HEM = {"tops": 0.47, "blouses": 0.48, "knitwear": 0.49}
JACKET_HEM = {"short": 0.42, "normal": 0.52, "knee": 0.70, "long": 0.80, "3-4": 0.62, None: 0.52}
SKIRT_HEM = {"short": 0.53, "knee": 0.69, "3-4": 0.82, "long": 0.94, "normal": 0.62, None: 0.69}
PANTS_HEM = {"short": 0.56, "knee": 0.70, "3-4": 0.86, "long": 0.955, "normal": 0.955,
             None: 0.955}


class Canvas:
    """A photo and its label map, drawn in step through one body-frame transform."""

    def __init__(self, size, background, cx, top, scale, squeeze=1.0):
        self.rgb = Image.new("RGB", size, background)
        self.label = Image.new("L", size, BACKGROUND)
        self.d_rgb = ImageDraw.Draw(self.rgb)
        self.d_label = ImageDraw.Draw(self.label)
        self.cx, self.top, self.scale, self.squeeze = cx, top, scale, squeeze

    def p(self, x: float, y: float) -> tuple[float, float]:
        return (self.cx + x * self.scale * self.squeeze, self.top + y * self.scale)

    def polygon(self, pts, color, label=None):
        xy = [self.p(x, y) for x, y in pts]
        self.d_rgb.polygon(xy, fill=color)
        if label is not None:
            self.d_label.polygon(xy, fill=label)

    def ellipse(self, x, y, rx, ry, color, label=None):
        (x0, y0), (x1, y1) = self.p(x - rx, y - ry), self.p(x + rx, y + ry)
        self.d_rgb.ellipse([x0, y0, x1, y1], fill=color)
        if label is not None:
            self.d_label.ellipse([x0, y0, x1, y1], fill=label)

    def limb(self, a, b, width, color, label=None):
        """A thick segment from a to b (body-frame points) with a round end."""
        self.polygon(limb_polygon(a, b, width), color, label)
        self.ellipse(b[0], b[1], width / 2, width / 2, color, label)

    def patterned(self, shapes, base, pattern, rng, label):
        """Fill the union of polygons with the garment's colour and pattern."""
        mask = Image.new("L", self.rgb.size, 0)
        dm = ImageDraw.Draw(mask)
        for pts in shapes:
            xy = [self.p(x, y) for x, y in pts]
            dm.polygon(xy, fill=255)
            if label is not None:
                self.d_label.polygon(xy, fill=label)
        layer = Image.new("RGB", self.rgb.size, base)
        draw_pattern(ImageDraw.Draw(layer), layer.size, base, pattern, rng,
                     max(4.0, self.scale / 60))
        self.rgb.paste(layer, (0, 0), mask)


def contrast(color):
    """A second colour that reads against the garment's."""
    lum = 0.3 * color[0] + 0.59 * color[1] + 0.11 * color[2]
    return (250, 250, 250) if lum < 150 else (30, 30, 40)


def shade(color, f):
    return tuple(max(0, min(255, int(c * f))) for c in color)


def draw_pattern(d, size, base, pattern, rng, unit):
    w, h = size
    c2 = contrast(base)
    if pattern == "stripes":
        step = int(unit * 3)
        for y in range(0, h, step):
            d.rectangle([0, y, w, y + step // 3], fill=c2)
    elif pattern == "polkadots":
        step = int(unit * 4)
        for j, y in enumerate(range(0, h + step, step)):
            for x in range(-step, w + step, step):
                xo = x + (step // 2 if j % 2 else 0)
                r = unit * 0.8
                d.ellipse([xo - r, y - r, xo + r, y + r], fill=c2)
    elif pattern == "floral":
        step = int(unit * 6)
        petal = shade(c2, 0.9) if c2[0] > 128 else (230, 120, 150)
        for y in range(0, h + step, step):
            for x in range(0, w + step, step):
                fx, fy = x + rng.uniform(-unit, unit), y + rng.uniform(-unit, unit)
                for k in range(5):
                    a = 2 * math.pi * k / 5
                    px, py = fx + math.cos(a) * unit, fy + math.sin(a) * unit
                    d.ellipse([px - unit * 0.7, py - unit * 0.7, px + unit * 0.7,
                               py + unit * 0.7], fill=petal)
                d.ellipse([fx - unit * 0.5, fy - unit * 0.5, fx + unit * 0.5, fy + unit * 0.5],
                          fill=(240, 200, 60))
    elif pattern == "print":
        step = int(unit * 5)
        for y in range(0, h + step, step):
            for x in range(0, w + step, step):
                if (x // step + y // step) % 2:
                    d.rectangle([x, y, x + step, y + step], fill=shade(base, 0.7))
                d.line([x, y, x + step, y + step], fill=c2, width=max(1, int(unit / 3)))
    elif pattern == "lace":
        step = int(unit * 2)
        for y in range(0, h + step, step):
            for x in range(0, w + step, step):
                d.arc([x, y, x + step, y + step], 0, 180, fill=c2, width=1)
                d.ellipse([x + step / 2 - 1, y - 1, x + step / 2 + 1, y + 1], fill=c2)


# --- the garment, in the body frame -------------------------------------------------------

def torso(hem: float, fit: str | None, flare: float = 1.0):
    w = FIT_WIDTH[fit]
    waist = 0.34
    pts = [(-0.105, 0.155), (0.105, 0.155), (0.09 * w, waist), (0.10 * w * flare, hem),
           (-0.10 * w * flare, hem), (-0.09 * w, waist)]
    return pts


def skirt(hem: float, fit: str | None):
    w = FIT_WIDTH[fit]
    spread = 0.02 + 0.22 * (hem - 0.34) * (w - 0.6)
    return [(-0.09, 0.34), (0.09, 0.34), (0.10 + spread, hem), (-0.10 - spread, hem)]


def pants(hem: float, fit: str | None):
    w = FIT_WIDTH[fit]
    leg = 0.048 * w
    return [
        [(-0.095, 0.34), (0.095, 0.34), (0.10, 0.50), (-0.10, 0.50)],
        [(-0.10, 0.49), (-0.002, 0.49), (-0.045 + leg * 0.55, hem), (-0.045 - leg, hem)],
        [(0.002, 0.49), (0.10, 0.49), (0.045 + leg, hem), (0.045 - leg * 0.55, hem)],
    ]


def neckline_cut(kind: str | None):
    """The neck opening as a polygon (drawn in skin on a person, in shadow on a packshot)."""
    if kind == "v":
        return [(-0.045, 0.15), (0.045, 0.15), (0.0, 0.245)]
    if kind == "deep":
        return [(-0.055, 0.15), (0.055, 0.15), (0.0, 0.30)]
    if kind == "wide":
        return [(-0.095, 0.15), (0.095, 0.15), (0.07, 0.18), (-0.07, 0.18)]
    pts = [(0.045 * math.cos(a), 0.15 + 0.035 * math.sin(a))
           for a in [i * math.pi / 10 for i in range(11)]]
    return [(-0.045, 0.15)] + pts[::-1] + [(0.045, 0.15)]


def garment_parts(product: Product):
    """(upper shapes, sleeve end y, lower shapes) of the product's garment in the body frame."""
    t = product.truth
    cat = product.category
    if cat in UPPER_HEM:
        return [torso(UPPER_HEM[cat], t["fit"])], SLEEVE_END[t["sleeve_length"]], []
    if cat == "jackets":
        return [torso(JACKET_HEM[t["length"]], t["fit"], 1.1)], SLEEVE_END[t["sleeve_length"]], []
    if cat == "dresses":
        return ([torso(0.35, t["fit"])], SLEEVE_END[t["sleeve_length"]],
                [skirt(SKIRT_HEM[t["length"]], t["fit"])])
    if cat == "skirts":
        return [], None, [skirt(SKIRT_HEM[t["length"]], t["fit"])]
    return [], None, pants(PANTS_HEM[t["length"]], t["fit"])


def sleeve_end_point(arm, sleeve_end: float):
    """Where a sleeve ending at body height `sleeve_end` ends along an arm."""
    (sx, sy), _, (wx, wy) = arm
    f = (sleeve_end - 0.165) / (0.455 - 0.165)
    return (sx + (wx - sx) * f, sy + (wy - sy) * f)


def garment_shapes(product: Product, arms):
    """(upper polygons with sleeves, lower polygons) for the given arm pose."""
    uppers, sleeve_end, lowers = garment_parts(product)
    shapes = list(uppers)
    if uppers and sleeve_end is not None:
        for side in (-1, 1):
            shapes.append(limb_polygon(arms[side][0], sleeve_end_point(arms[side], sleeve_end),
                                       0.062 * FIT_WIDTH[product.truth["fit"]]))
    return shapes, lowers


def draw_garment(c: Canvas, product: Product, rng, view: str, arms, skin=None):
    """Draw the product's garment over a person (`skin` given) or alone (packshot)."""
    base = COLORS[product.color][1]
    pattern = product.truth["pattern"]
    uppers, lowers = garment_shapes(product, arms)
    if lowers:
        c.patterned(lowers, base, pattern, rng, LOWER)
    if not uppers:
        return
    c.patterned(uppers, base, pattern, rng, UPPER)
    if product.category == "jackets" and view != "back":
        hem = JACKET_HEM[product.truth["length"]]
        c.polygon([(-0.004, 0.16), (0.004, 0.16), (0.004, hem), (-0.004, hem)], shade(base, 0.55))
    neck = product.truth["neckline"] if product.category != "jackets" else "v"
    hole_label = FACE if skin is not None else None
    if view in ("front", "knee", "detail"):
        c.polygon(neckline_cut(neck), skin if skin is not None else shade(base, 0.45), hole_label)
        if neck == "lined":
            c.polygon([(-0.05, 0.15), (0.05, 0.15), (0.05, 0.158), (-0.05, 0.158)],
                      contrast(base))
        # The one-sided detail: a pocket or a logo on one side of the chest.
        x = product.detail_side * 0.05
        if product.index % 2:
            c.polygon([(x - 0.022, 0.22), (x + 0.022, 0.22), (x + 0.022, 0.26),
                       (x - 0.022, 0.26)], shade(base, 0.6))
        else:
            c.ellipse(x, 0.225, 0.014, 0.014, contrast(base))
    elif view == "back" and neck == "back" and skin is not None:
        c.polygon([(-0.04, 0.155), (0.04, 0.155), (0.0, 0.27)], skin, FACE)


def default_arms(spread: float = 0.0):
    """Shoulder, elbow and wrist per side (-1 = image left)."""
    return {s: ((s * 0.10, 0.165), (s * (0.125 + spread / 2), 0.31),
                (s * (0.135 + spread), 0.455)) for s in (-1, 1)}


def limb_polygon(a, b, width):
    (ax, ay), (bx, by) = a, b
    n = math.hypot(bx - ax, by - ay) or 1.0
    ox, oy = -(by - ay) / n * width / 2, (bx - ax) / n * width / 2
    return [(ax + ox, ay + oy), (bx + ox, by + oy), (bx - ox, by - oy), (ax - ox, ay - oy)]


# --- whole images ------------------------------------------------------------------------

def packshot(product: Product) -> Image.Image:
    """The garment alone, centred on white, as shops photograph it."""
    rng = random.Random(f"packshot:{product.id}")
    w, h = PACKSHOT_SIZE
    arms = default_arms()
    uppers, lowers = garment_shapes(product, arms)
    pts = [p for shape in uppers + lowers for p in shape]
    x_span = 2 * max(abs(x) for x, _ in pts)
    y0, y1 = min(y for _, y in pts), max(y for _, y in pts)
    scale = min(h * 0.88 / (y1 - y0), w * 0.88 / x_span)
    c = Canvas(PACKSHOT_SIZE, (255, 255, 255), w / 2, (h - (y1 - y0) * scale) / 2 - y0 * scale,
               scale)
    draw_garment(c, product, rng, "front", arms)
    return c.rgb


def model_photo(product: Product, photo: int) -> tuple[Image.Image, Image.Image]:
    """Model photo `photo` of the product: (RGB photo, 7-class label map)."""
    view = product.views[photo]
    rng = random.Random(f"photo:{product.id}:{photo}")
    w, h = PHOTO_SIZE
    bg = tuple(rng.randint(222, 246) for _ in range(3))
    spread = rng.uniform(0.0, 0.04)
    squeeze = 1.0
    if view in ("front", "back"):
        scale = h * rng.uniform(0.80, 0.93)
        top = rng.uniform(0.02, 0.98 * h - scale)
        cx = w / 2 + rng.uniform(-0.1, 0.1) * w
    elif view == "side":
        scale = h * rng.uniform(0.80, 0.93)
        top = rng.uniform(0.02, 0.98 * h - scale)
        cx = w / 2 + rng.uniform(-0.1, 0.1) * w
        squeeze = 0.55
    elif view == "knee":
        scale = h * rng.uniform(1.25, 1.4)
        top = rng.uniform(0.01, 0.05) * h
        cx = w / 2 + rng.uniform(-0.08, 0.08) * w
    else:  # detail: a close-up of the chest
        scale = h * rng.uniform(2.8, 3.4)
        top = h * 0.5 - 0.28 * scale
        cx = w / 2 + rng.uniform(-0.05, 0.05) * w
    c = Canvas(PHOTO_SIZE, bg, cx, top, scale, squeeze)
    person_rng = random.Random(f"person:{product.id}")
    skin = person_rng.choice(SKINS)
    hair = person_rng.choice(HAIRS)
    arms = default_arms(spread)
    # legs and shoes
    leg_spread = rng.uniform(0.0, 0.025)
    for s in (-1, 1):
        c.limb((s * 0.045, 0.48), (s * (0.05 + leg_spread), 0.95), 0.055, skin, LEGS)
        c.ellipse(s * (0.06 + leg_spread), 0.975, 0.035, 0.02, (40, 36, 34), LEGS)
    # what the model wears besides the product
    if product.category in ("tops", "blouses", "knitwear", "jackets"):
        for shape in pants(0.955, "normal"):
            c.polygon(shape, SECOND_GARMENT["pants"], LOWER)
    elif product.category in ("pants", "skirts"):
        c.polygon(torso(0.40, "normal"), SECOND_GARMENT["skirts"], UPPER)
    # long hair falls behind the shoulders
    if view != "side":
        c.polygon([(-0.07, 0.04), (0.07, 0.04), (0.075, 0.2), (-0.075, 0.2)], hair, HAIR)
    # arms, then the garment (whose sleeves cover them), then the head
    if view == "side":  # one arm, hanging in front of the body
        arms = {sd: ((0.0, 0.165), (0.02, 0.31), (0.03, 0.455)) for sd in (-1, 1)}
    for sd in (-1, 1):
        sh, el, wr = arms[sd]
        c.limb(sh, el, 0.045, skin, ARM)
        c.limb(el, wr, 0.04, skin, ARM)
    draw_garment(c, product, rng, view, arms, skin=skin)
    c.limb((0.0, 0.10), (0.0, 0.16), 0.045, skin, FACE)  # neck
    if view == "back":
        c.ellipse(0.0, 0.065, 0.058, 0.068, hair, HAIR)
    else:
        face_x = 0.012 if view == "side" else 0.0
        c.ellipse(face_x, 0.068, 0.052, 0.065, skin, FACE)
        c.polygon([(-0.06, 0.0), (0.06, 0.0), (0.058, 0.035), (0.0, 0.02), (-0.058, 0.035)],
                  hair, HAIR)
        c.ellipse(0.0, 0.02, 0.06, 0.025, hair, HAIR)
        for ex in ((0.03,) if view == "side" else (-0.02, 0.02)):
            c.ellipse(ex, 0.062, 0.006, 0.004, (40, 40, 50))
    return c.rgb, c.label


def person_box(label: Image.Image) -> list[int] | None:
    """[x0, y0, x1, y1] of the labelled person in pixels (exclusive max), or None."""
    box = label.point(lambda v: 255 if v else 0).getbbox()
    return list(box) if box else None


def jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=False)
    return buf.getvalue()
