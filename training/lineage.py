"""Lineage tags for registered model versions: which run, code and data made a model.

Every version the pipeline registers carries these tags, so the registry answers "what data
made this champion": the Dagster run, the git commit of the code (and whether the working tree
had uncommitted changes), the catalogue snapshot (rows + content hash of catalogue.parquet)
and the dataset the model trained on (path + content digest).
"""

import hashlib
import subprocess
from pathlib import Path

from training.leaderboard import file_digest

CODE_ROOT = Path(__file__).resolve().parent.parent


def git_state(root: Path = CODE_ROOT) -> dict[str, str]:
    """The commit the code runs from and whether tracked files differ from it; "unknown"
    outside a clone (an installed wheel, a container without .git, no git binary)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=30, check=True).stdout.strip()
        changes = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                 cwd=root, capture_output=True, text=True, timeout=60,
                                 check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    return {"git_commit": commit or "unknown", "git_dirty": str(bool(changes)).lower()}


def content_digest(path: Path | str) -> str:
    """file_digest of a file; of a folder (a Fashion-MNIST IDX folder), the digest of its
    files' relative names and digests in order; "missing" when there is nothing there."""
    path = Path(path)
    if path.is_file():
        return file_digest(path)
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f"{f.relative_to(path)}:{file_digest(f)}\n".encode())
        return h.hexdigest()[:16]
    return "missing"


def catalogue_snapshot(parquet: Path | str) -> dict[str, str]:
    """Rows and content hash of catalogue.parquet (read from the footer, not the rows)."""
    parquet = Path(parquet)
    if not parquet.is_file():
        return {"catalogue_rows": "0", "catalogue_hash": "missing"}
    import pyarrow.parquet as pq

    return {"catalogue_rows": str(pq.ParquetFile(parquet).metadata.num_rows),
            "catalogue_hash": file_digest(parquet)}


def lineage_tags(dagster_run_id: str, catalogue_parquet: Path | str,
                 dataset: Path | str) -> dict[str, str]:
    """The tags every registered version carries (all strings, the registry's type)."""
    return {"dagster_run_id": dagster_run_id, **git_state(),
            **catalogue_snapshot(catalogue_parquet),
            "dataset_path": str(dataset), "dataset_digest": content_digest(dataset)}
