"""German shop attributes -> the closed English vocabulary of the catalogue.

The thesis' rules (shared/reference/attribute_translation.md) match substrings in a fixed order and
miss many real phrasings. Here each tag is normalised first (NFKC, so U+00A0 becomes a space;
lower case; umlauts and ß folded to their ASCII spellings ae/oe/ue/ss, so both spellings agree),
then routed to one column by its key (`Ärmellänge: …`) or, for a bare tag, by its stem
(`…ausschnitt`, `…arm`, `…länge`), and only then matched against that column's value patterns,
ordered so that the longer word wins (dreiviertel before viertel, knöchellang before lang,
mittellang before lang). Measurements (`60 cm bei Größe 36`) and shop noise are ignored; a tag
routed to a column whose value is not in the vocabulary is `None` and reported as unknown.
"""

import re
import unicodedata
from dataclasses import dataclass, field

COLUMNS = ("category", "color", "length", "sleeve_length", "fit", "pattern", "neckline")
VOCABULARY: dict[str, tuple[str, ...]] = {
    "category": ("blouses", "dresses", "jackets", "knitwear", "pants", "skirts", "tops"),
    "color": ("beige", "black", "blue", "gray", "green", "pink", "red", "white", "yellow"),
    "length": ("3-4", "knee", "long", "normal", "short"),
    "sleeve_length": ("half", "long", "short", "sleeveless"),
    "fit": ("loose", "normal", "tight"),
    "pattern": ("floral", "lace", "polkadots", "print", "stripes", "unicolors"),
    "neckline": ("back", "deep", "lined", "round", "v", "wide"),
}
OCCASIONS = ("casual", "party")


def _rules(*pairs: tuple[str, str]) -> list[tuple[str, re.Pattern]]:
    return [(value, re.compile(pattern)) for value, pattern in pairs]


# Value patterns per column, on normalised text; the first that matches wins.
VALUE_RULES: dict[str, list[tuple[str, re.Pattern]]] = {
    "category": _rules(
        ("blouses", r"blus|tunik"), ("dresses", r"kleid"),
        ("knitwear", r"strick|pullover|cardigan|pulli"), ("skirts", r"roeck|rock"),
        ("jackets", r"jacke|maentel|mantel|blazer|parka|weste"),
        ("pants", r"hose|jeans|chino|leggings|jegging"), ("tops", r"shirt|top|body")),
    "color": _rules(
        ("black", r"schwarz|black"), ("white", r"weiss|white|offwhite|ecru"),
        ("pink", r"rosa|pink|rose|lila|fuchsia|flieder|beere"),
        ("red", r"\brot|red\b|bordeaux|weinrot"), ("blue", r"blau|tuerkis|navy|blue|jeansblau"),
        ("green", r"gruen|oliv|khaki|mint|green"), ("yellow", r"gelb|senf|yellow"),
        ("gray", r"grau|anthrazit|silber|gr[ae]y"),
        ("beige", r"beige|braun|camel|creme|sand|taupe|nude|cognac")),
    "sleeve_length": _rules(
        ("half", r"dreiviertel|3/4|halbarm|halbe?r? aermel|\bhalb|ellenbogen"),
        ("sleeveless", r"aermellos|ohne aermel|spaghetti|traeger|sleeveless|armfrei"),
        ("short", r"kurz|viertel|short|kappenaermel|flatter.*kurz"),
        ("long", r"lang|long")),
    "length": _rules(
        ("3-4", r"7/8|3/4|waden|knoechel|midi|dreiviertel|cropped"),
        ("knee", r"knie"),
        ("normal", r"normal|mittel|hueft|regular|standard"),
        ("short", r"kurz|mini|oberschenkel|short"),
        ("long", r"lang|maxi|boden|long")),
    "fit": _rules(
        ("tight", r"taill|skinny|ausgestellt|koerper|figur|\beng|slim|schmal|jegging|fitted"),
        ("loose", r"locker|weit|loose|oversize|wide|laessig|relaxed|baggy|boyfriend"),
        ("normal", r"gerade|normal|straight|regular|klassisch")),
    "pattern": _rules(
        ("lace", r"spitze"), ("floral", r"bluem|blume|floral|flower"),
        ("polkadots", r"punkt|puenktchen|tupf|dots|polka"),
        ("stripes", r"streif|stripe|ringel"),
        ("unicolors", r"unifarben|\buni\b|einfarbig|unicolor|ohne muster"),
        ("print", r"all-?over|meliert|print|camouflage|camo|karo|kariert|paisley|animal"
                  r"|\bleo|gemustert|batik-print")),
    "neckline": _rules(
        ("back", r"ruecken"), ("deep", r"tief"), ("lined", r"eingefasst"),
        ("wide", r"weit|carmen|u-boot|bateau|schulterfrei|off-shoulder"),
        ("v", r"v-ausschnitt|v-neck|^v$|\bv\b"), ("round", r"rund|crew")),
}

