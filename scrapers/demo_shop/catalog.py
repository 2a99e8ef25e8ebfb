"""The demo shop's products: deterministic from a seed, phrased the way German shops phrase them.

Every product carries its English ground truth (the closed vocabulary: docs/ARCHITECTURE.md,
contract 3) and the German attribute list a shop page would show,
so the translator can be measured against the truth and the spiders see realistic pages.
"""

import random
from dataclasses import dataclass, field

NBSP = "\u00a0"

# English category -> the shop's URL slug (the translation rules map slugs to categories).
CATEGORY_SLUGS = {
    "blouses": "blusen-tuniken",
    "dresses": "kleider",
    "jackets": "jacken-maentel",
    "knitwear": "pullover-strick",
    "pants": "hosen",
    "skirts": "roecke",
    "tops": "shirts-tops",
}
# English colour -> (the shop's colour-filter slug, RGB used to draw the garment).
COLORS = {
    "black": ("schwarz", (28, 28, 32)),
    "white": ("weiss", (246, 246, 242)),
    "red": ("rot", (196, 30, 45)),
    "blue": ("blau", (38, 74, 168)),
    "green": ("gruen", (46, 125, 60)),
    "yellow": ("gelb", (240, 200, 40)),
    "pink": ("rosa", (236, 130, 170)),
    "gray": ("grau", (128, 128, 132)),
    "beige": ("beige", (214, 190, 150)),
}
# Real shops sell far more black than yellow; the weights make listings uneven like theirs.
COLOR_WEIGHTS = {"black": 6, "blue": 4, "white": 4, "beige": 3, "gray": 3, "red": 2, "green": 2,
                 "pink": 2, "yellow": 1}

# Which attribute columns a category's pages talk about.
APPLICABLE = {
    "blouses": ("sleeve_length", "fit", "pattern", "neckline"),
    "dresses": ("sleeve_length", "length", "fit", "pattern", "neckline"),
    "jackets": ("sleeve_length", "length", "fit", "pattern"),
    "knitwear": ("sleeve_length", "fit", "pattern", "neckline"),
    "pants": ("length", "fit", "pattern"),
    "skirts": ("length", "fit", "pattern"),
    "tops": ("sleeve_length", "fit", "pattern", "neckline"),
}
VALUES = {
    "sleeve_length": ("long", "short", "half", "sleeveless"),
    "length": ("short", "knee", "3-4", "long", "normal"),
    "fit": ("normal", "tight", "loose"),
    "pattern": ("unicolors", "stripes", "floral", "print", "polkadots", "lace"),
    "neckline": ("round", "v", "wide", "deep", "back", "lined"),
}
VALUE_WEIGHTS = {
    "sleeve_length": (4, 3, 2, 2),
    "length": (3, 3, 2, 3, 2),
    "fit": (4, 3, 2),
    "pattern": (6, 2, 2, 2, 1, 1),
    "neckline": (5, 3, 2, 1, 1, 1),
}
# Jackets and sleeveless make a strange pair; pants are never knee-length in most shops' words.
EXCLUDED = {("jackets", "sleeve_length", "sleeveless"), ("jackets", "length", "3-4")}

