"""Where things are, defined once: the repository root, the store root every stage writes under
($FASHION_GAN_STORE, else the repository's assets_store/) and the MLflow defaults under it
(MLFLOW_TRACKING_URI wins for the tracking URI). Read from the environment at each call, so a
changed environment is respected. Imports nothing heavy: Scrapy's settings use it too."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def store_root() -> Path:
    """$FASHION_GAN_STORE, else the repository's assets_store/ (absolute)."""
    return Path(os.environ.get("FASHION_GAN_STORE") or REPO_ROOT / "assets_store").absolute()


def mlflow_tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else the sqlite store under the store root's mlflow/."""
    return (os.environ.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{store_root() / 'mlflow' / 'mlflow.db'}")


def mlflow_artifact_root() -> Path:
    """mlflow/artifacts under the store root."""
    return store_root() / "mlflow" / "artifacts"
