"""The translator on real shop phrasings, its contract, and the demo shop's ground truth."""

import pytest

from pipelines.processing.translate import (
    COLUMNS,
    VOCABULARY,
    classify_tag,
    normalise,
    translate_attributes,
    translate_occasion,
    translate_report,
)
from scrapers.demo_shop.catalog import make_product

NBSP = "\u00a0"

PHRASINGS = [
    # sleeve length: Key: Value with NBSP, bare tags, ASCII spellings, the dreiviertel trap
    (f"Ärmellänge:{NBSP}Kurzarm", "sleeve_length", "short"),
    ("Ärmellänge: Langarm", "sleeve_length", "long"),
    ("ÄRMELLÄNGE: LANGARM", "sleeve_length", "long"),
    ("Aermellaenge: Kurzarm", "sleeve_length", "short"),
    ("Ärmellänge: Dreiviertelarm", "sleeve_length", "half"),
    ("Ärmellänge: Viertelarm", "sleeve_length", "short"),
    ("Ärmellänge: 3/4-Arm", "sleeve_length", "half"),
    ("3/4-Ärmel", "sleeve_length", "half"),
    ("Dreiviertelärmel", "sleeve_length", "half"),
    ("Ärmellos", "sleeve_length", "sleeveless"),
    ("Spaghettiträger", "sleeve_length", "sleeveless"),
    ("Ärmellänge: ohne Ärmel", "sleeve_length", "sleeveless"),
    ("Langarm", "sleeve_length", "long"),
    ("Kurzärmelig", "sleeve_length", "short"),
    ("Ärmel: kurze Ärmel", "sleeve_length", "short"),
    # length: the knöchellang and mittellang traps
    ("Länge: Lang/Maxi", "length", "long"),
    ("Länge: Knöchellang", "length", "3-4"),
    ("Laenge: knoechellang", "length", "3-4"),
    ("Knöchellang", "length", "3-4"),
    ("Länge: 7/8-Länge", "length", "3-4"),
    ("Länge: Wadenlang", "length", "3-4"),
    ("Länge: Midi", "length", "3-4"),
    ("Länge: Knielang", "length", "knee"),
    ("Knielang", "length", "knee"),
    ("Länge: Mittellang", "length", "normal"),
    ("Länge: Hüftlang", "length", "normal"),
    ("Länge: Normal", "length", "normal"),
    ("Länge: Kurz", "length", "short"),
    ("Länge: Mini", "length", "short"),
    ("Länge: Oberschenkellang", "length", "short"),
    ("Maxilänge", "length", "long"),
    ("Länge: Bodenlang", "length", "long"),
    # fit: Passform and Schnitt, German and English words
    ("Passform: Lockere Passform", "fit", "loose"),
    ("Taillierter Schnitt", "fit", "tight"),
    ("Weiter Schnitt", "fit", "loose"),
    ("Gerader Schnitt", "fit", "normal"),
    ("Passform: Gerade geschnitten", "fit", "normal"),
    ("Regular Fit", "fit", "normal"),
    ("Skinny Fit", "fit", "tight"),
    ("Slim Fit", "fit", "tight"),
    ("Oversized", "fit", "loose"),
    ("Figurbetont", "fit", "tight"),
    ("Passform: Ausgestellt", "fit", "tight"),
    ("Passform: Körpernah", "fit", "tight"),
    ("Passform: Lässig", "fit", "loose"),
    # pattern
    ("Muster: Unifarben", "pattern", "unicolors"),
    ("Unifarben", "pattern", "unicolors"),
    ("Einfarbig", "pattern", "unicolors"),
    ("Muster: Uni", "pattern", "unicolors"),
    ("Gestreift", "pattern", "stripes"),
    ("Streifenmuster", "pattern", "stripes"),
    ("Muster: Geblümt", "pattern", "floral"),
    ("Blumenprint", "pattern", "floral"),
    ("Muster: Gepunktet", "pattern", "polkadots"),
    ("Tupfen", "pattern", "polkadots"),
    ("Muster: Spitze", "pattern", "lace"),
    ("Spitzendetails", "pattern", "lace"),
    ("All-over-Print", "pattern", "print"),
    ("Muster: Kariert", "pattern", "print"),
    ("Camouflage", "pattern", "print"),
    ("Paisley-Muster", "pattern", "print"),
    ("Muster: Meliert", "pattern", "print"),
    # neckline: Weiter Ausschnitt is a neckline, not a fit
    ("Rundhals-Ausschnitt", "neckline", "round"),
    ("Ausschnitt: Rundhals", "neckline", "round"),
    ("Kragen: Rundhals", "neckline", "round"),
    ("V-Ausschnitt", "neckline", "v"),
    ("V-Neck", "neckline", "v"),
    ("Ausschnitt: V", "neckline", "v"),
    ("Weiter Ausschnitt", "neckline", "wide"),
    ("Carmen-Ausschnitt", "neckline", "wide"),
    ("Ausschnitt: U-Boot-Ausschnitt", "neckline", "wide"),
    ("Tiefer Ausschnitt", "neckline", "deep"),
    ("Rückenausschnitt", "neckline", "back"),
    ("Ausschnitt: Rückenfrei", "neckline", "back"),
    ("Eingefasster Ausschnitt", "neckline", "lined"),
]


