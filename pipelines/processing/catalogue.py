"""Merge every crawl of every shop into one translated catalogue with square packshots.

A product seen in several crawls is one row: its newest page wins, and first_seen / last_seen
record when it was first and last crawled. Rows that cannot be used are dropped with a counted
reason (no category, unreadable packshot, a crawl line that is not a well-formed product) and,
per row, a line naming the crawl file and line; nothing disappears silently, and one bad row
never fails the whole catalogue. Crawl files are data from the web: ids and image paths in them
are checked so that nothing is read or written outside the store.
"""

import json
import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from pipelines.processing.atomic import write_atomically
from pipelines.processing.images import ImageError, load_rgb, render_packshot
from pipelines.processing.translate import (
    COLUMNS,
    UNKNOWN_TAG,
    VOCABULARY,
    log_counts,
    translate_occasion,
    translate_report,
)
from scrapers.pipelines import SAFE_ID  # the spider's own rule for ids that are safe file names

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
    dropped_rows: list[str] = field(default_factory=list)  # "<reason>: <file>:<line> (why)"

    def drop(self, reason: str, where: str, detail: str = "", n: int = 1) -> None:
        """Count `n` rows dropped for `reason` and note where they came from."""
        self.drops[reason] += n
        self.dropped_rows.append(f"{reason}: {where}" + (f" ({detail})" if detail else ""))


# Contract 1 fields and what each may hold; anything else drops the row as bad_<field>.
TEXT_FIELDS = ("shop", "product_url", "img_url", "brand", "name", "category_slug", "color_slug")
STRING_LIST_FIELDS = ("attributes", "model_img_urls")
ITEM_FIELDS = ("id", *TEXT_FIELDS, *STRING_LIST_FIELDS, "price", "img_path", "model_img_paths")


def inside(base: Path | str, rel: object) -> Path | None:
    """`base/rel` resolved, when `rel` is a relative path that stays under `base` once
    symlinks and `..` are resolved (Path.resolve + is_relative_to); None otherwise (absolute,
    escaping, not a string)."""
    guard = PathGuard(base)
    inner = guard(rel)
    return Path(guard.root, inner) if inner is not None else None


class PathGuard:
    """`inside` for many paths under one root. It runs for every image path of every crawl
    line, so a path is normalised lexically (a `..` that climbs out is refused) and resolved
    fully only when a component on its way is a symlink; directories already seen to be plain
    are not looked at again."""

    def __init__(self, root: Path | str):
        self.root = os.path.realpath(root)
        self._prefix = self.root.rstrip(os.sep) + os.sep
        self._plain_dirs: set[str] = set()

    def __call__(self, rel: object) -> str | None:
        """`rel` normalised, relative to root, when it stays inside; else None."""
        if not isinstance(rel, str) or not rel or "\x00" in rel or os.path.isabs(rel):
            return None
        norm = os.path.normpath(rel)
        if norm in (".", "..") or norm.startswith(".." + os.sep):
            return None
        names = norm.split(os.sep)
        part = self._prefix[:-1]
        for i, name in enumerate(names):
            part = part + os.sep + name
            last = i == len(names) - 1
            if not last and part in self._plain_dirs:
                continue
            if os.path.islink(part):
                real = os.path.realpath(os.path.join(self.root, norm))
                return real[len(self._prefix):] if real.startswith(self._prefix) else None
            if not last:
                self._plain_dirs.add(part)
        return norm


