"""Product descriptions for the two-stage FashionGAN: a sentence per catalogue row, its tokens,
a small vocabulary built from the catalogue, and the attribute targets the encoder learns.

The study (Zhu et al., ICCV 2017) conditioned its GANs on a sentence per photo. Our catalogue
has no free text in English, but it has the translated columns (contract 3 of
docs/ARCHITECTURE.md), so `describe` phrases them: "striped red dress by esprit, long sleeves,
knee length, loose fit, v neckline". A value the shop did not state is left out, never
guessed. The vocabulary is the catalogue's own words (brands included) plus <pad> and <unk>;
a description none of whose tokens it knows carries no condition at all, so it is refused
(`check_known`) instead of giving the GAN the <unk> embedding for every product.
"""

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.processing.atomic import write_text_atomically
from pipelines.processing.catalogue import LABEL_COLUMNS, LABEL_VOCABULARY

PAD, UNK = "<pad>", "<unk>"
MISSING = -1  # no target: the shop did not state the column (the classifier's convention)

# the English words each vocabulary value is phrased with
CATEGORY_WORDS = {"blouses": "blouse", "dresses": "dress", "jackets": "jacket",
                  "knitwear": "knit", "pants": "pants", "skirts": "skirt", "tops": "top"}
PATTERN_WORDS = {"unicolors": "plain", "stripes": "striped", "floral": "floral",
                 "print": "printed", "polkadots": "polka-dot", "lace": "lace"}
SLEEVE_WORDS = {"long": "long sleeves", "short": "short sleeves", "half": "half sleeves",
                "sleeveless": "sleeveless"}
LENGTH_WORDS = {"3-4": "three-quarter length", "knee": "knee length", "long": "long length",
                "normal": "normal length", "short": "short length"}
DESCRIBED = ("brand", "category", "color", "sleeve_length", "length", "fit", "pattern",
             "neckline")
# the sentence's frame: known in any catalogue, so they say nothing about a product
FRAME_WORDS = frozenset({"by", "sleeves", "length", "fit", "neckline"})
# a word: letters/digits, joined by ' . & - inside (s.oliver, o'polo, even&odd, polka-dot)
TOKEN = re.compile(r"[^\W_]+(?:['.&-][^\W_]+)*")


def _value(row, key: str) -> str | None:
    """row[key] as a stripped string, None when absent, NaN or empty (dict, Series, tuple)."""
    value = row.get(key) if isinstance(row, Mapping | pd.Series) else getattr(row, key, None)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def describe(row) -> str:
    """The product as a sentence from its brand and translated columns; missing values are
    left out (an empty string when nothing is known)."""
    v = {key: _value(row, key) for key in DESCRIBED}
    head = [PATTERN_WORDS.get(v["pattern"], v["pattern"]) if v["pattern"] else None,
            v["color"],
            CATEGORY_WORDS.get(v["category"], v["category"]) if v["category"] else None]
    first = " ".join(w for w in head if w)
    if v["brand"]:
        first = f"{first} by {v['brand']}" if first else f"by {v['brand']}"
    parts = [first,
             SLEEVE_WORDS.get(v["sleeve_length"], v["sleeve_length"]) if v["sleeve_length"]
             else None,
             LENGTH_WORDS.get(v["length"], f"{v['length']} length") if v["length"] else None,
             f"{v['fit']} fit" if v["fit"] else None,
             f"{v['neckline']} neckline" if v["neckline"] else None]
    return ", ".join(p for p in parts if p)


def tokenize(text: str) -> list[str]:
    """Lower-case words (NFKC first, so shop spellings with odd code points agree)."""
    return TOKEN.findall(unicodedata.normalize("NFKC", text or "").lower())


class UnknownDescriptionsError(ValueError):
    """Descriptions whose every token the vocabulary does not know (or that are empty)."""


