"""catalogue, attribute_labels, dataset_splits, packshot_store and their checks."""

import json

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from pydantic import Field, model_validator

from pipelines.assets.previews import picture
from pipelines.assets.scrape import raw_products
from pipelines.processing.atomic import atomic_path, write_atomically
from pipelines.processing.catalogue import (
    LABEL_COLUMNS,
    build_catalogue,
    one_hot,
    out_of_vocabulary,
    packshot_arrays,
    read_catalogue,
    write_catalogue,
)
from pipelines.processing.h5store import write_image_store
from pipelines.processing.images import decodes, grid, markdown_image
from pipelines.processing.splits import assign_splits
from pipelines.processing.translate import COLUMNS
from pipelines.resources import StorageResource


class CatalogueConfig(Config):
    image_size: int = Field(default=256, ge=8, le=4096,
                            description="packshots are padded white to square and resized to "
                                        "this many pixels a side (8-4096)")
    workers: int = Field(default=2, ge=1, description="parallel image workers (>= 1)")
    min_coverage: float = Field(default=0.9, ge=0.0, le=1.0,
                                description="the coverage check fails below this share per "
                                            "column (0-1)")


class SplitConfig(Config):
    val_fraction: float = Field(default=0.01, ge=0.0, lt=1.0,
                                description="share of each (category, colour) group in val, "
                                            "in [0, 1)")
    test_fraction: float = Field(default=0.01, ge=0.0, lt=1.0,
                                 description="share of each group in test, in [0, 1)")
    seed: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _train_keeps_a_share(self) -> "SplitConfig":
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"val_fraction + test_fraction must be < 1 so train keeps products, got "
                f"{self.val_fraction} + {self.test_fraction} = "
                f"{self.val_fraction + self.test_fraction}")
        return self


def value_counts_markdown(df: pd.DataFrame) -> str:
    lines = ["| column | values (count) | missing |", "|---|---|---|"]
    for column in LABEL_COLUMNS:
        counts = df[column].value_counts()
        shown = ", ".join(f"{v} ({n})" for v, n in counts.items())
        lines.append(f"| {column} | {shown} | {int(df[column].isna().sum())} |")
    return "\n".join(lines)


MAX_LOGGED_ROWS = 100  # dropped rows named in the log and the metadata; the report has more
MAX_DROPPED_ROWS = 10_000


# Each asset here is its own concurrency pool (dagster.yaml's default limit: 1), so two runs
# never rebuild the same files at once: the second waits (README, "Two runs at once").
@asset(
    deps=[raw_products],
    group_name="catalogue",
    pool="catalogue",
    description="Merge every crawl of every shop, dedup by id (first_seen/last_seen), translate "
                "German attributes, square 256x256 packshots. Lands in catalogue/.",
)
def catalogue(context: AssetExecutionContext, config: CatalogueConfig,
              storage: StorageResource) -> MaterializeResult:
    layout = storage.layout
    out_dir = layout.catalogue_dir
    res = build_catalogue(layout.raw_dir, out_dir, config.image_size, config.workers)
    df = res.catalogue
    report = {"coverage": res.coverage, "min_coverage": config.min_coverage,
              "drops": dict(res.drops),
              "unknown_tags": dict(res.unknown_tags.most_common())}
    report["dropped_rows"] = res.dropped_rows[:MAX_DROPPED_ROWS]
    # csv, parquet and report as one set: a failure leaves the previous catalogue whole
    paths = write_catalogue(df, out_dir, report)
    for reason, n in res.drops.items():
        context.log.warning(f"catalogue: {n} x {reason}")
    for line in res.dropped_rows[:MAX_LOGGED_ROWS]:
        context.log.warning(f"catalogue dropped {line}")
    if len(res.dropped_rows) > MAX_LOGGED_ROWS:
        context.log.warning(f"catalogue: {len(res.dropped_rows) - MAX_LOGGED_ROWS} more dropped "
                            f"rows in {paths['report']}")
    preview = grid([layout.catalogue_images / p for p in df["img_path"].head(32)], cols=8,
                   cell=96)
    with atomic_path(layout.catalogue_preview) as tmp:
        preview.save(tmp, "JPEG", quality=85)
    return MaterializeResult(metadata={
        "rows": len(df),
        "crawled_rows": res.n_crawled_rows,
        "shops": MetadataValue.json(df["shop"].value_counts().to_dict()),
        "drop_reasons": MetadataValue.json(dict(res.drops)),
        "dropped_rows": MetadataValue.json(res.dropped_rows[:MAX_LOGGED_ROWS]),
        "translation_coverage": MetadataValue.json({k: round(v, 4)
                                                    for k, v in res.coverage.items()}),
        "unknown_tags_top10": MetadataValue.json(dict(res.unknown_tags.most_common(10))),
        "value_counts": MetadataValue.md(value_counts_markdown(df)),
        **picture(context, preview, "packshots", "catalogue"),  # shown without a click
        "preview": MetadataValue.md(markdown_image(preview, "packshots")),
        "csv": MetadataValue.path(str(paths["csv"])),
        "parquet": MetadataValue.path(str(paths["parquet"])),
    })


