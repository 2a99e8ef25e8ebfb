"""Where things are, defined once: the repository root, the store root every stage writes under
($FASHION_GAN_STORE, else the repository's assets_store/), every file and folder under it
(`StoreLayout`) and the MLflow defaults (MLFLOW_TRACKING_URI wins for the tracking URI). Read
from the environment at each call, so a changed environment is respected. Imports nothing heavy:
Scrapy's settings use it too."""

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def store_root() -> Path:
    """$FASHION_GAN_STORE, else the repository's assets_store/ (absolute)."""
    return Path(os.environ.get("FASHION_GAN_STORE") or REPO_ROOT / "assets_store").absolute()


@dataclass(frozen=True)
class StoreLayout:
    """Every file and folder the pipeline writes under a store root, named once (the README's
    "Where outputs land" lists the same). Stages ask for `layout.packshots` rather than
    rebuilding "datasets/packshots.h5", so a rename is one edit here and a typo is an
    AttributeError, not a file that silently lands beside the expected one."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def file(self, relative: str | Path) -> Path:
        """A path stored relative to the root (the catalogue's image_path columns)."""
        return self.root / relative

    # ---- raw/<shop>/: one shop's crawls, logs, images (scrape) ----
    @property
    def raw_dir(self) -> Path:
        return self.root / "raw"

    def raw(self, shop: str) -> Path:
        return self.raw_dir / shop

    def crawls(self, shop: str) -> Path:
        """<stamp>.jsonl items, <stamp>.stats.json and <stamp>.meta.json per crawl."""
        return self.raw(shop) / "crawls"

    def crawl_logs(self, shop: str) -> Path:
        return self.raw(shop) / "logs"

    def images(self, shop: str) -> Path:
        """Scrapy's IMAGES_STORE for the shop: full/<sha1(url)>.jpg."""
        return self.raw(shop) / "images"

    def truth(self, shop: str = "demo") -> Path:
        """The demo shop's ground truth (only the demo has one)."""
        return self.raw(shop) / "truth.json"

    def truth_masks(self, shop: str = "demo") -> Path:
        return self.raw(shop) / "truth_masks"

    @property
    def httpcache(self) -> Path:
        return self.root / "httpcache"

    # ---- catalogue/ ----
    @property
    def catalogue_dir(self) -> Path:
        return self.root / "catalogue"

    @property
    def catalogue_images(self) -> Path:
        """<category>/<id>.jpg: the squared packshots; img_path columns are relative to it."""
        return self.catalogue_dir / "images"

    @property
    def catalogue_csv(self) -> Path:
        return self.catalogue_dir / "catalogue.csv"

    @property
    def catalogue_parquet(self) -> Path:
        return self.catalogue_dir / "catalogue.parquet"

    @property
    def catalogue_preview(self) -> Path:
        return self.catalogue_dir / "preview.jpg"

    @property
    def translation_report(self) -> Path:
        return self.catalogue_dir / "translation_report.json"

    @property
    def img_attr_csv(self) -> Path:
        return self.catalogue_dir / "img_attr.csv"

    @property
    def img_attr(self) -> Path:
        """The one-hot labels as Parquet (the CSV beside it is img_attr_csv)."""
        return self.catalogue_dir / "img_attr.parquet"

    @property
    def splits_csv(self) -> Path:
        return self.catalogue_dir / "splits.csv"

    @property
    def splits(self) -> Path:
        """The splits as Parquet (the CSV beside it is splits_csv)."""
        return self.catalogue_dir / "splits.parquet"

    # ---- model_images/ ----
    @property
    def model_images_dir(self) -> Path:
        return self.root / "model_images"

    @property
    def front_model_images(self) -> Path:
        return self.model_images_dir / "front_model_images.parquet"

    @property
    def clusters_preview(self) -> Path:
        return self.model_images_dir / "clusters_preview.jpg"

    # ---- models/ ----
    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def person_detector(self) -> Path:
        return self.models_dir / "person_detector.pt"

    @property
    def attribute_classifier(self) -> Path:
        return self.models_dir / "attribute_classifier.pt"

    @property
    def description_encoder(self) -> Path:
        """The description encoder (training/description_encoder.py), its vocabulary inside."""
        return self.models_dir / "description_encoder.pt"

    @property
    def human_parser(self) -> Path:
        """The 7-class human parser (training/human_parser.py)."""
        return self.models_dir / "human_parser.pt"

    # ---- datasets/ ----
    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    def dataset(self, name: str) -> Path:
        """datasets/<name>.h5: the training assets' `data` names a store this way."""
        return self.datasets_dir / f"{name}.h5"

    @property
    def packshots(self) -> Path:
        return self.dataset("packshots")

    @property
    def person_crops(self) -> Path:
        return self.dataset("person_crops")

    @property
    def paired_images(self) -> Path:
        """Packshot beside person crop per product (training/paired.py): translators' data."""
        return self.dataset("paired_images")

    @property
    def segmentation(self) -> Path:
        return self.dataset("segmentation")

    @property
    def segmentation_fashiongan(self) -> Path:
        return self.dataset("segmentation_fashiongan")

    @property
    def descriptions(self) -> Path:
        """Per product its sentence, tokens, the encoder's d and the skin tone (FashionGAN)."""
        return self.dataset("descriptions")

    # ---- runs/ and evaluation/ ----
    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def runs(self, name: str, run_id: str) -> Path:
        """runs/<asset>/<run id[:8]>/: one training's checkpoint, losses, samples."""
        return self.runs_dir / name / run_id[:8]

    @property
    def evaluation_dir(self) -> Path:
        return self.root / "evaluation"

    @property
    def leaderboard_md(self) -> Path:
        return self.evaluation_dir / "leaderboard.md"

    @property
    def leaderboard_csv(self) -> Path:
        return self.evaluation_dir / "leaderboard.csv"

    @property
    def scores(self) -> Path:
        """Every score the leaderboard computed: its cache."""
        return self.evaluation_dir / "scores.parquet"

    @property
    def champions_png(self) -> Path:
        return self.evaluation_dir / "champions.png"

    # ---- services ----
    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def mlflow_dir(self) -> Path:
        return self.root / "mlflow"

    @property
    def mlflow_db(self) -> Path:
        return self.mlflow_dir / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.mlflow_dir / "artifacts"


def store_layout() -> StoreLayout:
    """The layout under store_root()."""
    return StoreLayout(store_root())


def mlflow_tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else the sqlite store under the store root's mlflow/."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{store_layout().mlflow_db}"


def mlflow_artifact_root() -> Path:
    """mlflow/artifacts under the store root."""
    return store_layout().mlflow_artifacts
