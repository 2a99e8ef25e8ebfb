"""front_model_images, person_detector, person_crops and their checks."""

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
from pydantic import Field, field_validator, model_validator

from pipelines.assets.catalogue import catalogue
from pipelines.assets.pools import POOL, TRAINING_TAG
from pipelines.assets.previews import picture
from pipelines.processing.atomic import write_atomically
from pipelines.processing.catalogue import read_catalogue
from pipelines.processing.demo_truth import (
    annotated_photos,
    front_accuracy,
    load_truth,
    photos_by_url,
)
from pipelines.processing.front_view import compute_features, photo_table, select_front
from pipelines.processing.h5store import read_image_store, write_image_store
from pipelines.processing.images import array_grid, grid, markdown_image
from pipelines.processing.person_detector import (
    DetectorWeightsError,
    box_ious,
    crop_people,
    detector_tags,
    detector_training_split,
    heldout_scores,
    load_detector,
    register_detector,
    save_detector,
    set_detector_champion,
    train_on_samples,
)
from pipelines.resources import MLflowResource, StorageResource
from training.lineage import lineage_tags
from training.runtime import device
from training.tracking import mlflow_run


class FrontViewConfig(Config):
    k: int = Field(default=8, ge=2, le=256,
                   description="K-means clusters (2-256); the front full-body one is picked by "
                               "the score in front_view.py")
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    workers: int = Field(default=2, ge=1, description="parallel feature workers (>= 1)")


# The detector variants of pipelines/processing/person_detector.py (VARIANTS), spelled out so
# Dagster's config schema lists them and refuses any other at launch.
DetectorVariant = Literal["demo_small", "mobilenet_v3_large_320_fpn", "mobilenet_v3_large_fpn",
                          "resnet50_fpn", "resnet50_fpn_v2"]


