"""segmentation_store: 7-class person masks in one compressed HDF5 file, and its check."""

from pathlib import Path
from typing import Literal

import h5py
import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from pydantic import Field, field_validator

from pipelines.assets.model_images import front_model_images
from pipelines.assets.previews import picture
from pipelines.processing.demo_truth import load_truth
from pipelines.processing.images import array_grid, markdown_image
from pipelines.processing.segmentation import (
    COARSE,
    N_CLASSES,
    SIZE,
    export_fashiongan,
    import_fashiongan,
    label_colors,
    segmentations_from_demo,
    write_store,
)
from pipelines.resources import StorageResource


class SegmentationConfig(Config):
    fashiongan_file: str | None = Field(
        default=None, description="import an ICCV17 FashionGAN G2.h5-style file (must exist)")
    export_fashiongan: bool = False  # also write datasets/segmentation_fashiongan.h5
    compression: Literal["gzip", "lzf"] = Field(
        default="gzip", description="HDF5 filter: gzip (smaller) or lzf (faster)")
    level: int = Field(default=4, ge=0, le=9, description="gzip level, 0-9")

    @field_validator("fashiongan_file")
    @classmethod
    def _file_exists(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not Path(value).is_file():
            raise ValueError(f"fashiongan_file {value!r} is not a file")
        return value


@asset(deps=[front_model_images], group_name="segmentation", pool="segmentation_store",
       description="Each chosen front photo's 7-class person mask as a 1-channel uint8 label "
                   "map (+ image, + 8x8 coarse map) in chunked, compressed HDF5. "
                   "datasets/segmentation.h5")
def segmentation_store(context: AssetExecutionContext, config: SegmentationConfig,
                       storage: StorageResource) -> MaterializeResult:
    layout = storage.layout
    drops = {"no_mask": 0, "unreadable": 0}
    if config.fashiongan_file:
        ids, images, labels = import_fashiongan(config.fashiongan_file)
        source = config.fashiongan_file
    else:
        truth_path, masks_dir = layout.truth("demo"), layout.truth_masks("demo")
        if not truth_path.exists() or not masks_dir.exists():
            raise FileNotFoundError(
                "segmentation_store needs person masks: crawl the demo shop with "
                "crawl.demo_masks=true (the default) so raw/demo/truth_masks/ exists, or set "
                "fashiongan_file=<G2.h5-style file> to import the ICCV17 FashionGAN layout.")
        ids, images, labels, drops = segmentations_from_demo(
            pd.read_parquet(layout.front_model_images), load_truth(truth_path), masks_dir,
            layout.root)
        source = "demo shop masks of the chosen front photos"
    for reason, n in drops.items():
        if n:
            context.log.warning(f"segmentation_store: {n} x {reason}")
    out = write_store(layout.segmentation, ids, images, labels,
                      config.compression, config.level)
    with h5py.File(out, "r") as f:
        label_bytes = f["labels"].id.get_storage_size()
        total_bytes = sum(f[k].id.get_storage_size() for k in f)
    n = max(len(ids), 1)
    float_layout = N_CLASSES * SIZE * SIZE * 4
    # each image beside its label map
    sheet = array_grid([x for pair in zip(images[:8], label_colors(labels[:8]), strict=True)
                        for x in pair], cols=8)
    metadata = {
        "samples": len(ids), "source": source, "drop_reasons": MetadataValue.json(drops),
        "label_bytes_per_sample": round(label_bytes / n, 1),
        "all_bytes_per_sample": round(total_bytes / n, 1),
        "float32_7ch_bytes_per_sample": float_layout,
        "labels_vs_float32_7ch": f"{float_layout / max(label_bytes / n, 1e-9):.0f}x smaller",
        "class_share": MetadataValue.json({int(c): round(float((labels == c).mean()), 4)
                                           for c in range(N_CLASSES)} if len(ids) else {}),
        **picture(context, sheet, "segmentations", "segmentation_store"),  # without a click
        "preview": MetadataValue.md(markdown_image(sheet, "segmentations")),
        "path": MetadataValue.path(str(out)),
    }
    if config.export_fashiongan:
        exported = export_fashiongan(out, layout.segmentation_fashiongan)
        metadata["fashiongan_export"] = MetadataValue.path(str(exported))
    return MaterializeResult(metadata=metadata)


@asset_check(asset=segmentation_store, description="The file opens; labels (N,128,128) uint8 "
                                                   "0-6, images (N,128,128,3), coarse (N,8,8) "
                                                   "0-3, N ids.")
def segmentation_store_arrays(storage: StorageResource) -> AssetCheckResult:
    with h5py.File(storage.layout.segmentation, "r") as f:
        n = len(f["ids"])
        labels, images, coarse = f["labels"], f["images"], f["coarse"]
        ok = (labels.shape == (n, SIZE, SIZE) and labels.dtype == np.uint8
              and images.shape == (n, SIZE, SIZE, 3) and images.dtype == np.uint8
              and coarse.shape == (n, COARSE, COARSE) and coarse.dtype == np.uint8
              and (n == 0 or (labels[:].max() < N_CLASSES and coarse[:].max() < 4)))
        shapes = {k: list(f[k].shape) for k in f}
    return AssetCheckResult(passed=bool(ok), metadata={"shapes": MetadataValue.json(shapes)})