@asset(deps=[catalogue], group_name="catalogue", pool="attribute_labels",
       description="One-hot 0/1 table: img_path + one column per `<column>_<value>` (42 "
                   "columns, as the thesis' `img_attr.csv`).")
def attribute_labels(storage: StorageResource) -> MaterializeResult:
    layout = storage.layout
    labels = one_hot(read_catalogue(layout.catalogue_dir))
    write_atomically({layout.img_attr_csv: lambda p: labels.to_csv(p, sep=";", index=False),
                      layout.img_attr: lambda p: labels.to_parquet(p, index=False)})
    positives = labels.drop(columns="img_path").sum().astype(int).to_dict()
    return MaterializeResult(metadata={
        "rows": len(labels),
        "label_columns": len(labels.columns) - 1,
        "positives": MetadataValue.json(positives),
        "csv": MetadataValue.path(str(layout.img_attr_csv)),
    })


@asset(deps=[catalogue], group_name="catalogue", pool="dataset_splits",
       description="Seeded train/val/test split per (category, colour): 1% val, 1% test.")
def dataset_splits(config: SplitConfig, storage: StorageResource) -> MaterializeResult:
    layout = storage.layout
    df = read_catalogue(layout.catalogue_dir)
    df["split"] = assign_splits(df, config.val_fraction, config.test_fraction, config.seed)
    splits = df[["id", "img_path", "category", "color", "split"]]
    write_atomically({layout.splits_csv: lambda p: splits.to_csv(p, sep=";", index=False),
                      layout.splits: lambda p: splits.to_parquet(p, index=False)})
    by_category = pd.crosstab(splits["category"], splits["split"])
    return MaterializeResult(metadata={
        "counts": MetadataValue.json(splits["split"].value_counts().to_dict()),
        "by_category": MetadataValue.md(by_category.to_markdown()),
        "csv": MetadataValue.path(str(layout.splits_csv)),
    })


class PackshotStoreConfig(Config):
    size: int = Field(64, ge=8, le=1024, description="packshot side in the training store")


@asset(deps=[attribute_labels, dataset_splits], group_name="catalogue", pool="packshot_store",
       description="The packshots at 64x64 for GAN training, with the one-hot attribute labels "
                   "and the split. datasets/packshots.h5")
def packshot_store(config: PackshotStoreConfig, storage: StorageResource) -> MaterializeResult:
    layout = storage.layout
    cat = read_catalogue(layout.catalogue_dir)
    labels = pd.read_parquet(layout.img_attr).set_index("img_path")
    splits = pd.read_parquet(layout.splits).set_index("id")
    images = packshot_arrays([layout.catalogue_images / p for p in cat["img_path"]], config.size)
    label_names = list(labels.columns)
    out = write_image_store(
        layout.packshots, cat["id"], images,
        {"labels": labels.loc[cat["img_path"]].to_numpy(np.uint8),
         "split": np.array([{"train": 0, "val": 1, "test": 2}[s]
                            for s in splits.loc[cat["id"], "split"]], np.uint8)},
        attrs={"label_names": label_names, "split_names": ["train", "val", "test"]})
    return MaterializeResult(metadata={
        "images": len(cat), "size": config.size, "label_columns": len(label_names),
        "path": MetadataValue.path(str(out))})