# Keys of `Key: Value` tags, per column (normalised, matched against the whole key).
KEY_RULES: dict[str, re.Pattern] = {
    "sleeve_length": re.compile(r"(aermel|arm)(laenge|art|form)?"),
    "length": re.compile(r"(rock|kleid|hosen|bein|jacken|mantel)?laenge|laengenangabe"),
    "fit": re.compile(r"passform|schnitt|fit|silhouette|schnittform"),
    "pattern": re.compile(r"muster|dessin|print|design"),
    "neckline": re.compile(r"(hals)?ausschnitt(form)?|kragen(form)?"),
    "color": re.compile(r"farbe|grundfarbe|hauptfarbe"),
}
# Stems that route a bare tag to a column, tried in this order.
BARE_RULES: list[tuple[str, re.Pattern]] = [
    ("neckline", re.compile(r"ausschnitt|rundhals|v-neck|rueckenfrei|u-boot")),
    ("sleeve_length", re.compile(r"aermel|arm\b|arm-|spaghetti|traeger")),
    ("length", re.compile(r"laenge|(knie|knoechel|waden|boden|oberschenkel)lang"
                          r"|\bmini\b|\bmaxi\b|\bmidi\b")),
    ("fit", re.compile(r"(?<!aus)schnitt|passform|\bfit\b|oversize|figurbetont|koerpernah"
                       r"|tailliert|skinny|jegging")),
    ("pattern", re.compile(r"spitze|bluem|blumen|floral|punkt|tupfen|dots|streif|ringel"
                           r"|unifarben|einfarbig|all-?over|meliert|print|camouflage|kariert"
                           r"|paisley|gemustert")),
]
MEASUREMENT = re.compile(r"\d+\s*(cm|mm|m\b)|groesse|\bgr\.")
_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})


def normalise(text: str) -> str:
    """NFKC (U+00A0 -> space), lower case, umlauts/ß as ASCII, single spaces."""
    text = unicodedata.normalize("NFKC", text).lower().translate(_FOLD)
    return re.sub(r"\s+", " ", text).strip()


def match_value(column: str, text: str) -> str | None:
    """The first vocabulary value of `column` whose pattern occurs in normalised `text`."""
    for value, pattern in VALUE_RULES[column]:
        if pattern.search(text):
            return value
    return None


def classify_tag(tag: str) -> tuple[str | None, str | None, bool]:
    """(column, value, keyed) for one German tag; column None means noise (ignored)."""
    text = normalise(tag)
    if not text or MEASUREMENT.search(text):
        return None, None, False
    if ":" in text:
        key, value = (s.strip() for s in text.split(":", 1))
        for column, pattern in KEY_RULES.items():
            if pattern.fullmatch(key):
                return column, match_value(column, value), True
        text = value  # an unknown key (Material:, Details:): its value may still say something
    for column, stem in BARE_RULES:
        if stem.search(text):
            return column, match_value(column, text), False
    return None, None, False


@dataclass
class Translation:
    """Translated values, plus what could not be used: unknown tags per column, and noise."""

    values: dict[str, str | None]
    unknown: dict[str, list[str]] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)


def translate_report(attributes, category_slug=None, color_slug=None, name=None) -> Translation:
    """`translate_attributes` with the tags it could not use, for coverage counts."""
    values: dict[str, str | None] = {c: None for c in COLUMNS}
    keyed: dict[str, bool] = {}
    out = Translation(values)
    for tag in attributes or []:
        column, value, is_keyed = classify_tag(tag)
        if column is None:
            out.ignored.append(tag)
        elif value is None:
            out.unknown.setdefault(column, []).append(tag)
        elif values[column] is None or (is_keyed and not keyed[column]):
            values[column], keyed[column] = value, is_keyed  # a keyed tag beats a bare one
    # Category and colour come from the listing the product was crawled under; the page's
    # own words are only a fallback when the shop gave no slug.
    attribute_color = values["color"]
    values["category"] = _from_slug("category", category_slug) or _from_slug("category", name)
    values["color"] = _from_slug("color", color_slug) or attribute_color
    return out


def translate_attributes(attributes, category_slug=None, color_slug=None, name=None) -> dict:
    """Exactly the keys of COLUMNS, each a vocabulary value or None (contract 3)."""
    return translate_report(attributes, category_slug, color_slug, name).values


def translate_occasion(name: str | None) -> str | None:
    """The thesis' optional occasion rule, from the product name."""
    text = normalise(name or "")
    if re.search(r"cocktail|ball|fest|party", text):
        return "party"
    if "freizeit" in text:
        return "casual"
    return None


def _from_slug(column: str, slug: str | None) -> str | None:
    return match_value(column, normalise(slug.replace("_", " "))) if slug else None
