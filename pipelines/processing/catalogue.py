"""Merge every crawl of every shop into one translated catalogue with square packshots.

A product seen in several crawls is one row: its newest page wins, and first_seen / last_seen
record when it was first and last crawled. Rows that cannot be used are dropped with a counted
reason (no category, unreadable packshot); nothing disappears silently.
"""

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from pipelines.processing.images import square_packshot
from pipelines.processing.translate import (
    COLUMNS,
    UNKNOWN_TAG,
    VOCABULARY,
    log_counts,
    translate_occasion,
    translate_report,
)

# The thesis' data.csv columns, in its order, then what this pipeline adds.
THESIS_COLUMNS = ["id", "img_path", "img_url", "model_img_urls", "product_url", "brand", "name",
                  "attributes", *COLUMNS]
EXTRA_COLUMNS = ["occasion", "shop", "category_slug", "color_slug", "price", "model_img_paths",
                 "first_seen", "last_seen"]
LIST_COLUMNS = ("model_img_urls", "attributes", "model_img_paths")
LABEL_COLUMNS = (*COLUMNS, "occasion")
LABEL_VOCABULARY = {**VOCABULARY, "occasion": ("casual", "party")}


@dataclass
class CatalogueResult:
    catalogue: pd.DataFrame
    n_crawled_rows: int
    drops: Counter = field(default_factory=Counter)
    coverage: dict = field(default_factory=dict)  # column -> share of products translated
    unknown_tags: Counter = field(default_factory=Counter)  # "column: tag" -> count


def load_crawls(raw_root: Path) -> pd.DataFrame:
    """Every item of every crawl under raw_root/<shop>/crawls/, with its crawl time."""
    frames = []
    for meta_path in sorted(Path(raw_root).glob("*/crawls/*.meta.json")):
        meta = json.loads(meta_path.read_text())
        items_path = meta_path.with_name(meta_path.name.replace(".meta.json", ".jsonl"))
        if not items_path.exists() or items_path.stat().st_size == 0:
            continue
        df = pd.read_json(items_path, lines=True, dtype={"id": str})
        shop_dir = meta_path.parent.parent
        df["crawled_at"] = meta["crawled_at"]
        df["_images_dir"] = str(shop_dir / meta.get("images_dir", "images"))
        df["_store_prefix"] = f"raw/{shop_dir.name}/{meta.get('images_dir', 'images')}"
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["id", "crawled_at"])
    return pd.concat(frames, ignore_index=True)


def merge_products(items: pd.DataFrame) -> pd.DataFrame:
    """One row per id: the newest crawl's fields, plus first_seen and last_seen."""
    if items.empty:
        return items.assign(first_seen=[], last_seen=[])
    items = items.sort_values(["crawled_at", "id"], kind="stable")
    seen = items.groupby("id")["crawled_at"].agg(first_seen="min", last_seen="max")
    latest = items.drop_duplicates("id", keep="last").set_index("id")
    return latest.join(seen).reset_index()