def safe_id(value: object) -> str | None:
    """The id as a string when it passes the spider's SAFE_ID rule (a plain file name)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return value if isinstance(value, str) and SAFE_ID.match(value) else None


def check_item(obj: object, images: PathGuard, store_prefix: str
               ) -> tuple[dict | None, str, str]:
    """One crawl line's object as a catalogue row, or (None, reason, detail) when unusable.

    Every field has the type contract 1 gives it, the id is a safe file name, and the
    packshot and model photo paths resolve inside the crawl's images folder (`images`).
    """
    if not isinstance(obj, dict):
        return None, "not_an_object", type(obj).__name__
    if obj.get("id") in (None, ""):
        return None, "missing_id", ""
    product_id = safe_id(obj["id"])
    if product_id is None:
        return None, "unsafe_id", repr(obj["id"])[:80]
    # only contract 1's fields: a stray key (`category`, `first_seen`, `_source`) must not
    # shadow what the catalogue computes
    row = {key: obj.get(key) for key in ITEM_FIELDS} | {"id": product_id}
    for key in TEXT_FIELDS:
        if not isinstance(row.get(key), str | None):
            return None, f"bad_{key}", type(row[key]).__name__
    price = row.get("price")
    if isinstance(price, bool) or not isinstance(price, int | float | str | None):
        return None, "bad_price", type(price).__name__
    for key in STRING_LIST_FIELDS:
        value = row.get(key)
        value = [] if value is None else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return None, f"bad_{key}", repr(value)[:80]
        row[key] = value
    source = images(row.get("img_path"))
    if source is None:
        return None, "unsafe_img_path", repr(row.get("img_path"))[:120]
    row["_source"] = os.path.join(images.root, source)
    paths = row.get("model_img_paths")
    paths = [] if paths is None else paths
    if not isinstance(paths, list) or not all(isinstance(p, str | None) for p in paths):
        return None, "bad_model_img_paths", repr(paths)[:80]
    model_paths = []
    for p in paths:  # aligned with model_img_urls; "" where that photo's download failed
        target = images(p) if p else None
        if p and target is None:
            return None, "unsafe_model_img_path", repr(p)[:120]
        model_paths.append(f"{store_prefix}/{target.replace(os.sep, '/')}" if target else "")
    row["model_img_paths"] = model_paths
    return row, "", ""


def load_crawls(raw_root: Path, result: CatalogueResult | None = None) -> pd.DataFrame:
    """Every usable item of every crawl under raw_root/<shop>/crawls/, with its crawl time.

    Lines that are not JSON, not a product object or not well-formed (see `check_item`) are
    dropped into `result` with the crawl file and line; so is every line of a crawl whose meta
    file is unreadable or names an images folder outside its shop folder.
    """
    result = result if result is not None else CatalogueResult(pd.DataFrame(), 0)
    rows = []
    for meta_path in sorted(Path(raw_root).glob("*/crawls/*.meta.json")):
        items_path = meta_path.with_name(meta_path.name.replace(".meta.json", ".jsonl"))
        if not items_path.exists() or items_path.stat().st_size == 0:
            continue
        lines = [(n, line) for n, line in enumerate(items_path.read_bytes().split(b"\n"), 1)
                 if line.strip()]
        result.n_crawled_rows += len(lines)
        shop_dir = meta_path.parent.parent
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            crawled_at = meta["crawled_at"]
            images_dir = meta.get("images_dir", "images")
            if not isinstance(crawled_at, str) or not isinstance(images_dir, str):
                raise TypeError("crawled_at and images_dir must be strings")
        except (OSError, ValueError, TypeError, KeyError) as e:
            result.drop("crawl_meta_unreadable", str(meta_path), f"{type(e).__name__}: {e}",
                        n=len(lines))
            continue
        # a plain relative folder (it may be a symlink to a bigger disk); every file in it is
        # then resolved and checked against it
        if not images_dir or "\x00" in images_dir or Path(images_dir).is_absolute() \
                or ".." in Path(images_dir).parts:
            result.drop("unsafe_images_dir", str(meta_path), repr(images_dir)[:120],
                        n=len(lines))
            continue
        images = PathGuard(shop_dir / images_dir)
        prefix = f"raw/{shop_dir.name}/{Path(images_dir).as_posix()}"
        for n, line in lines:
            where = f"{items_path}:{n}"
            try:
                obj = json.loads(line.decode("utf-8"))
            except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
                result.drop("invalid_json", where, str(e)[:120])
                continue
            row, reason, detail = check_item(obj, images, prefix)
            if row is None:
                result.drop(reason, where, detail)
                continue
            rows.append({**row, "crawled_at": crawled_at, "_where": where})
    if not rows:
        return pd.DataFrame(columns=["id", "crawled_at"])
    return pd.DataFrame(rows)


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
    result = CatalogueResult(pd.DataFrame(columns=THESIS_COLUMNS + EXTRA_COLUMNS), 0)
    items = load_crawls(raw_root, result)
    if items.empty:
        result.drops = Counter({k: v for k, v in result.drops.items() if v})
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
    for where, slug in zip(df["_where"][no_category], df["category_slug"][no_category],
                           strict=True):
        result.drop("no_category", where, f"category_slug {slug!r}")
    df = df[~no_category].copy()
    df["img_path"] = df["category"] + "/" + df["id"] + ".jpg"
    # checked again where the file is written: the id is a plain name, the category a word
    # of the vocabulary, so every target lies under out_dir/images
    guard = PathGuard(Path(out_dir) / "images")
    targets = [None if t is None else os.path.join(guard.root, t)
               for t in map(guard, df["img_path"])]
    for where, target in zip(df["_where"], targets, strict=True):
        if target is None:
            result.drop("unsafe_id", where, "packshot target outside the catalogue")

    def render(src: str, dst: str | None) -> str | None:
        if dst is None:
            return "unsafe"
        try:
            render_packshot(Path(src), Path(dst), size)
        except ImageError as e:
            return str(e)
        return None

    with ThreadPoolExecutor(workers) as pool:
        errors = list(pool.map(render, df["_source"], targets))
    for where, error in zip(df["_where"], errors, strict=True):
        if error not in (None, "unsafe"):
            result.drop("packshot_unreadable", where, error)
    df = df[[e is None for e in errors]]
    result.drops = Counter({k: v for k, v in result.drops.items() if v})
    df = df[THESIS_COLUMNS + EXTRA_COLUMNS].sort_values("id").reset_index(drop=True)
    df["price"] = pd.to_numeric(df["price"], errors="coerce")
    result.catalogue = df
    return result


def write_catalogue(df: pd.DataFrame, out_dir: Path, report: dict | None = None
                    ) -> dict[str, Path]:
    """catalogue.csv (`;`-separated, lists `, `-joined as in the thesis), catalogue.parquet
    (the same rows, lists kept as lists) and, when given, translation_report.json, written
    as one set (`write_atomically`) so the files never disagree."""
    out_dir = Path(out_dir)
    flat = df.copy()
    for column in LIST_COLUMNS:
        flat[column] = [", ".join(v) for v in flat[column]]
    paths = {"csv": out_dir / "catalogue.csv", "parquet": out_dir / "catalogue.parquet"}
    writers: dict[Path, Callable[[Path], object]] = {
        paths["csv"]: lambda p: flat.to_csv(p, sep=";", index=False, encoding="utf-8"),
        paths["parquet"]: lambda p: df.to_parquet(p, index=False)}
    if report is not None:
        paths["report"] = out_dir / "translation_report.json"
        text = json.dumps(report, ensure_ascii=False, indent=1)
        writers[paths["report"]] = lambda p: p.write_text(text, encoding="utf-8")
    write_atomically(writers)
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
    for i, path in enumerate(paths):  # an undecodable file raises ImageError naming it
        out[i] = np.asarray(load_rgb(path).resize((size, size), Image.Resampling.LANCZOS))
    return out
