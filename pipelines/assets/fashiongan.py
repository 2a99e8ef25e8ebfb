"""The two-stage FashionGAN's inputs (issue 12): `description_encoder` (the catalogue's sentences
-> d, plus the skin tone, in datasets/descriptions.h5) and `human_parser` (a U-Net trained on
the demo's masks, or loaded; it scores held-out demo products and can write the label maps of
real shop front photos into the segmentation store's layout). Both thin over training/; group
"training", so train_job runs them and full_pipeline does not."""

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field, field_validator

from pipelines.assets.catalogue import catalogue, packshot_store
from pipelines.assets.model_images import front_model_images, person_crops
from pipelines.assets.pools import POOL, TRAINING_TAG
from pipelines.assets.previews import picture
from pipelines.assets.segmentation import segmentation_store
from pipelines.processing.demo_truth import load_truth, photos_by_url
from pipelines.processing.images import markdown_image
from pipelines.resources import MLflowResource, StorageResource
from training.description_encoder import (
    label_names_of,
    load_encoder,
    save_encoder,
    train_on_catalogue,
    training_figure,
    write_descriptions,
)
from training.descriptions import catalogue_descriptions
from training.human_parser import (
    MARGIN,
    comparison_grid,
    evaluate,
    front_photo_boxes,
    load_parser,
    parse,
    parse_photos,
    read_segmentation,
    save_parser,
    score_against_masks,
    split_ids,
    train_parser,
    write_parsed,
)
from training.tracking import mlflow_run

GRID_ROWS = 6


def _existing_file(value: str) -> str:
    if value.strip() and not Path(value).is_file():
        raise ValueError(f"weights {value!r} is not a file")
    return value.strip()


class DescriptionEncoderConfig(Config):
    weights: str = Field("", description="an encoder file written by this asset (or python -m "
                                         "training.description_encoder): describe and encode "
                                         "with it instead of training; must exist")
    steps: int = Field(400, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-2, gt=0, description="the start of the cosine-annealed learning rate")
    lr_final: float = Field(0.01, gt=0, le=1, description="where the annealing ends, a share "
                                                          "of lr")
    cell: Literal["gru", "lstm"] = "gru"
    bidirectional: bool = Field(False, description="split the 100 units over both directions")
    recombined: int = Field(2000, ge=0, description="made-up training products, each column "
                                                    "from a random training row (0: the "
                                                    "catalogue's sentences only)")
    holdout: float = Field(0.2, gt=0, lt=1, description="share of products scored, not trained")
    seed: int = Field(0, ge=0)
    threads: int = Field(1, ge=0, description="CPU threads while training (0: torch's "
                                              "default); 1 is 10x faster on a busy 2-core "
                                              "machine")

    @field_validator("weights")
    @classmethod
    def _weights_exist(cls, value: str) -> str:
        return _existing_file(value)


