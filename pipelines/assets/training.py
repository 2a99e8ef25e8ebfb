"""Training and evaluation assets: one MLflow run per model, generators registered as
fashion-<family>, and the leaderboard that crowns each family's champion."""

from dataclasses import asdict

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from torchvision.utils import save_image

from pipelines.assets.catalogue import packshot_store
from pipelines.assets.model_images import person_crops
from pipelines.assets.pools import POOL, TRAINING_TAG
from pipelines.processing.images import grid, markdown_image
from pipelines.resources import MLflowResource, StorageResource
from training.classifier import load_classifier, save_classifier, train_classifier
from training.datasets import H5ImageDataset
from training.dcgan import VARIANTS, DCGANConfig, load_generator, symmetry_report, train_dcgan
from training.evaluation import evaluate_generator
from training.leaderboard import markdown, score_registered, set_champions
from training.tracking import log_generator, mlflow_run


class DCGANAssetConfig(Config):
    profile: str = "demo"  # demo: minutes on a 2-core CPU; full: the paper's settings (GPU)
    data: str = "packshots"  # datasets/<data>.h5: packshots or person_crops
    steps: int | None = None
    batch_size: int | None = None
    ngf: int | None = None
    ndf: int | None = None
    seed: int = 0
    bf16: bool = True
    repair_steps: int = 100
    eval_samples: int = 1000  # generated images the metrics are computed on


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


def dcgan_asset(variant: str):
    @asset(name=f"dcgan_{variant}", deps=[packshot_store, person_crops, attribute_classifier],
           group_name="training",
           pool=POOL, op_tags=TRAINING_TAG,
           description=f"DCGAN 64x64, {variant} variant: one MLflow run (params, the six "
                       "losses per step, sample grids, checkpoint, flip-inversion grids), "
                       "generator registered as fashion-dcgan.")
    def _train(context: AssetExecutionContext, config: DCGANAssetConfig,
               storage: StorageResource, mlflow: MLflowResource) -> MaterializeResult:
        import mlflow as mlflow_lib

        cfg = DCGANConfig.profile(config.profile, variant=variant, steps=config.steps,
                                  batch_size=config.batch_size, ngf=config.ngf, ndf=config.ndf,
                                  seed=config.seed, bf16=config.bf16)
        data_path = storage.path("datasets", f"{config.data}.h5")
        out_dir = storage.path("runs", f"dcgan_{variant}", context.run_id[:8])
        tags = {"family": "dcgan", "variant": variant, "dagster_run_id": context.run_id}
        with mlflow_run(f"dcgan-{variant}", mlflow.tracking_uri, mlflow.artifact_root,
                        tags) as run:
            mlflow_lib.log_params({**asdict(cfg), "data": config.data})
            summary = train_dcgan(cfg, data_path, out_dir,
                                  log_metrics=lambda s, row: mlflow_lib.log_metrics(row, step=s))
            generator = load_generator(out_dir, cfg)
            report, before, after = symmetry_report(generator, H5ImageDataset(data_path), cfg.nz,
                                                    repair_steps=config.repair_steps,
                                                    seed=cfg.seed)
            for name, images in (("before", before), ("after", after)):
                save_image(images, out_dir / f"flip_inversion_{name}.png", nrow=8,
                           normalize=True, value_range=(-1, 1))
            classifier, values = load_classifier(storage.path("models",
                                                              "attribute_classifier.pt"))
            scores = evaluate_generator(generator, cfg.nz, H5ImageDataset(
                storage.path("datasets", "packshots.h5")), classifier, values,
                n=config.eval_samples, seed=cfg.seed)
            mlflow_lib.log_metrics({**report, **scores, "images_per_s": summary["images_per_s"],
                                    "wall_s": summary["wall_s"]})
            mlflow_lib.log_artifacts(str(out_dir / "samples"), "samples")
            mlflow_lib.log_artifact(str(out_dir / "checkpoint.pt"), "checkpoint")
            mlflow_lib.log_artifact(str(out_dir / "losses.jsonl"))
            for name in ("before", "after"):
                mlflow_lib.log_artifact(str(out_dir / f"flip_inversion_{name}.png"),
                                        "flip_inversion")
            version = log_generator(generator, "dcgan", cfg.nz,
                                    {"variant": variant, "run_id": run.info.run_id})
        context.log.info(f"dcgan {variant}: {summary['images_per_s']} images/s, "
                         f"registered fashion-dcgan version {version}")
        last = sorted((out_dir / "samples").glob("*.png"))[-1]
        return MaterializeResult(metadata={
            "mlflow_run_id": run.info.run_id,
            "model": f"fashion-dcgan version {version}",
            "steps": summary["steps"], "images_per_s": summary["images_per_s"],
            "wall_s": summary["wall_s"],
            "final_losses": MetadataValue.json(summary["final_losses"]),
            "symmetry": MetadataValue.json(report),
            "metrics": MetadataValue.json(scores),
            "samples": MetadataValue.md(markdown_image(grid([last], cols=1, cell=512),
                                                       "samples")),
            "run_dir": MetadataValue.path(str(out_dir)),
        })

    return _train


dcgan_assets = [dcgan_asset(v) for v in VARIANTS]


class LeaderboardConfig(Config):
    samples: int = 1000  # generated images per model version
    max_versions: int = 20  # newest versions per registered model
    seed: int = 0


@asset(deps=[attribute_classifier, *dcgan_assets], group_name="evaluation",
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
                                 config.max_versions, config.seed)
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