@pytest.mark.parametrize("tag,column,value", PHRASINGS)
def test_real_phrasings(tag, column, value):
    assert translate_attributes([tag])[column] == value
    # the same tag with a non-breaking space and odd case reads the same
    assert translate_attributes([tag.replace(": ", ":" + NBSP).upper()])[column] == value


NOISE = ["100 Tage Rückgaberecht", "Maschinenwäsche bei 30°C", f"Artikel-Nr:{NBSP}ON321C1KD",
         "Material: 95% Baumwolle, 5% Elasthan", "Gesamtlänge: 98 cm bei Größe 36",
         f"Ärmellänge:{NBSP}60 cm bei Größe 36", "Länge: 62 cm bei Größe S",
         "Unser Model ist 177 cm groß und trägt Größe 36", "Nicht im Trockner trocknen",
         "Verschluss: Knopfleiste", "Futter: Ohne Futter"]


@pytest.mark.parametrize("tag", NOISE)
def test_noise_is_ignored(tag):
    column, value, _ = classify_tag(tag)
    assert (column, value) == (None, None)


def test_contract_keys_and_values():
    out = translate_attributes(["Ärmellänge: Kurzarm", "Passform: Normal"], "kleider", "_schwarz")
    assert tuple(out) == COLUMNS
    assert out["category"] == "dresses" and out["color"] == "black"
    assert translate_attributes([]) == dict.fromkeys(COLUMNS)
    assert translate_attributes(None) == dict.fromkeys(COLUMNS)


@pytest.mark.parametrize("slug,category", [
    ("shirts", "tops"), ("tops", "tops"), ("hosen", "pants"), ("jeans", "pants"),
    ("strick", "knitwear"), ("pullover-strick", "knitwear"),
    ("pullover-und-strickjacken", "knitwear"), ("jacken", "jackets"),
    ("jacken-maentel", "jackets"), ("kleider", "dresses"), ("roecke", "skirts"),
    ("blusen", "blouses"), ("blusen-und-tuniken", "blouses"), ("blusen-tuniken", "blouses")])
def test_category_from_slug(slug, category):
    assert translate_attributes([], category_slug=slug)["category"] == category


@pytest.mark.parametrize("slug,color", [
    ("_schwarz", "black"), ("farbe-schwarz", "black"), ("weiss", "white"), ("weiß", "white"),
    ("rot", "red"), ("blau-turkis", "blue"), ("gruen.oliv", "green"), ("grün", "green"),
    ("gelb", "yellow"), ("lila.pink", "pink"), ("rosa", "pink"), ("rose", "pink"),
    ("grau", "gray"), ("beige", "beige"), ("braun", "beige")])
def test_color_from_slug(slug, color):
    assert translate_attributes([], color_slug=slug)["color"] == color


def test_fallbacks_when_the_shop_gave_no_slug():
    out = translate_attributes(["Farbe: Dunkelblau"], name="Esprit Jerseykleid")
    assert out["category"] == "dresses" and out["color"] == "blue"
    # a slug beats the page's own colour word
    assert translate_attributes(["Farbe: Rot"], color_slug="schwarz")["color"] == "black"


def test_keyed_tag_beats_bare_tag_and_unknowns_are_reported():
    report = translate_report(["Kurzarm", "Ärmellänge: Langarm", "Ausschnitt: Wasserfall",
                               "Maschinenwäsche bei 30°C"])
    assert report.values["sleeve_length"] == "long"
    assert report.values["neckline"] is None
    assert report.unknown == {"neckline": ["Ausschnitt: Wasserfall"]}
    assert report.ignored == ["Maschinenwäsche bei 30°C"]


def test_normalise_folds_umlauts_and_spaces():
    assert normalise(f"  Ärmellänge:{NBSP}Größe  ") == "aermellaenge: groesse"


def test_occasion_from_name():
    assert translate_occasion("Cocktailkleid") == "party"
    assert translate_occasion("Freizeithose") == "casual"
    assert translate_occasion("Bluse") is None


def test_values_always_in_vocabulary():
    for i in range(300):
        p = make_product(3, i)
        out = translate_attributes(p.attributes, p.category_slug, p.color_slug, p.name)
        for column in COLUMNS:
            assert out[column] is None or out[column] in VOCABULARY[column]


def test_agrees_with_demo_truth():
    """On 1000 demo products every column matches the ground truth for >= 99% of products."""
    products = [make_product(7, i) for i in range(1000)]
    for column in COLUMNS:
        right = sum(translate_attributes(p.attributes, p.category_slug, p.color_slug,
                                         p.name)[column] == p.truth[column] for p in products)
        assert right / len(products) >= 0.99, column
