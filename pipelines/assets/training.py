"""Training and evaluation assets: one MLflow run per model, generators registered as
fashion-<family>, and the leaderboard that crowns each family's champion."""

from collections.abc import Callable
from dataclasses import asdict

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset

from pipelines.assets.catalogue import packshot_store
from pipelines.assets.model_images import person_crops
from pipelines.assets.pools import POOL, TRAINING_TAG
from pipelines.processing.images import grid, markdown_image
from pipelines.resources import MLflowResource, StorageResource
from training.bigan import BiGANConfig, load_networks, train_bigan
from training.classifier import load_classifier, save_classifier, train_classifier
from training.datasets import H5ImageDataset
from training.dcgan import (
    VARIANTS,
    DCGANConfig,
    load_discriminator,
    load_generator,
    symmetry_report,
    train_dcgan,
)
from training.evaluation import evaluate_generator
from training.features import inception_pool3
from training.grids import save_image_grid
from training.leaderboard import markdown, score_registered, set_champions
from training.tracking import log_generator, mlflow_run


class EvaluationConfig(Config):
    eval_samples: int = 1000  # generated images the metrics are computed on
    # the standard FID's Inception weights (training.features.INCEPTION_URL), a local file;
    # empty: the metrics use the attribute classifier's feature space only
    inception_weights: str = ""


class GANAssetConfig(EvaluationConfig):
    """What every GAN asset takes; None keeps the profile's value."""

    profile: str = "demo"  # demo: minutes on a 2-core CPU; full: the paper's settings (GPU)
    data: str = "packshots"  # datasets/<data>.h5: packshots or person_crops
    steps: int | None = None
    batch_size: int | None = None
    ngf: int | None = None
    ndf: int | None = None
    seed: int = 0
    bf16: bool = True

    def overrides(self) -> dict:
        """The shared options as keyword arguments of GANConfig.profile (None: the profile's)."""
        return {"steps": self.steps, "batch_size": self.batch_size, "ngf": self.ngf,
                "ndf": self.ndf, "seed": self.seed, "bf16": self.bf16}


class DCGANAssetConfig(GANAssetConfig):
    repair_steps: int = 100


class BiGANAssetConfig(GANAssetConfig):
    preset: str = "EX6"  # EX1-EX9: λ1 ∈ {0.05, 1, 2.5} x {-, λ2 = 1, λ3 = 1}
    lambda_ad: float | None = None
    lambda_ae: float | None = None
    lambda_h: float | None = None
    feature_net: str = "classifier"  # L_H's space: classifier (offline) or alexnet
    feature_weights: str = ""  # alexnet: a local ImageNet file (else torchvision's download)
    nef: int | None = None


class ClassifierConfig(Config):
    steps: int = 400
    batch_size: int = 32
    lr: float = 2e-3
    width: int = 32
    holdout: float = 0.2
    seed: int = 0


@asset(deps=[packshot_store], group_name="training", pool=POOL, op_tags=TRAINING_TAG,
       description="A head per attribute on 64x64 packshots; test accuracy per head. Its "
                   "features are the offline feature space of the GAN metrics. "
                   "models/attribute_classifier.pt")
def attribute_classifier(context: AssetExecutionContext, config: ClassifierConfig,
                         storage: StorageResource, mlflow: MLflowResource) -> MaterializeResult:
    import mlflow as mlflow_lib

    out = storage.path("models", "attribute_classifier.pt")
    with mlflow_run("attribute-classifier", mlflow.tracking_uri, mlflow.artifact_root,
                    {"family": "classifier", "dagster_run_id": context.run_id}) as run:
        mlflow_lib.log_params(config.model_dump())
        result = train_classifier(storage.path("datasets", "packshots.h5"), config.steps,
                                  config.batch_size, config.lr, config.seed, config.holdout,
                                  config.width, log=context.log.info)
        save_classifier(result, out, config.width)
        mlflow_lib.log_metrics({f"test_accuracy_{k}": v for k, v in result.accuracy.items()})
        mlflow_lib.log_artifact(str(out), "model")
    return MaterializeResult(metadata={
        "test_accuracy": MetadataValue.json(result.accuracy),
        "heads": MetadataValue.json({k: len(v) for k, v in result.values.items()}),
        "train_wall_s": round(result.wall_s, 1), "mlflow_run_id": run.info.run_id,
        "path": MetadataValue.path(str(out))})


