"""Dagster resources: where files land, how crawls run, where MLflow logs."""

import os
from pathlib import Path

from dagster import ConfigurableResource

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_store_root() -> str:
    return os.environ.get("FASHION_GAN_STORE", str(REPO_ROOT / "assets_store"))


class StorageResource(ConfigurableResource):
    """The assets_store/ root every asset writes under (env FASHION_GAN_STORE overrides)."""

    root: str = default_store_root()

    def path(self, *parts: str) -> Path:
        return Path(self.root).joinpath(*parts)


class CrawlResource(ConfigurableResource):
    """Crawl settings. The demo shop is served on a fixed loopback port so image URLs (and so
    their on-disk hashes) stay the same from one crawl to the next."""

    demo_products: int = 200
    demo_seed: int = 0
    demo_port: int = 8800
    demo_masks: bool = True  # write the demo's 7-class label maps beside its truth
    max_products: int | None = None  # per crawl; None = everything listed
    timeout_s: int = 12 * 3600


class MLflowResource(ConfigurableResource):
    """Tracking URI from MLFLOW_TRACKING_URI, else a sqlite store under assets_store/mlflow."""

    tracking_uri: str = os.environ.get(
        "MLFLOW_TRACKING_URI", f"sqlite:///{REPO_ROOT / 'assets_store' / 'mlflow' / 'mlflow.db'}")
    artifact_root: str = str(REPO_ROOT / "assets_store" / "mlflow" / "artifacts")
