"""The image-to-image data: `paired_images`, each product's packshot beside the person wearing
it, one store every translator family reads (training/paired.py)."""

import h5py
import numpy as np
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from pydantic import Field

from pipelines.assets.catalogue import packshot_store
from pipelines.assets.model_images import person_crops
from pipelines.assets.previews import picture
from pipelines.assets.training import asset_name
from pipelines.processing.images import array_grid, markdown_image
from pipelines.resources import MLflowResource, StorageResource
from training.family import load_families
from training.paired import TEST, build_paired_store
from training.tracking import mlflow_run
from training.translator_board import translator_board

PREVIEW_PAIRS = 8


class PairedImagesConfig(Config):
    min_test: int = Field(16, ge=0, description="test pairs at least: when the catalogue's test "
                                                "split holds fewer, seeded train pairs move to "
                                                "test")
    seed: int = Field(0, ge=0, description="seed of the pairs moved to test")


def preview_pairs(path, n: int = PREVIEW_PAIRS):
    """n pairs, test pairs first (what translators are measured on): packshots in the top
    row, the person crops under them."""
    with h5py.File(path, "r") as f:
        split = f["split"][:]
        rows = np.concatenate([np.flatnonzero(split == TEST), np.flatnonzero(split != TEST)])
        rows = np.sort(rows[:n])
        a, b = f["a"][rows], f["b"][rows]
    return array_grid([*a, *b], cols=max(1, len(rows)))


@asset(deps=[packshot_store, person_crops], group_name="training", pool="paired_images",
       description="Each product's 64x64 packshot (a) beside its person crop (b), joined by "
                   "product id, with the labels and splits (at least min_test test pairs): "
                   "what every image-to-image translator trains on. datasets/paired_images.h5")
def paired_images(context: AssetExecutionContext, config: PairedImagesConfig,
                  storage: StorageResource) -> MaterializeResult:
    layout = storage.layout
    counts = build_paired_store(layout.packshots, layout.person_crops, layout.paired_images,
                                min_test=config.min_test, seed=config.seed)
    moved = counts["moved_to_test"]
    if moved:
        context.log.info(f"paired_images: {moved} train pairs moved to test (the catalogue's "
                         f"test split had {counts['test'] - moved})")
    sheet = preview_pairs(layout.paired_images)
    return MaterializeResult(metadata={
        "pairs": counts["pairs"],
        "splits": MetadataValue.json({k: counts[k] for k in ("train", "val", "test")}),
        "moved_to_test": counts["moved_to_test"],
        "packshots_without_crop": counts["packshots_without_crop"],
        "crops_without_packshot": counts["crops_without_packshot"],
        "size": counts["size"],
        **picture(context, sheet, "packshots over person crops", "paired_images"),
        "preview": MetadataValue.md(markdown_image(sheet, "packshots over person crops")),
        "path": MetadataValue.path(counts["path"]),
    })


@asset_check(asset=paired_images, description="The HDF5 file opens; a and b uint8 (N, S, S, 3) "
                                              "of one shape, N unique ids, labels and split "
                                              "with N rows.")
def paired_images_arrays(storage: StorageResource) -> AssetCheckResult:
    with h5py.File(storage.layout.paired_images, "r") as f:
        shapes = {k: list(f[k].shape) for k in f}
        n = len(f["ids"])
        ids = f["ids"][:]
        ok = (f["a"].shape == f["b"].shape and len(f["a"].shape) == 4
              and f["a"].shape[0] == n and f["a"].shape[-1] == 3
              and f["a"].dtype == f["b"].dtype == np.uint8
              and len(set(ids)) == n and len(f["labels"]) == n and len(f["split"]) == n)
    return AssetCheckResult(passed=bool(ok), metadata={"shapes": MetadataValue.json(shapes)})


# ----- the translators' leaderboard (training/translator_board.py) ----------------------------
class TranslatorBoardConfig(Config):
    max_versions: int = Field(20, ge=1, description="newest versions per registered model")


# every translator family's asset (pix2pix's two directions, ...), by key
TRANSLATOR_ASSETS = [asset_name(family, variant) for family in load_families().values()
                     if family.kind == "translator"
                     for variant in (family.variants or {"": {}})]


@asset(deps=TRANSLATOR_ASSETS, group_name="evaluation", pool="translator_leaderboard",
       description="The second leaderboard table: every registered translator (kind "
                   "translator) with the measures its run recorded on the test split (L1, "
                   "PSNR, SSIM, FD in the classifier's space, edit success, preservation, "
                   "diversity); alias `champion` on each model's best version by its family's "
                   "main measure. evaluation/translators.md, evaluation/translators.csv")
def translator_leaderboard(context: AssetExecutionContext, config: TranslatorBoardConfig,
                           storage: StorageResource, mlflow: MLflowResource
                           ) -> MaterializeResult:
    import mlflow as mlflow_lib

    out_dir = storage.layout.evaluation_dir
    with mlflow_run("translator-leaderboard", mlflow.tracking_uri, mlflow.artifact_root,
                    {"dagster_run_id": context.run_id}) as run:
        table, champions, text = translator_board(mlflow_lib.MlflowClient(), out_dir,
                                                  config.max_versions, log=context.log.info)
        for name in ("translators.md", "translators.csv"):
            mlflow_lib.log_artifact(str(out_dir / name))
        mlflow_lib.log_metrics({f"{model}/champion_version": float(v)
                                for model, v in champions.items()})
    for model, version in champions.items():
        context.log.info(f"{model}: champion is version {version}")
    return MaterializeResult(metadata={
        "versions": len(table), "champions": MetadataValue.json(champions),
        "translators": MetadataValue.md(text), "mlflow_run_id": run.info.run_id,
        "path": MetadataValue.path(str(out_dir / "translators.md"))})