def inception_net(config: EvaluationConfig):
    """The Inception feature net when configured (a clear error when its file is missing)."""
    return inception_pool3(config.inception_weights) if config.inception_weights else None


def train_and_register(context: AssetExecutionContext, storage: StorageResource,
                       mlflow: MLflowResource, config: EvaluationConfig, family: str,
                       variant: str, cfg, train: Callable, report: Callable,
                       latent: str = "normal") -> MaterializeResult:
    """The frame every training asset shares: one MLflow run with the params, per-step losses,
    sample grids, checkpoint and losses file; the family's own report (generator, metrics,
    grid images); the shared metrics; the generator registered as fashion-<family>.

    train(cfg, data_path, out_dir, log_metrics) -> summary, as the library's train_* loops;
    report(out_dir, summary) -> (netG, metrics, {artifact folder: [image paths]})."""
    import mlflow as mlflow_lib

    data_path = storage.path("datasets", f"{config.data}.h5")
    out_dir = storage.path("runs", f"{family}_{variant}", context.run_id[:8])
    tags = {"family": family, "variant": variant, "dagster_run_id": context.run_id}
    with mlflow_run(f"{family}-{variant}", mlflow.tracking_uri, mlflow.artifact_root,
                    tags) as run:
        mlflow_lib.log_params({**asdict(cfg), "data": config.data, "latent": latent})
        summary = train(cfg, data_path, out_dir,
                        log_metrics=lambda s, row: mlflow_lib.log_metrics(row, step=s))
        generator, family_metrics, images = report(out_dir, summary)
        classifier, values = load_classifier(storage.path("models", "attribute_classifier.pt"))
        scores = evaluate_generator(generator, cfg.nz, H5ImageDataset(
            storage.path("datasets", "packshots.h5")), classifier, values,
            n=config.eval_samples, seed=cfg.seed, latent=latent,
            inception=inception_net(config))
        mlflow_lib.log_metrics({**family_metrics, **scores,
                                "images_per_s": summary["images_per_s"],
                                "wall_s": summary["wall_s"]})
        mlflow_lib.log_artifacts(str(out_dir / "samples"), "samples")
        mlflow_lib.log_artifact(str(out_dir / "checkpoint.pt"), "checkpoint")
        mlflow_lib.log_artifact(str(out_dir / "losses.jsonl"))
        for folder, paths in images.items():
            for path in paths:
                mlflow_lib.log_artifact(str(path), folder)
        version = log_generator(generator, family, cfg.nz,
                                {"variant": variant, "run_id": run.info.run_id}, latent)
    context.log.info(f"{family} {variant}: {summary['images_per_s']} images/s, "
                     f"registered fashion-{family} version {version}")
    last = sorted((out_dir / "samples").glob("*.png"))[-1]
    shown = {name: MetadataValue.md(markdown_image(grid([paths[-1]], cols=1, cell=512), name))
             for name, paths in images.items()}
    return MaterializeResult(metadata={
        "mlflow_run_id": run.info.run_id,
        "model": f"fashion-{family} version {version}",
        "steps": summary["steps"], "images_per_s": summary["images_per_s"],
        "wall_s": summary["wall_s"],
        "final_losses": MetadataValue.json(summary["final_losses"]),
        f"{family}_report": MetadataValue.json(family_metrics),
        "metrics": MetadataValue.json(scores),
        "samples": MetadataValue.md(markdown_image(grid([last], cols=1, cell=512), "samples")),
        **shown,
        "run_dir": MetadataValue.path(str(out_dir)),
    })


def dcgan_asset(variant: str):
    @asset(name=f"dcgan_{variant}", deps=[packshot_store, person_crops, attribute_classifier],
           group_name="training",
           pool=POOL, op_tags=TRAINING_TAG,
           description=f"DCGAN 64x64, {variant} variant: one MLflow run (params, the six "
                       "losses per step, sample grids, checkpoint, flip gap, flip-inversion "
                       "grids), generator registered as fashion-dcgan.")
    def _train(context: AssetExecutionContext, config: DCGANAssetConfig,
               storage: StorageResource, mlflow: MLflowResource) -> MaterializeResult:
        cfg = DCGANConfig.profile(config.profile, variant=variant, **config.overrides())

        def report(out_dir, summary):
            generator = load_generator(out_dir, cfg)
            metrics, before, after = symmetry_report(
                generator, H5ImageDataset(storage.path("datasets", f"{config.data}.h5")),
                cfg.nz, repair_steps=config.repair_steps, seed=cfg.seed,
                netD=load_discriminator(out_dir, cfg))
            paths = []
            for name, images in (("before", before), ("after", after)):
                paths.append(save_image_grid(images, out_dir / f"flip_inversion_{name}.png"))
            return generator, metrics, {"flip_inversion": paths}

        return train_and_register(context, storage, mlflow, config, "dcgan", variant, cfg,
                                  train_dcgan, report)

    return _train


