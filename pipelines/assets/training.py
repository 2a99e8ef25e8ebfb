"""Training and evaluation assets, generated from the family registry: one asset per (family,
variant), one MLflow run each, every generator registered as fashion-<family>, and the
leaderboard that crowns each family's champion.

The Dagster config of each asset is generated from its family's config dataclass
(training.config.option fields: help text and allowed values), so a new family needs no code
here. full_pipeline trains the variants marked in_demo (one model of each kind: GAN,
CGAN, pix2pix packshot -> person); train_job trains every family.
"""

import dataclasses
import typing
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    Config,
    DagsterRun,
    DagsterRunStatus,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field, create_model, field_validator

from pipelines.assets.catalogue import packshot_store
from pipelines.assets.model_images import person_crops
from pipelines.assets.pools import POOL, TRAINING_TAG
from pipelines.assets.previews import picture
from pipelines.processing.atomic import write_atomically
from pipelines.processing.images import grid, markdown_image
from pipelines.resources import MLflowResource, StorageResource
from training.classifier import register_attribute_classifier, save_classifier, train_classifier
from training.cli import config_fields
from training.datasets import open_dataset
from training.families.classifier import (
    register_classifier,
    registered_name,
    set_classifier_champion,
)
from training.family import Family, load_families
from training.features import inception_pool3
from training.launch import run_training
from training.leaderboard import (
    METRICS,
    champion_grid,
    file_digest,
    markdown,
    metrics_classifier,
    score_registered,
    score_version,
    set_champions,
)
from training.lineage import lineage_tags
from training.runtime import device as runtime_device
from training.tracking import end_killed_runs, log_generator, log_translator, mlflow_run
from training.translation_metrics import evaluate_translator

GENERATOR_KINDS = ("sampler", "conditional")


class EvaluationConfig(Config):
    eval_samples: int = Field(1000, ge=10, description="generated images the metrics use")
    # the leaderboard's default seed and sample count: a version's figures on its asset page,
    # in its MLflow run and on the leaderboard are one computation on the same samples (the
    # asset scores the registered version into the leaderboard's cache)
    eval_seed: int = Field(0, ge=0, description="seed of the generated images the metrics use")
    # the standard FID's Inception weights (training.features.INCEPTION_URL), a local file;
    # empty: the metrics use the attribute classifier's feature space only
    inception_weights: str = ""


class GANAssetConfig(EvaluationConfig):
    """What every training asset takes besides its family's options (None: the profile's)."""

    profile: str = Field("demo", description="demo: minutes on a 2-core CPU; full: the "
                                             "papers' settings (GPU)")
    data: str = Field("packshots", description="datasets/<data>.h5 (packshots, person_crops), "
                                               "or the path of an HDF5 store or a "
                                               "Fashion-MNIST folder")
    # above one process the asset launches torchrun with the family's CLI (training/launch.py)
    nproc_per_node: int = Field(1, ge=1, description="training processes on this node (GPUs, "
                                                     "or CPU processes with gloo); above 1: "
                                                     "torchrun")
    nnodes: int = Field(1, ge=1, description="nodes of the torchrun job; above 1 every node "
                                             "runs the command the asset logs")
    rdzv_endpoint: str = Field("", description="host:port of the rendezvous when nnodes > 1")


