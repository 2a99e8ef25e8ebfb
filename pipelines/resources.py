"""Dagster resources: where files land, how crawls run, where MLflow logs.

Defaults that depend on the environment (FASHION_GAN_STORE, MLFLOW_TRACKING_URI) are computed
when a resource is built, not when this module is imported, so a changed environment is
respected. Bad values fail when the resource is built, naming the field and what is allowed.
"""

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field, field_validator

from training.paths import (
    REPO_ROOT,
    StoreLayout,
    mlflow_artifact_root,
    mlflow_tracking_uri,
    store_root,
)

__all__ = ["REPO_ROOT", "CrawlResource", "MLflowResource", "StorageResource", "StoreLayout"]


class StorageResource(ConfigurableResource):
    """The assets_store/ root every asset writes under (env FASHION_GAN_STORE overrides)."""

    root: str = Field(default_factory=lambda: str(store_root()),
                      description="directory every asset writes under")

    @field_validator("root")
    @classmethod
    def _root_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("storage.root must be a directory path, got an empty string")
        return value

    @property
    def layout(self) -> StoreLayout:
        """Every file and folder the pipeline writes, by name (training/paths.py)."""
        return StoreLayout(Path(self.root))

    def path(self, *parts: str) -> Path:
        """Anything the layout does not name: root joined with parts."""
        return Path(self.root).joinpath(*parts)


class CrawlResource(ConfigurableResource):
    """Crawl settings. The demo shop is served on a fixed loopback port so image URLs (and so
    their on-disk hashes) stay the same from one crawl to the next."""

    demo_products: int = Field(default=200, ge=1,
                               description="products in the generated demo shop (>= 1)")
    demo_seed: int = Field(default=0, ge=0, le=2**32 - 1, description="the demo shop's seed")
    demo_port: int = Field(default=8800, ge=0, le=65535,
                           description="loopback port of the demo shop, 0-65535 (0: any free)")
    demo_masks: bool = True  # write the demo's 7-class label maps beside its truth
    max_products: int | None = Field(default=None, ge=1,
                                     description="cap per crawl (>= 1); unset: everything listed")
    timeout_s: int = Field(default=12 * 3600, ge=1, description="crawl time limit in seconds")


class MLflowResource(ConfigurableResource):
    """Tracking URI from MLFLOW_TRACKING_URI, else a sqlite store under the store root's mlflow/
    (FASHION_GAN_STORE or assets_store/); artifacts beside it."""

    tracking_uri: str = Field(default_factory=mlflow_tracking_uri)
    artifact_root: str = Field(default_factory=lambda: str(mlflow_artifact_root()))
