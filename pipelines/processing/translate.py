"""German shop attributes -> the closed English vocabulary of the catalogue.

The thesis' rules (as benchmarks/translation_accuracy.py writes them out) match substrings in a
fixed order and miss many real phrasings. Here each tag is normalised first (NFKC, so U+00A0
becomes a space; lower case; umlauts and ß folded to their ASCII spellings ae/oe/ue/ss, so both
spellings agree), then routed to one column by its key (`Ärmellänge: …`) or, for a bare tag, by its
stem (`…ausschnitt`, `…arm`, `…länge`), and only then matched against that column's value patterns,
ordered so that the longer word wins (dreiviertel before viertel, knöchellang before lang,
mittellang before lang). Measurements (`60 cm bei Größe 36`) and shop noise are ignored; a tag
routed to a column whose value is not in the vocabulary is `None` and reported as unknown.

Scraped input is hostile: normalisation first decodes HTML entities (`&auml;`) and drops invisible
characters (zero-width spaces, soft hyphens) that shops paste mid-word. Every pattern runs in
linear time (no `.*`, no unbounded repeat that can backtrack), and a tag, slug or name longer than
MAX_TAG_CHARS, a tag list longer than MAX_TAGS, a non-string tag/slug/name or a bare string where
the tag list belongs is skipped with a count (`stats=`), never a `TypeError`, so one poisoned crawl
cannot stall every later rebuild of the catalogue.
"""

import html
import logging
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

# Real tags are under 200 characters (names and slugs too); a longer one is junk, or an attack.
# Checked on the raw string, before any decoding, so even normalisation never sees a huge input.
MAX_TAG_CHARS = 500
# Real products carry under 50 tags; the rest of a longer list is dropped with a count.
MAX_TAGS = 200
# What `stats` counts: input skipped or dropped (logged as a warning), per reason ...
SKIP_REASONS = ("bare_string_attributes", "skipped_non_list_attributes", "skipped_non_string_tag",
                "dropped_tag_too_long", "dropped_tag_over_limit", "empty_tag",
                "skipped_non_string_slug", "dropped_slug_too_long",
                "skipped_non_string_name", "dropped_name_too_long")
# ... and a tag that matched no rule at all, neither a column nor noise (logged as info).
UNKNOWN_TAG = "unknown_tag"

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
        # (`flatter.*kurz` was here: quadratic on repeated "flatter", and `kurz` covers it)
        ("short", r"kurz|viertel|short|kappenaermel"),
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
# A number only where a digit run starts, taken whole (possessive): `\d+\s*(cm|…)` alone retried
# every suffix of a digit run, quadratic in its length (20,000 digits took 9.5 s).
MEASUREMENT = re.compile(r"(?<!\d)\d++\s*+(?:cm|mm|m\b)|groesse|\bgr\.")
_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})
# Zero-width space / non-joiner / joiner, word joiner, BOM, soft hyphen: NFKC keeps them all.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
_SPACES = re.compile(r"\s+")
_OCCASIONS = (("party", re.compile(r"cocktail|ball|fest|party")),
              ("casual", re.compile(r"freizeit")))


def normalise(text: str) -> str:
    """Entities decoded, invisible characters dropped, NFKC (U+00A0 -> space), lower case,
    umlauts/ß as ASCII, single spaces: every spelling a shop uses for one word agrees."""
    text = html.unescape(text).translate(_INVISIBLE)
    text = unicodedata.normalize("NFKC", text).lower().translate(_FOLD)
    return _SPACES.sub(" ", text).strip()


def match_value(column: str, text: str) -> str | None:
    """The first vocabulary value of `column` whose pattern occurs in normalised `text`."""
    for value, pattern in VALUE_RULES[column]:
        if pattern.search(text):
            return value
    return None


def classify_tag(tag: str) -> tuple[str | None, str | None, bool]:
    """(column, value, keyed) for one German tag; column None means noise (ignored)."""
    return _classify(normalise(tag))


def _classify(text: str) -> tuple[str | None, str | None, bool]:
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
    counts: Counter = field(default_factory=Counter)  # SKIP_REASONS and UNKNOWN_TAG -> count