class HumanParserConfig(Config):
    weights: str = Field("", description="a parser file written by this asset (or python -m "
                                         "training.human_parser): load it instead of training "
                                         "on the demo's masks; must exist")
    steps: int = Field(400, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(3e-3, gt=0)
    width: int = Field(8, ge=1, description="channels of the U-Net's first level")
    holdout: float = Field(0.2, gt=0, lt=1, description="share of products scored, not trained")
    seed: int = Field(0, ge=0)
    parse_front_photos: bool = Field(
        False, description="parse every front photo (front_model_images, cropped at "
                           "person_crops' detector boxes) and write the label maps into "
                           "datasets/<parse_into>.h5 in the segmentation store's layout: what "
                           "a real shop's crawl needs")
    parse_into: str = Field("segmentation", description="the store name under datasets/ "
                                                        "(segmentation: replace the store)")
    margin: float = Field(MARGIN, ge=0, le=0.5, description="around the detector's box")
    threads: int = Field(1, ge=0, description="CPU threads while training (0: torch's "
                                              "default); 1 is 10x faster on a busy 2-core "
                                              "machine")

    @field_validator("weights")
    @classmethod
    def _weights_exist(cls, value: str) -> str:
        return _existing_file(value)

    @field_validator("parse_into")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not value or "/" in value or "\\" in value or value.startswith("."):
            raise ValueError(f"parse_into {value!r}: a plain name, written as "
                             "datasets/<name>.h5")
        return value


@asset(deps=[catalogue, packshot_store, segmentation_store], group_name="training", pool=POOL,
       op_tags=TRAINING_TAG,
       description="A sentence per product from the catalogue's columns, a 2-layer GRU (100 "
                   "units) trained to predict each attribute from it (held-out accuracy per "
                   "head), and per product its hidden state d and skin tone (mean RGB of arm "
                   "and face pixels): the two-stage FashionGAN's condition. "
                   "models/description_encoder.pt, datasets/descriptions.h5")
def description_encoder(context: AssetExecutionContext, config: DescriptionEncoderConfig,
                        storage: StorageResource, mlflow: MLflowResource) -> MaterializeResult:
    import mlflow as mlflow_lib

    layout = storage.layout
    rows = pd.read_parquet(layout.catalogue_parquet)
    with mlflow_run("description-encoder", mlflow.tracking_uri, mlflow.artifact_root,
                    {"family": "description_encoder", "dagster_run_id": context.run_id}) as run:
        mlflow_lib.log_params(config.model_dump())
        if config.weights:
            encoder = load_encoder(config.weights)
            ids, texts = catalogue_descriptions(rows)
            model_path = Path(config.weights)
        else:
            encoder, ids, texts = train_on_catalogue(
                rows, label_names_of(layout.packshots), config.recombined, steps=config.steps,
                batch_size=config.batch_size, lr=config.lr, lr_final=config.lr_final,
                cell=config.cell, bidirectional=config.bidirectional,
                holdout=config.holdout, seed=config.seed, threads=config.threads or None,
                log=context.log.info)
            model_path = save_encoder(encoder, layout.description_encoder)
            encoder.vocabulary.save(model_path.with_suffix(".vocab.json"))
        written = write_descriptions(layout.descriptions, ids, texts, encoder,
                                     layout.segmentation)
        accuracy = encoder.accuracy
        mean = round(float(np.mean(list(accuracy.values()))), 4) if accuracy else 0.0
        mlflow_lib.log_metrics({**{f"heldout_accuracy_{k}": v for k, v in accuracy.items()},
                                "mean_heldout_accuracy": mean,
                                "vocabulary_size": written["vocabulary_size"],
                                "unknown_token_rate": written["unknown_token_rate"],
                                "wall_s": encoder.wall_s})
        for step, row in enumerate(encoder.history):
            if step % 10 == 0 or step == len(encoder.history) - 1:
                mlflow_lib.log_metrics({"loss": row["loss"], "lr": row["lr"]}, step=step)
        figure = training_figure(encoder) if encoder.history or accuracy else None
        if figure is not None:
            mlflow_lib.log_image(figure, "description_encoder.png")
        mlflow_lib.log_artifact(str(model_path), "model")
        mlflow_lib.log_text("\n".join(f"{i}\t{t}" for i, t in zip(ids, texts, strict=True)),
                            "descriptions.tsv")
    examples = "\n".join(f"- `{i}`: {t}" for i, t in list(zip(ids, texts, strict=True))[:5])
    metadata = {
        "heldout_accuracy": MetadataValue.json(accuracy),
        "mean_heldout_accuracy": mean,
        "heldout_targets": MetadataValue.json(encoder.heldout),
        "descriptions": written["descriptions"], "vocabulary_size": written["vocabulary_size"],
        "unknown_token_rate": written["unknown_token_rate"],
        "with_skin": written["with_skin"], "without_skin": written["without_skin"],
        "examples": MetadataValue.md(examples),
        "train_wall_s": round(encoder.wall_s, 1), "mlflow_run_id": run.info.run_id,
        "encoder_path": MetadataValue.path(str(model_path)),
        "path": MetadataValue.path(str(layout.descriptions)),
    }
    if figure is not None:
        metadata.update(picture(context, figure, "loss, lr and held-out accuracy",
                                "description_encoder"))
    return MaterializeResult(metadata=metadata)


def _demo_masks(layout, fronts: pd.DataFrame) -> dict[str, Path]:
    """Product id -> the demo shop's mask of its chosen front photo (empty off the demo)."""
    truth_path, masks_dir = layout.truth("demo"), layout.truth_masks("demo")
    if not truth_path.exists() or not masks_dir.exists():
        return {}
    by_url = photos_by_url(load_truth(truth_path))
    out = {}
    for row in fronts.itertuples(index=False):
        mask = by_url.get(row.image_url, {}).get("mask")
        if mask and (masks_dir / mask).exists():
            out[str(row.id)] = masks_dir / mask
    return out


@asset(deps=[segmentation_store, front_model_images, person_crops], group_name="training",
       pool=POOL, op_tags=TRAINING_TAG,
       description="A small U-Net human parser (7 classes, 128x128) trained on the demo's "
                   "masks or loaded from a weights file; held-out pixel accuracy, mIoU and IoU "
                   "per class. With parse_front_photos it writes the label maps of real shop "
                   "front photos (cropped at the detector's boxes) into the segmentation "
                   "store's layout. models/human_parser.pt")
def human_parser(context: AssetExecutionContext, config: HumanParserConfig,
                 storage: StorageResource, mlflow: MLflowResource) -> MaterializeResult:
    import mlflow as mlflow_lib

    layout = storage.layout
    metadata: dict = {}
    with mlflow_run("human-parser", mlflow.tracking_uri, mlflow.artifact_root,
                    {"family": "human_parser", "dagster_run_id": context.run_id}) as run:
        mlflow_lib.log_params(config.model_dump())
        data = test_rows = None
        if config.weights:
            model, info = load_parser(config.weights)
            model_path = Path(config.weights)
            if layout.segmentation.is_file():
                data = read_segmentation(layout.segmentation)
            if data is not None and data.source != "human_parser":
                _, test_rows = split_ids(data.ids, config.seed, config.holdout)
                result = evaluate(model, data.images[test_rows], data.labels[test_rows])
            else:  # no masks to score against here: the file's own scores
                data, result = None, dict(info["scores"])
            train_samples, wall_s = 0, 0.0
        else:
            data = read_segmentation(layout.segmentation)
            trained = train_parser(data, config.steps, config.batch_size, config.lr,
                                   config.width, config.seed, config.holdout,
                                   log=context.log.info, threads=config.threads or None)
            model, result, wall_s = trained.model, trained.scores, trained.wall_s
            _, test_rows = split_ids(data.ids, config.seed, config.holdout)
            train_samples = len(trained.train_ids)
            model_path = save_parser(model, layout.human_parser, result,
                                     {"steps": config.steps, "width": config.width,
                                      "seed": config.seed, "holdout": config.holdout})
        iou = result.get("iou", {})
        mlflow_lib.log_metrics({
            "heldout_pixel_accuracy": result.get("pixel_accuracy", 0.0),
            "heldout_miou": result.get("miou", 0.0), "wall_s": wall_s,
            **{f"iou_{k}": v for k, v in iou.items() if v is not None}})
        mlflow_lib.log_artifact(str(model_path), "model")
        metadata.update({
            "heldout_pixel_accuracy": result.get("pixel_accuracy", 0.0),
            "heldout_miou": result.get("miou", 0.0),
            "per_class_iou": MetadataValue.json(iou),
            "heldout_samples": int(result.get("samples", 0)), "train_samples": train_samples,
            "train_wall_s": round(wall_s, 1)})
        if data is not None and test_rows is not None and len(test_rows):
            rows = test_rows[:GRID_ROWS]
            sheet = comparison_grid(data.images[rows], data.labels[rows],
                                    parse(model, data.images[rows]))
            mlflow_lib.log_image(sheet, "heldout_photo_truth_parse.png")
            metadata.update(picture(context, sheet, "held-out photo | truth | parse",
                                    "human_parser"))
            metadata["preview"] = MetadataValue.md(markdown_image(sheet, "photo | truth | "
                                                                         "parse"))
        if config.parse_front_photos:
            fronts = pd.read_parquet(layout.front_model_images)
            boxes = front_photo_boxes(fronts, layout.person_crops)
            photos = [(str(r.id), layout.file(r.image_path), boxes.get(str(r.id)))
                      for r in fronts.itertuples(index=False)]
            parsed = parse_photos(model, photos, config.margin)
            out = write_parsed(layout.dataset(config.parse_into), parsed, str(model_path))
            for reason, n in parsed.drops.items():
                if n:
                    context.log.warning(f"human_parser: {n} front photos x {reason}")
            metadata.update({"parsed_photos": len(parsed.ids),
                             "parse_drop_reasons": MetadataValue.json(parsed.drops),
                             "parsed_store": MetadataValue.path(str(out))})
            masks = _demo_masks(layout, fronts)
            if masks:  # the demo: the whole photo path scored on the held-out products
                held = ({data.ids[i] for i in test_rows} if data is not None
                        and test_rows is not None else None)
                photo = score_against_masks(parsed, masks, held)
                mlflow_lib.log_metrics({"front_photo_pixel_accuracy": photo["pixel_accuracy"],
                                        "front_photo_miou": photo["miou"]})
                metadata.update({"front_photo_pixel_accuracy": photo["pixel_accuracy"],
                                 "front_photo_miou": photo["miou"],
                                 "front_photo_samples": photo["samples"]})
    metadata.update({"mlflow_run_id": run.info.run_id,
                     "path": MetadataValue.path(str(model_path))})
    return MaterializeResult(metadata=metadata)