dcgan_assets = [dcgan_asset(v) for v in VARIANTS]


@asset(deps=[packshot_store, person_crops, attribute_classifier], group_name="training",
       pool=POOL, op_tags=TRAINING_TAG,
       description="BiGAN 64x64 with latent reconstruction (preset EX1-EX9, EX6 by default): "
                   "one MLflow run (params, the GAN and reconstruction losses per step, sample "
                   "and held-out reconstruction grids, checkpoint, reconstruction errors), "
                   "generator registered as fashion-bigan (z ~ U[-1, 1]).")
def bigan(context: AssetExecutionContext, config: BiGANAssetConfig, storage: StorageResource,
          mlflow: MLflowResource) -> MaterializeResult:
    feature_weights = config.feature_weights
    if config.feature_net == "classifier":
        feature_weights = str(storage.path("models", "attribute_classifier.pt"))
    cfg = BiGANConfig.profile(config.profile, preset=config.preset, lambda_ad=config.lambda_ad,
                              lambda_ae=config.lambda_ae, lambda_h=config.lambda_h,
                              feature_net=config.feature_net, feature_weights=feature_weights,
                              nef=config.nef, **config.overrides())

    def report(out_dir, summary):
        generator, _ = load_networks(out_dir, cfg)
        metrics = {k: summary[k] for k in ("reconstruction_error_pixel",
                                           "reconstruction_error_latent", "flip_gap")}
        return generator, metrics, {"reconstruction": [out_dir / "reconstruction.png"]}

    return train_and_register(context, storage, mlflow, config, "bigan", cfg.preset, cfg,
                              train_bigan, report, latent="uniform")


class LeaderboardConfig(Config):
    samples: int = 1000  # generated images per model version
    max_versions: int = 20  # newest versions per registered model
    seed: int = 0
    inception_weights: str = ""  # a local file: adds the standard FID column


@asset(deps=[attribute_classifier, *dcgan_assets, bigan], group_name="evaluation",
       description="Every registered generator (fashion-*) loaded from MLflow and scored with "
                   "the same metrics; alias `champion` on each family's best version by "
                   "Fréchet distance. evaluation/leaderboard.md")
def gan_leaderboard(context: AssetExecutionContext, config: LeaderboardConfig,
                    storage: StorageResource, mlflow: MLflowResource) -> MaterializeResult:
    import mlflow as mlflow_lib

    classifier, values = load_classifier(storage.path("models", "attribute_classifier.pt"))
    data = H5ImageDataset(storage.path("datasets", "packshots.h5"))
    out_dir = storage.path("evaluation")
    out_dir.mkdir(parents=True, exist_ok=True)
    with mlflow_run("gan-leaderboard", mlflow.tracking_uri, mlflow.artifact_root,
                    {"dagster_run_id": context.run_id}) as run:
        client = mlflow_lib.MlflowClient()
        table = score_registered(client, data, classifier, values, config.samples,
                                 config.max_versions, config.seed,
                                 inception_net(config))
        champions = set_champions(client, table)
        text = markdown(table, champions)
        (out_dir / "leaderboard.md").write_text(text + "\n")
        table.to_csv(out_dir / "leaderboard.csv", index=False)
        mlflow_lib.log_artifact(str(out_dir / "leaderboard.md"))
        mlflow_lib.log_artifact(str(out_dir / "leaderboard.csv"))
    for model, version in champions.items():
        context.log.info(f"{model}: champion is version {version}")
    return MaterializeResult(metadata={
        "models_scored": len(table), "champions": MetadataValue.json(champions),
        "leaderboard": MetadataValue.md(text), "mlflow_run_id": run.info.run_id,
        "path": MetadataValue.path(str(out_dir / "leaderboard.md"))})