K = f":{NBSP}"  # the non-breaking space real shops put after the colon
# Phrasings seen on German shop pages, per (column, value). Keys come with NBSP, a plain space
# or ASCII transliteration; bare tags come capitalised or not.
PHRASES = {
    "sleeve_length": {
        "long": [f"Ärmellänge{K}Langarm", "Ärmellänge: Lang", "Langarm", f"Ärmellänge{K}lang",
                 "Aermellaenge: Langarm", "Langärmelig", "Ärmel: lange Ärmel"],
        "short": [f"Ärmellänge{K}Kurzarm", "Ärmellänge: Kurz", "Kurzarm", "Kurzärmelig",
                  f"Ärmellänge{K}Viertelarm", "Aermellaenge: kurzarm", "Ärmel: kurze Ärmel"],
        "half": [f"Ärmellänge{K}3/4-Arm", "Ärmellänge: Dreiviertelarm", "3/4-Ärmel",
                 f"Ärmellänge{K}Halbarm", "Dreiviertelärmel", "Aermellaenge: 3/4 Arm"],
        "sleeveless": [f"Ärmellänge{K}Ärmellos", "Ärmellos", "Spaghettiträger",
                       "Ärmellänge: ohne Ärmel", "Aermellos", f"Ärmellänge{K}Spaghettiträger"],
    },
    "length": {
        "short": [f"Länge{K}Kurz", "Länge: Mini", f"Länge{K}Oberschenkellang", "Minilänge",
                  "Laenge: kurz"],
        "knee": [f"Länge{K}Knielang", "Knielang", "Länge: knieumspielend", "Laenge: Knielang"],
        "3-4": [f"Länge{K}7/8-Länge", "Länge: Knöchellang", f"Länge{K}Wadenlang",
                "Länge: 3/4", "Knöchellang", "Laenge: knoechellang", f"Länge{K}Midi"],
        "long": [f"Länge{K}Lang/Maxi", "Länge: Bodenlang", "Maxilänge", f"Länge{K}Extralang",
                 "Laenge: Lang"],
        "normal": [f"Länge{K}Normal", "Länge: Mittellang", f"Länge{K}Hüftlang",
                   "Laenge: normal"],
    },
    "fit": {
        "normal": [f"Passform{K}Gerade geschnitten", "Passform: Normal", "Regular Fit",
                   "Gerader Schnitt", f"Passform{K}Straight"],
        "loose": [f"Passform{K}Lockere Passform", "Oversized", "Weiter Schnitt",
                  "Passform: Loose Fit", f"Passform{K}Lässig"],
        "tight": [f"Passform{K}Tailliert", "Taillierter Schnitt", "Skinny Fit", "Figurbetont",
                  "Passform: Eng", "Slim Fit", f"Passform{K}Körpernah"],
    },
    "pattern": {
        "unicolors": [f"Muster{K}Unifarben", "Unifarben", "Muster: Uni", "Einfarbig"],
        "stripes": [f"Muster{K}Streifen", "Gestreift", "Streifenmuster", "Muster: Längsstreifen"],
        "floral": [f"Muster{K}Floral", "Blumenmuster", "Muster: Geblümt", "Blumenprint"],
        "print": [f"Muster{K}Print", "All-over-Print", "Muster: Kariert", "Camouflage",
                  "Paisley-Muster", f"Muster{K}Meliert", "Animalprint"],
        "polkadots": [f"Muster{K}Gepunktet", "Punktemuster", "Muster: Polka Dots", "Tupfen"],
        "lace": [f"Muster{K}Spitze", "Spitzendetails", "Muster: Lochspitze"],
    },
    "neckline": {
        "round": [f"Ausschnitt{K}Rundhals", "Rundhals-Ausschnitt", "Rundhalsausschnitt",
                  "Ausschnitt: Rundhalsausschnitt", "Kragen: Rundhals"],
        "v": [f"Ausschnitt{K}V-Ausschnitt", "V-Ausschnitt", "V-Neck", "Ausschnitt: V"],
        "wide": [f"Ausschnitt{K}U-Boot-Ausschnitt", "Carmen-Ausschnitt", "Weiter Ausschnitt",
                 "Ausschnitt: U-Boot"],
        "deep": ["Tiefer Ausschnitt", f"Ausschnitt{K}Tief", "Tiefer V-Ausschnitt"],
        "back": ["Rückenausschnitt", f"Ausschnitt{K}Rückenfrei", "Ausschnitt: tiefer Rücken"],
        "lined": ["Eingefasster Ausschnitt", f"Ausschnitt{K}Eingefasst"],
    },
}
# Phrasings outside the closed vocabulary: the truth for these products is None.
UNKNOWN_PHRASES = {
    "sleeve_length": ["Ärmellänge: Flügelärmel", f"Ärmellänge{K}Cape-Ärmel"],
    "length": ["Länge: asymmetrisch"],
    "fit": ["Passform: Bequem"],
    "pattern": ["Muster: Batik"],
    "neckline": ["Ausschnitt: Wasserfall", f"Ausschnitt{K}Stehkragen"],
}
NOISE = [
    "100 Tage Rückgaberecht", "Maschinenwäsche bei 30°C", "Maschinenwäsche bei 40 °C",
    "Nicht im Trockner trocknen", f"Material{K}95% Baumwolle, 5% Elasthan",
    "Obermaterial: 100% Viskose", "Material: 100% Polyester", f"Verschluss{K}Knopfleiste",
    "Taschen: Seitentaschen", f"Futter{K}Ohne Futter", "Details: Zierknöpfe",
    f"Gesamtlänge{K}98 cm bei Größe 36", f"Länge{K}62 cm bei Größe S",
    f"Ärmellänge{K}60 cm bei Größe 36", "Unser Model ist 177 cm groß und trägt Größe 36",
    "Pflegehinweise: Schonwaschgang", "Nachhaltig: Bio-Baumwolle",
]

