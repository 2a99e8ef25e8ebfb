"""The translator against the thesis' substring rules, on the demo shop's ground truth.

    python benchmarks/translation_accuracy.py [--products 2000] [--seed 11]

Accuracy per column = share of products whose translated value equals the truth (None
included: a shop that says nothing, or says something outside the vocabulary, must give None).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.processing.translate import translate_attributes  # noqa: E402
from scrapers.demo_shop.catalog import make_product  # noqa: E402

COLUMNS = ("length", "sleeve_length", "fit", "pattern", "neckline")


def thesis_rules(attributes: list[str]) -> dict:
    """The original dataset's (the thesis') translation rules, as written (lower case only)."""
    out = dict.fromkeys(COLUMNS)
    for raw in attributes:
        a = raw.lower()
        if "ärmel" in a and "cm" not in a and "größe" not in a:
            for value, words in (("half", ("dreiviertel", "halb")), ("short", ("kurz", "viertel")),
                                 ("long", ("lang",)), ("sleeveless", ("spaghetti", "ärmellos"))):
                if any(w in a for w in words):
                    out["sleeve_length"] = value
                    break
        if a.startswith("länge") and "cm" not in a and "größe" not in a:
            for value, words in (("3-4", ("7/8", "3/4", "waden", "knöchel")),
                                 ("normal", ("normal", "mittel")), ("knee", ("knielang",)),
                                 ("short", ("kurz", "oberschenkel")), ("long", ("lang",))):
                if any(w in a for w in words):
                    out["length"] = value
                    break
        if "ausschnitt" in a:
            for value, words in (("v", ("v-ausschnitt",)), ("round", ("rund",)),
                                 ("lined", ("eingefasst",)), ("back", ("rücken",)),
                                 ("wide", ("weit", "carmen", "u-boot")), ("deep", ("tief",))):
                if any(w in a for w in words):
                    out["neckline"] = value
                    break
        if any(w in a for w in ("floral", "streif", "punkt", "muster", "spitze", "unifarben")):
            for value, words in (("lace", ("spitze",)), ("floral", ("blüm", "floral")),
                                 ("polkadots", ("punkt",)), ("stripes", ("streif",)),
                                 ("print", ("all-over", "meliert", "print", "camouflage",
                                            "kariert", "paisley")),
                                 ("unicolors", ("unifarben",))):
                if any(w in a for w in words):
                    out["pattern"] = value
                    break
        if "passform" in a or " schnitt" in a:
            for value, words in (("normal", ("gerade", "normal", "straight", "regular")),
                                 ("loose", ("locker", "weit", "loose", "oversized", "wide")),
                                 ("tight", ("tailliert", "skinny", "ausgestellt", "körper",
                                            "figur", "eng", "slim", "schmal", "jegging"))):
                if any(w in a for w in words):
                    out["fit"] = value
                    break
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--products", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    products = [make_product(args.seed, i) for i in range(args.products)]
    ours = [translate_attributes(p.attributes, p.category_slug, p.color_slug, p.name)
            for p in products]
    theirs = [thesis_rules(p.attributes) for p in products]
    print(f"{args.products} demo products (seed {args.seed})\n")
    print("| column | thesis rules | this translator | products stating it |")
    print("|---|---|---|---|")
    for column in COLUMNS:
        stated = [i for i, p in enumerate(products) if p.truth[column] is not None]
        acc = [sum(r[column] == p.truth[column] for r, p in zip(rs, products, strict=True))
               / len(products) for rs in (theirs, ours)]
        print(f"| {column} | {acc[0]:.1%} | {acc[1]:.1%} | {len(stated)} |")
    for name in ("category", "color"):
        acc = sum(o[name] == p.truth[name] for o, p in zip(ours, products, strict=True))
        print(f"| {name} (from slugs) | — | {acc / len(products):.1%} | {len(products)} |")


if __name__ == "__main__":
    main()