class DetectorConfig(Config):
    weights: str | None = Field(
        default=None, description='"coco" (torchvision\'s COCO weights), a weights file, or '
                                  "unset: train on the demo's boxes")
    variant: DetectorVariant = Field(
        default="demo_small", description="with weights='coco': one of the COCO variants; with "
                                          "a plain state-dict file: its variant")
    steps: int = Field(default=200, ge=1, description="training steps (>= 1)")
    batch_size: int = Field(default=8, ge=1, description="photos per step (>= 1)")
    lr: float = Field(default=3e-3, gt=0.0, allow_inf_nan=False,
                      description="learning rate (> 0, finite)")
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    holdout: float = Field(default=0.2, gt=0.0, lt=1.0,
                           description="share of demo products kept out of training, to "
                                       "measure on, in (0, 1)")
    max_train_photos: int = Field(default=1200, ge=1)
    min_score: float = Field(default=0.5, ge=0.0, le=1.0,
                             description="boxes below this score are ignored (0-1)")

    @field_validator("weights")
    @classmethod
    def _weights_coco_or_file(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if value != "coco" and not Path(value).is_file():
            raise ValueError(f"weights must be unset, 'coco' or an existing weights file; "
                             f"{value!r} is not a file")
        return value

    @model_validator(mode="after")
    def _coco_needs_coco_variant(self) -> "DetectorConfig":
        if self.weights == "coco" and self.variant == "demo_small":
            raise ValueError("weights='coco' needs a COCO variant: set variant to one of "
                             "mobilenet_v3_large_320_fpn, mobilenet_v3_large_fpn, "
                             "resnet50_fpn, resnet50_fpn_v2 ('demo_small' has no COCO weights)")
        return self


class CropConfig(Config):
    size: int = Field(default=64, ge=8, le=1024, description="crop side in pixels (8-1024)")
    margin: float = Field(default=0.05, ge=0.0, le=1.0,
                          description="added around the person box, as a share of its size "
                                      "(0-1)")
    batch_size: int = Field(default=8, ge=1, description="photos per detector batch (>= 1)")
    min_score: float = Field(default=0.5, ge=0.0, le=1.0,
                             description="photos whose best box scores below this are dropped "
                                         "(0-1)")


@asset(deps=[catalogue], group_name="model_images", pool="front_model_images",
       description="K-means over model-photo features; per product the photo nearest the "
                   "automatically chosen front full-body cluster. `model_images/*.parquet`")
def front_model_images(context: AssetExecutionContext, config: FrontViewConfig,
                       storage: StorageResource) -> MaterializeResult:
    layout = storage.layout
    photos = photo_table(read_catalogue(layout.catalogue_dir))
    named, coarse, ok = compute_features([layout.file(p) for p in photos["image_path"]],
                                         config.workers)
    unreadable = int((~ok).sum())
    if unreadable:
        context.log.warning(f"{unreadable} model photos could not be read")
    photos = photos[ok].reset_index(drop=True)
    model, best = select_front(list(photos["id"]), named, coarse, config.k, config.seed)
    chosen = pd.DataFrame([
        {**photos.iloc[i][["id", "image_path", "image_url"]].to_dict(), "cluster": c,
         "distance": d} for i, c, d in best.values()]).sort_values("id").reset_index(drop=True)
    out = layout.front_model_images
    # preview: per cluster (front first), the photos nearest its centre
    x = model.embed(named, coarse)
    order = [model.front_cluster] + [c for c in range(model.kmeans.n_clusters)
                                     if c != model.front_cluster]
    preview = []
    for c in order:
        d = np.linalg.norm(x - model.kmeans.cluster_centers_[c], axis=1)
        preview += [layout.file(photos["image_path"][i]) for i in np.argsort(d)[:8]]
    sheet = grid(preview, cols=8, cell=72)
    # one set, renamed into place together: another run's person_crops or segmentation_store
    # reads the old choice or the new one, never half a Parquet file
    write_atomically({out: lambda p: chosen.to_parquet(p, index=False),
                      layout.clusters_preview: lambda p: sheet.save(p, "JPEG", quality=85)})
    labels = model.kmeans.labels_
    metadata = {
        "products": len(chosen),
        "photos": len(photos),
        "unreadable_photos": unreadable,
        "front_cluster": model.front_cluster,
        "cluster_sizes": MetadataValue.json({int(c): int((labels == c).sum())
                                             for c in range(model.kmeans.n_clusters)}),
        "cluster_scores": MetadataValue.json([round(float(s), 3) for s in model.cluster_scores]),
        **picture(context, sheet, "clusters", "front_model_images"),  # shown without a click
        "preview": MetadataValue.md("Rows: clusters, the chosen front cluster first; each row "
                                    "the 8 photos nearest its centre.\n\n"
                                    + markdown_image(sheet, "clusters")),
        "path": MetadataValue.path(str(out)),
    }
    truth_path = layout.truth("demo")
    if truth_path.exists():
        metadata["demo_front_accuracy"] = round(front_accuracy(chosen["image_url"],
                                                               load_truth(truth_path)), 4)
    return MaterializeResult(metadata=metadata)


@asset(deps=[catalogue], group_name="model_images", pool=POOL, op_tags=TRAINING_TAG,
       description="The Faster R-CNN person detector's weights file: torchvision COCO weights "
                   "or a given file when configured, else fine-tuned on the demo's boxes. "
                   "Logged to MLflow and registered as fashion-person-detector (variant and "
                   "training data as tags), `champion` by held-out IoU.")
def person_detector(context: AssetExecutionContext, config: DetectorConfig,
                    storage: StorageResource, mlflow: MLflowResource) -> MaterializeResult:
    import mlflow as mlflow_lib

    layout = storage.layout
    out = layout.person_detector
    samples = []
    if layout.truth("demo").exists():
        samples = annotated_photos(photo_table(read_catalogue(layout.catalogue_dir)),
                                   load_truth(layout.truth("demo")))
    train, test = detector_training_split(samples, config.seed, config.holdout,
                                          config.max_train_photos)
    metadata = {}
    if config.weights:
        model, meta = load_detector(config.weights, config.variant)
        save_detector(model, meta["variant"], out, meta)
    else:
        if not train:
            raise DetectorWeightsError(
                "person_detector has no weights and no demo ground truth to train on. Set "
                "weights='coco' (torchvision's COCO weights, needs the internet once) or "
                "weights=<file>, or crawl the demo shop first.")
        model, meta = train_on_samples(train, layout.root, config.steps, config.batch_size,
                                       config.lr, config.seed, log=context.log.info)
        save_detector(model, "demo_small", out, meta)
        metadata.update(meta)
    scores = heldout_scores(model, test, layout.root, config.min_score) if test else {}
    metadata.update(scores)
    metadata["variant"] = meta.get("variant", "demo_small")
    tags = detector_tags({**meta, "variant": metadata["variant"]}, scores, config.weights)
    with mlflow_run("person-detector", mlflow.tracking_uri, mlflow.artifact_root,
                    {"family": "detector", "dagster_run_id": context.run_id}) as run:
        mlflow_lib.log_params(config.model_dump())
        mlflow_lib.log_metrics({k: float(v) for k, v in {**meta, **scores}.items()
                                if isinstance(v, int | float) and not isinstance(v, bool)})
        version = register_detector(out, {**tags, **lineage_tags(
            context.run_id, layout.catalogue_parquet,
            config.weights if config.weights else layout.truth("demo"))})
        champion = set_detector_champion(mlflow_lib.MlflowClient())
    context.log.info(f"registered fashion-person-detector version {version}; champion: "
                     f"{champion or 'none (no held-out photos to score on)'}")
    metadata["model"] = f"fashion-person-detector version {version}"
    metadata["champion_version"] = champion or "none (no held-out IoU)"
    metadata["training_data"] = tags["training_data"]
    metadata["mlflow_run_id"] = run.info.run_id
    metadata["path"] = MetadataValue.path(str(out))
    return MaterializeResult(metadata=metadata)


@asset(deps=[front_model_images, person_detector], group_name="model_images", pool="person_crops",
       description="The person in each front photo: highest-scoring Faster R-CNN box + margin, "
                   "padded square, 64x64. datasets/person_crops.h5")
def person_crops(context: AssetExecutionContext, config: CropConfig,
                 storage: StorageResource) -> MaterializeResult:
    layout = storage.layout
    fronts = pd.read_parquet(layout.front_model_images)
    model, meta = load_detector(layout.person_detector)
    result = crop_people(model, [(i, layout.file(p)) for i, p in enumerate(fronts["image_path"])],
                         config.size, config.margin, config.batch_size, config.min_score)
    kept = fronts.iloc[result.keys]
    ids, urls, crops = list(kept["id"]), list(kept["image_url"]), result.images
    boxes, scores, drops = result.boxes, result.scores, result.drops
    out = layout.person_crops
    images = np.stack(crops) if crops else np.zeros((0, config.size, config.size, 3), np.uint8)
    write_image_store(out, ids, images, {
        "boxes": np.asarray(boxes, np.float32).reshape(-1, 4),
        "scores": np.asarray(scores, np.float32)}, attrs={"detector": meta.get("variant", "")})
    for reason, n in drops.items():
        if n:
            context.log.warning(f"person_crops: {n} x {reason}")
    sheet = array_grid(crops[:32], cols=8)
    metadata = {"crops": len(ids), "drop_reasons": MetadataValue.json(drops),
                "device": device().type,  # where the detector ran (training.runtime.device)
                "mean_score": round(float(np.mean(scores)), 4) if scores else 0.0,
                **picture(context, sheet, "crops", "person_crops"),  # shown without a click
                "preview": MetadataValue.md(markdown_image(sheet, "crops")),
                "path": MetadataValue.path(str(out))}
    truth_path = layout.truth("demo")
    if truth_path.exists() and ids:
        by_url = photos_by_url(load_truth(truth_path))
        pairs = [(b, by_url[u]["box"]) for b, u in zip(boxes, urls, strict=True) if u in by_url]
        if pairs:
            ious = box_ious([p[0] for p in pairs], [p[1] for p in pairs])
            metadata["demo_mean_iou"] = round(float(ious.mean()), 4)
    return MaterializeResult(metadata=metadata)


@asset_check(asset=front_model_images, description="Every product with a stored model photo "
                                                   "gets exactly one choice.")
def front_model_images_one_per_product(storage: StorageResource) -> AssetCheckResult:
    expected = set(photo_table(read_catalogue(storage.layout.catalogue_dir))["id"])
    chosen = pd.read_parquet(storage.layout.front_model_images)
    missing = sorted(expected - set(chosen["id"]))
    extra = sorted(set(chosen["id"]) - expected)
    ok = chosen["id"].is_unique and not missing and not extra
    return AssetCheckResult(passed=bool(ok), metadata={
        "products": len(expected), "choices": len(chosen),
        "missing": MetadataValue.json(missing[:50]), "unexpected": MetadataValue.json(extra)})


@asset_check(asset=person_crops, description="The HDF5 file opens; images (N, S, S, 3) uint8, "
                                             "boxes (N, 4) and scores (N,) float32, N ids.")
def person_crops_arrays(storage: StorageResource) -> AssetCheckResult:
    path = storage.layout.person_crops
    with h5py.File(path, "r") as f:
        shapes = {k: list(f[k].shape) for k in f}
        dtypes = {k: str(f[k].dtype) for k in ("images", "boxes", "scores")}
    store = read_image_store(path)
    n = len(store["ids"])
    images = store["images"]
    ok = (images.ndim == 4 and images.shape[1] == images.shape[2] and images.shape[3] == 3
          and images.dtype == np.uint8 and store["boxes"].shape == (n, 4)
          and store["scores"].shape == (n,) and len(images) == n
          and dtypes["boxes"] == dtypes["scores"] == "float32")
    return AssetCheckResult(passed=bool(ok), metadata={"shapes": MetadataValue.json(shapes),
                                                       "dtypes": MetadataValue.json(dtypes)})