class Vocabulary:
    """Token <-> index; 0 is <pad>, 1 is <unk>. Built from the catalogue's sentences, saved as
    JSON (a list of tokens in index order), so a loaded encoder reads new text the same way."""

    def __init__(self, tokens: Sequence[str]):
        tokens = list(tokens)
        if tokens[:2] != [PAD, UNK] or len(set(tokens)) != len(tokens):
            raise ValueError("a vocabulary starts with <pad>, <unk> and holds each token once")
        self.tokens = tokens
        self.index = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def build(cls, sentences: Iterable[str], min_count: int = 1) -> "Vocabulary":
        """Every token seen at least min_count times, most frequent first (ties by name)."""
        counts = Counter(t for s in sentences for t in tokenize(s))
        kept = sorted((t for t, c in counts.items() if c >= min_count),
                      key=lambda t: (-counts[t], t))
        return cls([PAD, UNK, *kept])

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def unk(self) -> int:
        return 1

    def ids(self, text: str) -> list[int]:
        return [self.index.get(t, self.unk) for t in tokenize(text)]

    def encode(self, texts: Sequence[str], max_len: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """(tokens int32 (N, T) padded with 0, lengths int32 (N,)); T the longest (>= 1) or
        max_len, longer sentences cut."""
        rows = [self.ids(t)[:max_len] if max_len else self.ids(t) for t in texts]
        width = max([1, *map(len, rows)]) if max_len is None else max_len
        tokens = np.zeros((len(rows), width), np.int32)
        for i, row in enumerate(rows):
            tokens[i, :len(row)] = row
        return tokens, np.array([len(r) for r in rows], np.int32)

    def unknown_rate(self, tokens: np.ndarray, lengths: np.ndarray) -> float:
        """Share of the real (unpadded) tokens that are <unk>."""
        real = np.arange(tokens.shape[1])[None, :] < lengths[:, None]
        n = int(real.sum())
        return float(((tokens == self.unk) & real).sum() / n) if n else 0.0

    def save(self, path: Path) -> Path:
        return write_text_atomically(path, json.dumps(self.tokens, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> "Vocabulary":
        tokens = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ValueError(f"vocabulary {path} is not a JSON list of tokens")
        return cls(tokens)


def check_known(ids: Sequence[str], texts: Sequence[str], tokens: np.ndarray,
                lengths: np.ndarray, vocabulary: Vocabulary) -> None:
    """Refuse descriptions without a single known token (the frame's words, `by`, `fit`, …,
    do not count): the encoder would give every one of them the same condition. The error
    names how many and the first product."""
    empty = [0, vocabulary.unk] + [vocabulary.index[w] for w in FRAME_WORDS
                                   if w in vocabulary.index]
    known = (~np.isin(tokens, empty)).any(1) & (lengths > 0)
    bad = np.flatnonzero(~known)
    if len(bad):
        first = int(bad[0])
        raise UnknownDescriptionsError(
            f"{len(bad)} of {len(ids)} descriptions have no token the vocabulary "
            f"({len(vocabulary)} tokens) knows: all unknown (but for the frame's "
            f"{', '.join(sorted(FRAME_WORDS))}) or empty; the first is product "
            f"{ids[first]!r}: {texts[first]!r}. Build the vocabulary from this catalogue "
            "(train description_encoder on it) or fix the catalogue's columns.")


def catalogue_descriptions(catalogue: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(ids, sentences) of every catalogue row, in its order."""
    return ([str(i) for i in catalogue["id"]],
            [describe(row) for _, row in catalogue.iterrows()])


def default_label_names() -> list[str]:
    """`<column>_<value>` for every label column, as packshots.h5's label_names (42)."""
    return [f"{c}_{v}" for c in LABEL_COLUMNS for v in LABEL_VOCABULARY[c]]


def split_label_name(name: str) -> tuple[str, str]:
    """("sleeve_length", "long") from "sleeve_length_long" (longest column prefix wins)."""
    for column in sorted(LABEL_COLUMNS, key=len, reverse=True):
        if name.startswith(column + "_"):
            return column, name[len(column) + 1:]
    raise ValueError(f"label name {name!r} starts with none of {', '.join(LABEL_COLUMNS)}")


def attribute_targets(catalogue: pd.DataFrame, label_names: Sequence[str] | None = None
                      ) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Per attribute column (those label_names hold, packshots.h5's by default) the class
    index of each row, MISSING where the catalogue has no value; and each column's values."""
    values: dict[str, list[str]] = {}
    for name in label_names or default_label_names():
        column, value = split_label_name(str(name))
        values.setdefault(column, []).append(value)
    targets = {}
    for column, vals in values.items():
        lookup = {v: i for i, v in enumerate(vals)}
        col = catalogue[column] if column in catalogue else pd.Series([None] * len(catalogue))
        targets[column] = np.array([lookup.get(v, MISSING) if isinstance(v, str) else MISSING
                                    for v in col], np.int64)
    return targets, values