def translate_report(attributes, category_slug=None, color_slug=None, name=None, *,
                     stats: Counter | None = None) -> Translation:
    """`translate_attributes` with the tags it could not use, for coverage counts.

    Skipped input and tags that matched no rule are counted in `Translation.counts` and added to
    `stats` when given (the caller aggregates and logs once); without `stats`, skips are logged
    here, one line per reason."""
    values: dict[str, str | None] = {c: None for c in COLUMNS}
    keyed: dict[str, bool] = {}
    out = Translation(values)
    counts = out.counts
    for tag in _tag_list(attributes, counts):
        if not isinstance(tag, str):
            counts["skipped_non_string_tag"] += 1
            continue
        if len(tag) > MAX_TAG_CHARS:
            counts["dropped_tag_too_long"] += 1
            continue
        text = normalise(tag)
        column, value, is_keyed = _classify(text)
        if column is None:
            out.ignored.append(tag)
            if not text:
                counts["empty_tag"] += 1
            elif not MEASUREMENT.search(text):
                counts[UNKNOWN_TAG] += 1
        elif value is None:
            out.unknown.setdefault(column, []).append(tag)
        elif values[column] is None or (is_keyed and not keyed[column]):
            values[column], keyed[column] = value, is_keyed  # a keyed tag beats a bare one
    # Category and colour come from the listing the product was crawled under; the page's
    # own words are only a fallback when the shop gave no slug.
    attribute_color = values["color"]
    category_slug = _string(category_slug, "slug", counts)
    color_slug = _string(color_slug, "slug", counts)
    name = _string(name, "name", counts)
    values["category"] = _from_slug("category", category_slug) or _from_slug("category", name)
    values["color"] = _from_slug("color", color_slug) or attribute_color
    if stats is None:
        log_counts(Counter({k: n for k, n in counts.items() if k in SKIP_REASONS}), "translate")
    else:
        stats.update(counts)
    return out


def translate_attributes(attributes, category_slug=None, color_slug=None, name=None, *,
                         stats: Counter | None = None) -> dict:
    """Exactly the keys of COLUMNS, each a vocabulary value or None (contract 3); skipped input
    is counted into `stats` when given (see translate_report)."""
    return translate_report(attributes, category_slug, color_slug, name, stats=stats).values


def translate_occasion(name: str | None) -> str | None:
    """The thesis' optional occasion rule, from the product name (None for a name that is not a
    usable string; translate_report counts those)."""
    name = _string(name, "name", Counter())
    text = normalise(name) if name else ""
    return next((value for value, pattern in _OCCASIONS if pattern.search(text)), None)


def log_counts(counts: Counter, where: str) -> None:
    """One log line per reason with its count, never one per tag: a poisoned crawl of a million
    bad tags is one warning, not a million."""
    for reason, n in sorted(counts.items()):
        if n:
            level = logging.WARNING if reason in SKIP_REASONS else logging.INFO
            logger.log(level, "%s: %d x %s", where, n, reason)


def _is_missing(value) -> bool:
    """None or a float NaN: how pandas spells an absent field, not a malformed one."""
    return value is None or (isinstance(value, float) and value != value)


def _tag_list(attributes, counts: Counter) -> list:
    """The tags as a list: None/NaN is no tags; a bare string is one tag (counted); anything
    else that is not a list (a dict, a number) is skipped with a count, never iterated."""
    if _is_missing(attributes):
        return []
    if isinstance(attributes, str):
        counts["bare_string_attributes"] += 1
        return [attributes]
    if not isinstance(attributes, (list, tuple)) and hasattr(attributes, "tolist"):
        attributes = attributes.tolist()  # a numpy array or Series, as read back from Parquet
    if not isinstance(attributes, (list, tuple)):
        counts["skipped_non_list_attributes"] += 1
        return []
    if len(attributes) > MAX_TAGS:
        counts["dropped_tag_over_limit"] += len(attributes) - MAX_TAGS
        return list(attributes[:MAX_TAGS])
    return list(attributes)


def _string(value, kind: str, counts: Counter) -> str | None:
    """A slug or name as a string, or None: missing silently, malformed or too long counted."""
    if _is_missing(value):
        return None
    if not isinstance(value, str):
        counts[f"skipped_non_string_{kind}"] += 1
        return None
    if len(value) > MAX_TAG_CHARS:
        counts[f"dropped_{kind}_too_long"] += 1
        return None
    return value


def _from_slug(column: str, slug: str | None) -> str | None:
    return match_value(column, normalise(slug.replace("_", " "))) if slug else None