NOUNS = {
    "blouses": ["Bluse", "Tunika", "Hemdbluse", "Schluppenbluse"],
    "dresses": ["Jerseykleid", "Blusenkleid", "Etuikleid", "Sommerkleid", "Cocktailkleid",
                "Freizeitkleid", "Partykleid"],
    "jackets": ["Jacke", "Übergangsjacke", "Blazer", "Kurzmantel", "Jeansjacke"],
    "knitwear": ["Pullover", "Strickpullover", "Strickjacke", "Cardigan"],
    "pants": ["Hose", "Stoffhose", "Jeans", "Chino", "Freizeithose", "Marlene-Hose"],
    "skirts": ["Rock", "Faltenrock", "Bleistiftrock", "Midirock", "A-Linien-Rock"],
    "tops": ["T-Shirt", "Top", "Shirt", "Longsleeve", "Tanktop"],
}
ADJECTIVES = ["Basic", "Elegantes", "Leichtes", "Feminines", "Klassisches", "Modernes", "Weiches"]
BRANDS = ["Esprit", "s.Oliver", "Vero Moda", "ONLY", "Tom Tailor", "Mango", "Street One", "Opus",
          "Marc O'Polo", "Comma", "Betty Barclay", "Anna Field", "Even&Odd", "Pieces", "Vila",
          "Selected Femme", "Zero", "Boss"]

VIEWS = ("front", "back", "knee", "side", "detail")


@dataclass
class Product:
    """One demo product: its English truth, its German page text and its model photos' views."""

    index: int
    id: str
    category: str
    color: str
    brand: str
    name: str
    price: float
    truth: dict  # the seven translated columns (+ occasion), English or None
    attributes: list[str]  # as on the page
    views: list[str]  # one per model photo, in page order
    detail_side: int  # +1 or -1: which side the pocket/logo sits on (breaks left-right symmetry)
    faults: set[str] = field(default_factory=set)

    @property
    def category_slug(self) -> str:
        return CATEGORY_SLUGS[self.category]

    @property
    def color_slug(self) -> str:
        return COLORS[self.color][0]


def occasion_of(name: str) -> str | None:
    """The thesis' occasion rule, mirrored here so the truth agrees with the catalogue's."""
    low = name.lower()
    if any(w in low for w in ("cocktail", "ball", "fest", "party")):
        return "party"
    if "freizeit" in low:
        return "casual"
    return None


def _pick(rng: random.Random, options, weights=None):
    return rng.choices(list(options), weights=weights, k=1)[0]


def make_product(seed: int, index: int) -> Product:
    """Product `index` of the shop with `seed`: independent of N, so shops of any size agree."""
    rng = random.Random(f"demo-shop:{seed}:{index}")
    category = sorted(CATEGORY_SLUGS)[_pick(rng, range(7))]
    color = _pick(rng, COLOR_WEIGHTS, list(COLOR_WEIGHTS.values()))
    truth: dict = {c: None for c in ("length", "sleeve_length", "fit", "pattern", "neckline")}
    attributes: list[str] = []
    for column in APPLICABLE[category]:
        values = [v for v in VALUES[column] if (category, column, v) not in EXCLUDED]
        weights = [w for v, w in zip(VALUES[column], VALUE_WEIGHTS[column], strict=True)
                   if (category, column, v) not in EXCLUDED]
        roll = rng.random()
        if roll < 0.06:
            continue  # the shop simply does not say
        if roll < 0.09:
            attributes.append(_pick(rng, UNKNOWN_PHRASES[column]))
            continue
        value = _pick(rng, values, weights)
        truth[column] = value
        attributes.append(_pick(rng, PHRASES[column][value]))
    attributes += rng.sample(NOISE, rng.randint(1, 4))
    attributes.append(f"Artikel-Nr{K}DS{seed % 100:02d}{index:06d}")
    rng.shuffle(attributes)
    brand = _pick(rng, BRANDS)
    name = f"{_pick(rng, ADJECTIVES)} {_pick(rng, NOUNS[category])}"
    truth["category"] = category
    truth["color"] = color
    truth["occasion"] = occasion_of(name)
    n_photos = rng.randint(3, 6)
    others = ["back", "knee", "side", "detail", "side", "detail"]
    views = ["front"] + rng.sample(others, n_photos - 1)
    rng.shuffle(views)
    return Product(
        index=index,
        id=f"DS{seed % 100:02d}{index:06d}",
        category=category,
        color=color,
        brand=brand,
        name=name,
        price=round(rng.uniform(9.95, 199.95), 1) - 0.05,
        truth={k: truth[k] for k in ("category", "color", "length", "sleeve_length", "fit",
                                     "pattern", "neckline", "occasion")},
        attributes=attributes,
        views=views,
        detail_side=rng.choice((-1, 1)),
    )


def make_catalog(n_products: int, seed: int) -> list[Product]:
    """The whole shop, with a few deterministic faults real shops show (see server.py)."""
    products = [make_product(seed, i) for i in range(n_products)]
    if n_products >= 8:
        rng = random.Random(f"demo-shop-faults:{seed}")
        picks = rng.sample(range(n_products), 4)
        products[picks[0]].faults.add("404")  # listed, but its page is gone
        products[picks[1]].faults.add("truncated_packshot")  # the packshot JPEG is cut off
        products[picks[2]].faults.add("truncated_model_photo")  # one model photo is cut off
        products[picks[3]].faults.add("listed_twice")  # appears on two listing pages
    return products