class ClassifierConfig(Config):
    steps: int = Field(400, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(2e-3, gt=0)
    width: int = Field(32, ge=1)
    holdout: float = Field(0.2, gt=0, lt=1)
    seed: int = Field(0, ge=0)


def asset_name(family: type[Family], variant: str) -> str:
    return f"{family.name}_{variant}" if variant else family.name


def asset_config_class(family: type[Family], fixed: dict) -> type[GANAssetConfig]:
    """The Dagster config of a family's asset: every field of its config dataclass (but the
    ones its variant fixes) as an optional field with the same help and bounds."""
    fields: dict[str, Any] = {}
    for f, base in config_fields(family.Config):
        if f.name in fixed:
            continue
        meta = f.metadata
        if typing.get_origin(base) in (list, tuple) or base in (list, tuple):
            base = list[str]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        default = family.Config.PROFILES.get("demo", {}).get(f.name, default)
        choices = f" (one of {', '.join(map(str, meta['choices']))})" \
            if meta.get("choices") else ""
        constraints = {k: meta[k] for k in ("ge", "gt", "le", "lt") if meta.get(k) is not None}
        fields[f.name] = (base | None, Field(
            None, description=f"{meta.get('help', '')}{choices}; demo default: {default!r}",
            **constraints))
    name = "".join(p.title() for p in asset_name(family, "").split("_")) + "AssetConfig"
    return create_model(name, __base__=GANAssetConfig, **fields)


def family_config(family: type[Family], config: GANAssetConfig, fixed: dict,
                  storage: StorageResource) -> Any:
    """The family's config dataclass: its profile, the variant's fixed options, then every
    option set in the Dagster config, completed with the store's files (Family.from_store)."""
    given = {k: v for k, v in config.model_dump().items()
             if k in {f.name for f in dataclasses.fields(family.Config)}}
    cfg = family.Config.profile(config.profile, **{**given, **fixed})
    return family.from_store(cfg, storage.layout)


def classifier_path(storage: StorageResource) -> Path:
    return storage.layout.attribute_classifier


def data_path(storage: StorageResource, data: str) -> Path:
    """datasets/<data>.h5 for a store name, else the path as given (a file or IDX folder)."""
    return storage.layout.dataset(data) if "/" not in data and not \
        data.endswith(".h5") else Path(data)


@asset(deps=[packshot_store], group_name="training", pool=POOL, op_tags=TRAINING_TAG,
       description="A head per attribute on 64x64 packshots; test accuracy per head. "
                   "Registered as fashion-classifier-multihead (`champion` by mean held-out "
                   "accuracy); the registry's champion classifier is the feature space of the "
                   "GAN metrics. models/attribute_classifier.pt")
def attribute_classifier(context: AssetExecutionContext, config: ClassifierConfig,
                         storage: StorageResource, mlflow: MLflowResource) -> MaterializeResult:
    import mlflow as mlflow_lib

    out = classifier_path(storage)
    with mlflow_run("attribute-classifier", mlflow.tracking_uri, mlflow.artifact_root,
                    {"family": "classifier", "dagster_run_id": context.run_id}) as run:
        mlflow_lib.log_params(config.model_dump())
        result = train_classifier(storage.layout.packshots, config.steps,
                                  config.batch_size, config.lr, config.seed, config.holdout,
                                  config.width, log=context.log.info)
        save_classifier(result, out, config.width)
        mlflow_lib.log_metrics({f"test_accuracy_{k}": v for k, v in result.accuracy.items()})
        mlflow_lib.log_artifact(str(out), "model")
        version, champion = register_attribute_classifier(
            result, config.width, config.seed, config.holdout,
            {"run_id": run.info.run_id, **lineage_tags(
                context.run_id, storage.layout.catalogue_parquet, storage.layout.packshots)})
    context.log.info(f"registered fashion-classifier-multihead version {version}; champion: "
                     f"version {champion}")
    return MaterializeResult(metadata={
        "model": f"fashion-classifier-multihead version {version}",
        "champion_version": str(champion),
        "test_accuracy": MetadataValue.json(result.accuracy),
        "heads": MetadataValue.json({k: len(v) for k, v in result.values.items()}),
        "train_wall_s": round(result.wall_s, 1), "mlflow_run_id": run.info.run_id,
        "device": result.device,  # training.runtime.device(): CUDA when present
        "path": MetadataValue.path(str(out))})


def inception_net(config: EvaluationConfig):
    """The Inception feature net when configured (a clear error when its file is missing)."""
    return inception_pool3(config.inception_weights) if config.inception_weights else None


def inception_id(config: EvaluationConfig) -> str:
    """The score cache's inception_id: the digest of the configured weights file, or empty."""
    return file_digest(config.inception_weights) if config.inception_weights else ""


def unfinished_parents(context: AssetExecutionContext) -> list[DagsterRun]:
    """This run's parents, nearest first, back while they did not succeed: the runs whose killed
    or failed step a re-execution takes over."""
    parents, run = [], context.dagster_run
    while run.parent_run_id:
        parent = context.instance.get_run_by_id(run.parent_run_id)
        if parent is None or parent.status == DagsterRunStatus.SUCCESS:
            break
        parents.append(run := parent)
    return parents


def training_run_dir(context: AssetExecutionContext, storage: StorageResource, name: str,
                     cfg: Any) -> Path:
    """The run folder, runs/<asset>/<run id[:8]>/. A re-execution of a run that did not succeed
    (a killed or failed training step) goes back along its parents while they did not succeed
    and continues in the first one's folder, from its checkpoint (training.loop.train resumes
    exactly). A fresh run, a re-execution of a success, or a checkpoint trained with other
    options (which the loop would refuse) trains from step 0 in this run's own folder."""
    from training.checkpoint import checkpoint_config
    from training.loop import config_differences

    run = context.dagster_run
    origin = [run, *unfinished_parents(context)][-1]
    own, folder = storage.layout.runs(name, run.run_id), storage.layout.runs(name, origin.run_id)
    ckpt = folder / "checkpoint.pt"
    if folder != own and ckpt.exists():
        differences = config_differences(checkpoint_config(ckpt), cfg)
        if differences:
            context.log.info(f"{name}: not resuming {ckpt}, trained with other options "
                             f"({', '.join(differences)}); training afresh in {own}")
            return own
        context.log.info(f"{name}: run {run.run_id[:8]} re-executes run "
                         f"{origin.run_id[:8]}, which did not finish: resuming from {ckpt}")
    return folder


def train_and_register(context: AssetExecutionContext, storage: StorageResource,
                       mlflow: MLflowResource, config: GANAssetConfig, family: type[Family],
                       variant: str, cfg: Any) -> MaterializeResult:
    """The frame every training asset shares: one MLflow run with the params, per-step losses,
    grids, loss curves, checkpoint and losses file; the family's own report; the shared
    metrics; the exported network registered as fashion-<family> with its tags."""
    import mlflow as mlflow_lib

    name = asset_name(family, variant)
    # a family reads its own store (pix2pix: paired_images) unless `data` names another
    data_name = (family.data_store if config.data == GANAssetConfig.model_fields["data"].default
                 else config.data)
    source = data_path(storage, data_name)
    # a re-execution after a killed step continues that run's folder from its checkpoint
    out_dir = training_run_dir(context, storage, name, cfg)
    registered = f"fashion-{family.name.replace('_', '-')}"
    tags = {"family": family.name, "variant": variant, "dagster_run_id": context.run_id}
    with mlflow_run(name.replace("_", "-"), mlflow.tracking_uri, mlflow.artifact_root,
                    tags) as run:
        # the MLflow runs of the killed attempts this re-execution takes over never ended
        killed = end_killed_runs(mlflow_lib.MlflowClient(),
                                 [r.run_id for r in unfinished_parents(context) if r.is_finished],
                                 {"family": family.name, "variant": variant})
        if killed:
            context.log.info(f"{name}: marked the MLflow run(s) {', '.join(killed)} that the "
                             "killed attempt(s) left running as KILLED")
        mlflow_lib.log_params({**dataclasses.asdict(cfg), "data": data_name,
                               "latent": family.latent})
        summary = run_training(family, cfg, source, out_dir, config.nproc_per_node,
                               config.nnodes, config.rdzv_endpoint, context.run_id,
                               config.profile, log=context.log.info,
                               log_metrics=lambda s, row: mlflow_lib.log_metrics(row, step=s))
        mlflow_lib.log_params({"world_size": summary.get("world_size", 1)})
        data = open_dataset(source, **family.data_options(cfg))
        model = family.restore(cfg, data, out_dir)
        family_metrics, images = model.report(out_dir, summary)
        version_tags = {**model.registry_tags(), "variant": variant or model.registry_tags()
                        .get("variant", ""), "run_id": run.info.run_id,
                        "data": data_name,
                        **lineage_tags(context.run_id, storage.layout.catalogue_parquet, source)}
        scores, judge = {}, None
        if version_tags["kind"] in GENERATOR_KINDS:
            # the registry's champion classifier (the file only when none is registered)
            judge = metrics_classifier(mlflow_lib.MlflowClient(), classifier_path(storage),
                                       log=context.log.info)
            mlflow_lib.log_param("classifier", judge.name)
            mlflow_lib.set_tag("classifier", judge.name)
        elif version_tags["kind"] == "translator":  # on its test split, by what it is for
            judge = metrics_classifier(mlflow_lib.MlflowClient(), classifier_path(storage),
                                       log=context.log.info)
            mlflow_lib.log_param("classifier", judge.name)
            mlflow_lib.set_tag("classifier", judge.name)
            scores = evaluate_translator(model.translator(), classifier=judge.net,
                                         values=judge.values, **model.evaluation_set(
                                             config.eval_samples, config.eval_seed))
        if "arithmetic" in summary:  # bf16 or fp32, and why (training.runtime.bf16_choice)
            mlflow_lib.set_tag("arithmetic", summary["arithmetic"])
        mlflow_lib.log_metrics({**family_metrics, **scores,
                                "images_per_s": summary["images_per_s"],
                                "wall_s": summary["wall_s"]})
        for folder in family.grid_names:
            mlflow_lib.log_artifacts(str(out_dir / folder), folder)
        mlflow_lib.log_artifact(str(out_dir / "loss_curves.png"))
        mlflow_lib.log_artifact(str(out_dir / "checkpoint.pt"), "checkpoint")
        mlflow_lib.log_artifact(str(out_dir / "losses.jsonl"))
        for folder, paths in images.items():
            for path in paths:
                mlflow_lib.log_artifact(str(path), folder)
        if version_tags["kind"] == "classifier":
            registered = registered_name(cfg.arch)
            version = register_classifier(
                out_dir / "classifier.pt",
                {**version_tags, "mean_heldout_accuracy": str(summary["mean_heldout_accuracy"])})
            set_classifier_champion(mlflow_lib.MlflowClient(), registered)
        elif version_tags["kind"] == "translator":
            version = log_translator(model.translator(), registered.removeprefix("fashion-"),
                                     version_tags, model.translator_example())
        else:
            version = log_generator(model.sampler(), registered.removeprefix("fashion-"),
                                    int(version_tags["nz"]), version_tags,
                                    version_tags["latent"])
            # the registered version, loaded back, scored once: the leaderboard finds these
            # scores in its cache when its samples, seed and classifier are the same
            scores = score_version(
                mlflow_lib.MlflowClient(), registered, version,
                open_dataset(storage.layout.packshots), judge, config.eval_samples,
                config.eval_seed, storage.layout.scores, file_digest(storage.layout.packshots),
                inception_net(config), inception_id(config))
            mlflow_lib.log_metrics(scores)
    resumed = summary.get("resumed_from", 0)
    context.log.info(f"{name}: {summary['images_per_s']} images/s, "
                     f"{f'resumed from step {resumed}, ' if resumed else ''}"
                     f"registered {registered} version {version}")
    last = sorted((out_dir / "samples").glob("*.png"))[-1]
    sheets = {"samples": grid([last], cols=1, cell=512),
              "loss_curves": grid([out_dir / "loss_curves.png"], cols=1, cell=640),
              **{folder: grid([paths[-1]], cols=1, cell=512) for folder, paths in images.items()}}
    pictures = {}  # shown on the asset page without a click
    for key, sheet in sheets.items():
        pictures |= picture(context, sheet, key.replace("_", " "), f"{name}-{key}",
                            key=f"{key}_picture")
    shown = {folder: MetadataValue.md(markdown_image(sheets[folder], folder)) for folder in images}
    return MaterializeResult(metadata={
        **pictures,
        "mlflow_run_id": run.info.run_id,
        "model": f"{registered} version {version}",
        "steps": summary["steps"], "resumed_from": resumed,  # 0: trained from the start
        "images_per_s": summary["images_per_s"],
        "wall_s": summary["wall_s"],
        "final_losses": MetadataValue.json(summary["final_losses"]),
        f"{family.name}_report": MetadataValue.json(family_metrics),
        "metrics": MetadataValue.json(scores),
        **({"classifier": judge.name} if judge else {}),  # the metrics' feature space
        "device": summary.get("device", "cpu"), "world_size": summary.get("world_size", 1),
        **({"arithmetic": summary["arithmetic"]} if "arithmetic" in summary else {}),
        **({"metrics_device": runtime_device().type} if scores else {}),
        "samples": MetadataValue.md(markdown_image(sheets["samples"], "samples")),
        "loss_curves": MetadataValue.md(markdown_image(sheets["loss_curves"], "loss curves")),
        **shown,
        "run_dir": MetadataValue.path(str(out_dir)),
    })


# the asset that writes each store a family may read (Family.data_store)
STORE_ASSETS = {"paired_images": "paired_images", "segmentation": "segmentation_store"}


def upstream_assets(family: type[Family]) -> list[AssetKey]:
    """What a family's asset waits for besides the packshots, crops and classifier: the asset
    of its data store and its declared `upstream` (by key: their modules import this one)."""
    names = [STORE_ASSETS[family.data_store]] if family.data_store in STORE_ASSETS else []
    return [AssetKey(n) for n in dict.fromkeys([*names, *family.upstream])]


def family_asset(family: type[Family], variant: str, fixed: dict):
    """The asset of one (family, variant), with its generated config class."""
    config_class = asset_config_class(family, fixed)
    # the docstring's first paragraph, which may wrap over several lines
    doc = " ".join((family.__doc__ or family.name).strip().split("\n\n")[0].split())
    registered = f"fashion-{family.name.replace('_', '-')}"
    in_demo = family.demo_variant(variant)
    where = "full_pipeline and train_job" if in_demo else "train_job"

    @asset(name=asset_name(family, variant),
           deps=[packshot_store, person_crops, attribute_classifier, *upstream_assets(family)],
           group_name="training", pool=POOL, op_tags=TRAINING_TAG,
           tags={"fashion-gan/in-demo": str(in_demo).lower()},
           description=f"{doc}{f' Variant: {variant}.' if variant else ''} One MLflow run "
                       f"(params, losses per step, sample grids, loss curves, checkpoint, "
                       f"the shared metrics); registered as {registered}. Trained by {where}.")
    def _train(context: AssetExecutionContext, config: config_class,  # type: ignore[valid-type]
               storage: StorageResource, mlflow: MLflowResource) -> MaterializeResult:
        cfg = family_config(family, config, fixed, storage)
        return train_and_register(context, storage, mlflow, config, family, variant, cfg)

    _train.config_class = config_class
    return _train


def build_family_assets() -> list[tuple]:
    """(asset, family, variant) for every registered family and variant."""
    return [(family_asset(family, variant, fixed), family, variant)
            for family in load_families().values()
            for variant, fixed in (family.variants or {"": {}}).items()]


_built = build_family_assets()
family_assets = [a for a, _, _ in _built]
# what full_pipeline trains: the demo set, one of each kind (Family.in_demo)
DEMO_ASSETS = [a for a, family, variant in _built if family.demo_variant(variant)]
ASSETS_BY_NAME = {a.key.path[-1]: a for a in family_assets}


def asset_config(name: str, **values) -> GANAssetConfig:
    """The generated config of a training asset, e.g. asset_config("bigan", steps=2)."""
    return ASSETS_BY_NAME[name].config_class(**values)


class LeaderboardConfig(Config):
    samples: int = Field(1000, ge=10, description="generated images per model version")
    max_versions: int = Field(20, ge=1, description="newest versions per registered model")
    seed: int = Field(0, ge=0)
    inception_weights: str = ""  # a local file: adds the standard FID column


def leaderboard_metrics(table, champions: dict[str, int]) -> dict[str, float]:
    """`<model>/v<version>/<metric>` for every score of every version, and
    `<model>/champion_version`; a metric that does not apply (NaN) is left out."""
    import pandas as pd

    rows = table.to_dict("records")
    metrics = {f"{row['model']}/v{row['version']}/{name}": float(row[name])
               for row in rows for name in METRICS if name in row and pd.notna(row[name])}
    return {**metrics, **{f"{model}/champion_version": float(version)
                          for model, version in champions.items()}}


@asset(deps=[attribute_classifier, *family_assets], group_name="evaluation",
       pool="gan_leaderboard",
       description="Every registered generator (fashion-*) loaded from MLflow and scored with "
                   "the same metrics, once per (version, classifier, data): scores are kept "
                   "in evaluation/scores.parquet, where each training asset already put its "
                   "version's, so a run pays only for versions nobody scored. Alias "
                   "`champion` on each family's best version by Fréchet distance. "
                   "evaluation/leaderboard.md, evaluation/champions.png")
def gan_leaderboard(context: AssetExecutionContext, config: LeaderboardConfig,
                    storage: StorageResource, mlflow: MLflowResource) -> MaterializeResult:
    import mlflow as mlflow_lib

    data_file = storage.layout.packshots
    data = open_dataset(data_file)
    out_dir = storage.layout.evaluation_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    with mlflow_run("gan-leaderboard", mlflow.tracking_uri, mlflow.artifact_root,
                    {"dagster_run_id": context.run_id}) as run:
        client = mlflow_lib.MlflowClient()
        # the registry's champion classifier (the file only when none is registered)
        judge = metrics_classifier(client, classifier_path(storage), log=context.log.info)
        mlflow_lib.log_param("classifier", judge.name)
        table, counts = score_registered(
            client, data, judge.net, judge.values, config.samples, config.max_versions,
            config.seed, inception_net(config), cache=storage.layout.scores,
            classifier_id=judge.id, data_id=file_digest(data_file),
            inception_id=inception_id(config), log=context.log.info,
            classifier_name=judge.name)
        champions = set_champions(client, table)
        text = markdown(table, champions)

        # one set, renamed into place together once all three are written: a reader (or the
        # next leaderboard run) sees the old board or the new one, never half a file
        champions_file = out_dir / "champions.png"
        write_atomically({
            out_dir / "leaderboard.md": lambda p: p.write_text(text + "\n", encoding="utf-8"),
            out_dir / "leaderboard.csv": lambda p: table.to_csv(p, index=False),
            champions_file: lambda p: champion_grid(client, champions, None, p)})
        for path in (out_dir / "leaderboard.md", out_dir / "leaderboard.csv", champions_file):
            mlflow_lib.log_artifact(str(path))
        mlflow_lib.log_metrics({"versions_scored": counts["scored"],
                                "versions_cached": counts["cached"]})
        # every scored version's figures, under the names the training runs use, so the run
        # compares in the MLflow UI (charts grouped per <model>/v<version>), and the table
        mlflow_lib.log_metrics(leaderboard_metrics(table, champions))
        mlflow_lib.log_table(table, "leaderboard.json")
    for model, version in champions.items():
        context.log.info(f"{model}: champion is version {version}")
    champions_sheet = grid([champions_file], cols=1, cell=1024)
    pictures = picture(context, champions_sheet, "champions", "gan_leaderboard",
                       key="champions_picture")
    return MaterializeResult(metadata={
        "models_scored": len(table), "classifier": judge.name,
        "metrics_device": runtime_device().type,  # training.runtime.device()
        "versions_scored_now": counts["scored"],
        "versions_from_cache": counts["cached"], "champions": MetadataValue.json(champions),
        "leaderboard": MetadataValue.md(text), "mlflow_run_id": run.info.run_id,
        **pictures,
        "champion_samples": MetadataValue.md(markdown_image(champions_sheet, "champions")),
        "path": MetadataValue.path(str(out_dir / "leaderboard.md"))})


class RobustnessConfig(Config):
    images: int = Field(1000, ge=1, description="images per classifier and data: its held-out "
                                                "images (fewer when it held out fewer)")
    eps: list[float] = Field(default_factory=lambda: [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3],
                             description="ε values, fractions of the pixel range in [0, 1]")
    pgd_steps: int = Field(5, ge=1, description="PGD steps per ε (α = 2.5 ε / steps)")
    heads: list[str] = Field(default_factory=list, description="heads to score; empty: every "
                                                               "head of each classifier")
    person_crops: bool = Field(True, description="also the segmentation store's person crops "
                                                 "(clothing classes as the garment), if any")
    seed: int = Field(0, ge=0)

    @field_validator("eps")
    @classmethod
    def _eps_in_unit_range(cls, value: list[float]) -> list[float]:
        from training.robustness import check_eps

        return check_eps(value)


@asset(deps=[attribute_classifier, ASSETS_BY_NAME["classifier_dense"],
             ASSETS_BY_NAME["classifier_conv"]], group_name="training", pool=POOL,
       op_tags=TRAINING_TAG,
       description="Every registered fashion-classifier-* champion and latest version, "
                   "attacked on the images it held out: FGSM everywhere, FGSM on the garment "
                   "only (packshots: not the white background; person crops: the "
                   "segmentation store's clothing classes) and PGD, accuracy per head and ε. "
                   "The curves, the table and the sweep times here and in an MLflow run. "
                   "evaluation/robustness.{csv,md,png}")
def classifier_robustness(context: AssetExecutionContext, config: RobustnessConfig,
                          storage: StorageResource, mlflow: MLflowResource) -> MaterializeResult:
    import mlflow as mlflow_lib
    from PIL import Image

    from training.robustness import (
        robustness_markdown,
        robustness_metrics,
        sweep_registered,
        write_robustness,
    )

    out_dir = storage.layout.evaluation_dir
    with mlflow_run("classifier-robustness", mlflow.tracking_uri, mlflow.artifact_root,
                    {"dagster_run_id": context.run_id}) as run:
        mlflow_lib.log_params(config.model_dump())
        result = sweep_registered(
            mlflow_lib.MlflowClient(), lambda data: data_path(storage, data),
            storage.layout.segmentation if config.person_crops else None, config.images,
            config.eps, pgd_steps=config.pgd_steps, seed=config.seed,
            heads=config.heads or None, log=context.log.info)
        files = write_robustness(result, out_dir)
        for path in files.values():
            mlflow_lib.log_artifact(str(path), "robustness")
        mlflow_lib.log_metrics(robustness_metrics(result.table))
        mlflow_lib.log_table(result.table, "robustness.json")
    with Image.open(files["png"]) as im:
        curves = im.convert("RGB")
    return MaterializeResult(metadata={
        **picture(context, curves, "robustness curves", "classifier_robustness",
                  key="curves_picture"),  # shown without a click
        "accuracy": MetadataValue.md(robustness_markdown(result.table)),
        "sweep_s": MetadataValue.md(result.timings.to_markdown(index=False)),
        "classifiers": MetadataValue.json(sorted(set(result.table["model"]))),
        "curves": MetadataValue.md(markdown_image(curves, "robustness curves")),
        "mlflow_run_id": run.info.run_id,
        "path": MetadataValue.path(str(files["md"]))})