# ---- checks ------------------------------------------------------------------------------

@asset_check(asset=catalogue, description="No id appears twice.")
def catalogue_unique_ids(storage: StorageResource) -> AssetCheckResult:
    df = read_catalogue(storage.layout.catalogue_dir)
    dupes = df["id"][df["id"].duplicated()].tolist()
    return AssetCheckResult(passed=not dupes, metadata={"duplicates": MetadataValue.json(dupes)})


@asset_check(asset=catalogue, description="Every img_path exists and decodes.")
def catalogue_images_decode(storage: StorageResource) -> AssetCheckResult:
    root = storage.layout.catalogue_images
    df = read_catalogue(storage.layout.catalogue_dir)
    bad = [p for p in df["img_path"] if not decodes(root / p)]
    return AssetCheckResult(passed=not bad, metadata={"checked": len(df),
                                                      "bad": MetadataValue.json(bad[:50])})


@asset_check(asset=catalogue, description="catalogue.csv and catalogue.parquet hold the same "
                                          "rows (count and ids, in order).")
def catalogue_csv_parquet_agree(storage: StorageResource) -> AssetCheckResult:
    layout = storage.layout
    csv = pd.read_csv(layout.catalogue_csv, sep=";", dtype=str, keep_default_na=False)
    parquet = read_catalogue(layout.catalogue_dir)
    same_ids = csv["id"].tolist() == parquet["id"].astype(str).tolist()
    return AssetCheckResult(passed=len(csv) == len(parquet) and same_ids,
                            metadata={"csv_rows": len(csv), "parquet_rows": len(parquet),
                                      "same_ids_in_order": same_ids})


@asset_check(asset=catalogue, description="Every value lies inside the closed vocabulary.")
def catalogue_values_in_vocabulary(storage: StorageResource) -> AssetCheckResult:
    bad = out_of_vocabulary(read_catalogue(storage.layout.catalogue_dir))
    return AssetCheckResult(passed=not bad, metadata={"outside": MetadataValue.json(bad)})


@asset_check(asset=catalogue, description="Per column, the share of products whose tags about "
                                          "that column were understood, against min_coverage.")
def catalogue_translation_coverage(storage: StorageResource) -> AssetCheckResult:
    report = json.loads(storage.layout.translation_report.read_text())
    coverage = report["coverage"]
    floor = report["min_coverage"]
    low = {c: v for c, v in coverage.items() if c in COLUMNS and v < floor}
    return AssetCheckResult(passed=not low, severity=AssetCheckSeverity.WARN,
                            metadata={"coverage": MetadataValue.json(coverage),
                                      "below_floor": MetadataValue.json(low), "floor": floor})


@asset_check(asset=attribute_labels, description="Each product has exactly one category and at "
                                                 "most one value per other column.")
def attribute_labels_one_hot(storage: StorageResource) -> AssetCheckResult:
    labels = pd.read_parquet(storage.layout.img_attr)
    problems = {}
    for column in LABEL_COLUMNS:
        per_row = labels[[c for c in labels.columns if c.startswith(column + "_")]].sum(axis=1)
        limit_ok = per_row.eq(1) if column == "category" else per_row.le(1)
        if not limit_ok.all():
            problems[column] = int((~limit_ok).sum())
    return AssetCheckResult(passed=not problems, metadata={"rows_wrong": MetadataValue.json(
        problems)})


@asset_check(asset=dataset_splits, description="Every catalogue product is in exactly one split.")
def dataset_splits_cover_catalogue(storage: StorageResource) -> AssetCheckResult:
    ids = set(read_catalogue(storage.layout.catalogue_dir)["id"])
    splits = pd.read_parquet(storage.layout.splits)
    ok = splits["id"].is_unique and set(splits["id"]) == ids and \
        splits["split"].isin(["train", "val", "test"]).all()
    return AssetCheckResult(passed=bool(ok), metadata={"products": len(ids),
                                                       "assigned": len(splits)})