def build_catalogue(raw_root: Path, out_dir: Path, size: int = 256,
                    workers: int = 2) -> CatalogueResult:
    """Build catalogue rows and square packshots (out_dir/images/<category>/<id>.jpg)."""
    items = load_crawls(raw_root)
    result = CatalogueResult(pd.DataFrame(columns=THESIS_COLUMNS + EXTRA_COLUMNS), len(items))
    if items.empty:
        return result
    df = merge_products(items)
    result.drops["duplicate_rows_merged"] = len(items) - len(df)
    english, unknown_cols = [], []
    tag_counts: Counter = Counter()  # reason -> tags/slugs/names the translator skipped
    for row in df.itertuples(index=False):
        report = translate_report(row.attributes, row.category_slug, row.color_slug, row.name,
                                  stats=tag_counts)
        english.append({**report.values, "occasion": translate_occasion(row.name)})
        unknown_cols.append(set(report.unknown))
        for column, tags in report.unknown.items():
            result.unknown_tags.update(f"{column}: {t}" for t in tags)
    log_counts(tag_counts, "catalogue translation")  # one line per reason, not per tag
    if n_unrouted := tag_counts.pop(UNKNOWN_TAG, 0):  # tags no rule matched: counted, not listed
        result.unknown_tags["(matched no rule)"] = n_unrouted
    result.drops.update(tag_counts)  # skipped or too long tags, slugs and names, per reason
    df = pd.concat([df.reset_index(drop=True), pd.DataFrame(english)], axis=1)
    for column in COLUMNS:
        translated = int(df[column].notna().sum())
        untranslated = sum(column in u and v is None
                           for u, v in zip(unknown_cols, df[column], strict=True))
        denominator = translated + untranslated
        result.coverage[column] = translated / denominator if denominator else 1.0
    no_category = df["category"].isna()
    result.drops["no_category"] = int(no_category.sum())
    df = df[~no_category].copy()
    sources = [Path(d) / str(p) for d, p in zip(df["_images_dir"], df["img_path"], strict=True)]
    df["img_path"] = df["category"] + "/" + df["id"] + ".jpg"
    # aligned with model_img_urls; "" where that photo's download failed
    df["model_img_paths"] = [
        [f"{prefix}/{p}" if p else "" for p in (paths if isinstance(paths, list) else [])]
        for prefix, paths in zip(df["_store_prefix"], df["model_img_paths"], strict=True)]
    targets = [Path(out_dir) / "images" / p for p in df["img_path"]]
    with ThreadPoolExecutor(workers) as pool:
        ok = list(pool.map(lambda src, dst: square_packshot(src, dst, size), sources, targets))
    result.drops["packshot_unreadable"] = ok.count(False)
    df = df[ok]
    result.drops = Counter({k: v for k, v in result.drops.items() if v})
    df = df[THESIS_COLUMNS + EXTRA_COLUMNS].sort_values("id").reset_index(drop=True)
    df["price"] = pd.to_numeric(df["price"], errors="coerce")
    result.catalogue = df
    return result


def write_catalogue(df: pd.DataFrame, out_dir: Path) -> dict[str, Path]:
    """catalogue.csv (`;`-separated, lists `, `-joined as in the thesis) and catalogue.parquet
    (the same rows, lists kept as lists)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    flat = df.copy()
    for column in LIST_COLUMNS:
        flat[column] = [", ".join(v) for v in flat[column]]
    paths = {"csv": out_dir / "catalogue.csv", "parquet": out_dir / "catalogue.parquet"}
    flat.to_csv(paths["csv"], sep=";", index=False, encoding="utf-8")
    df.to_parquet(paths["parquet"], index=False)
    return paths


def read_catalogue(out_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(Path(out_dir) / "catalogue.parquet")


def one_hot(df: pd.DataFrame) -> pd.DataFrame:
    """img_path + a 0/1 column per `<column>_<value>` of the vocabulary (42, as the thesis)."""
    out = {"img_path": df["img_path"].to_numpy()}
    for column in LABEL_COLUMNS:
        for value in LABEL_VOCABULARY[column]:
            out[f"{column}_{value}"] = (df[column] == value).astype("uint8").to_numpy()
    return pd.DataFrame(out)


def out_of_vocabulary(df: pd.DataFrame) -> dict[str, list[str]]:
    """Values in the catalogue that are not in the closed sets (should be empty)."""
    bad = {}
    for column in LABEL_COLUMNS:
        values = set(df[column].dropna().unique()) - set(LABEL_VOCABULARY[column])
        if values:
            bad[column] = sorted(values)
    return bad


def packshot_arrays(paths, size: int = 64) -> np.ndarray:
    """The catalogue's square packshots as uint8 (N, size, size, 3), for training."""
    out = np.empty((len(paths), size, size, 3), np.uint8)
    for i, path in enumerate(paths):
        with Image.open(path) as im:
            out[i] = np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.LANCZOS))
    return out
