"""The leaderboard: every registered generator scored the same way; `champion` per family.

Each `fashion-<family>` version is loaded back from the MLflow registry (so what is measured is
exactly what users will load), scored by training.evaluation.evaluate_generator with the
current attribute classifier, and the version with the lowest Fréchet distance of each family
gets the alias `champion` (registry stages are deprecated).
"""

import pandas as pd

from training.datasets import H5ImageDataset
from training.evaluation import evaluate_generator
from training.models.classifier import AttributeClassifier

COLUMNS = ["model", "version", "variant", "frechet_distance", "kid", "precision", "recall",
           "mode_coverage", "symmetry_error_generated", "fid_inception", "run_id"]


def score_registered(client, data: H5ImageDataset, classifier: AttributeClassifier,
                     values: dict, n: int = 1000, max_versions: int = 20,
                     seed: int = 0, inception=None) -> pd.DataFrame:
    """One row per registered version (the newest max_versions of each fashion-* model),
    sampled with the nz and latent distribution its version tags record."""
    import mlflow

    rows = []
    for model in client.search_registered_models("name LIKE 'fashion-%'"):
        versions = sorted(client.search_model_versions(f"name='{model.name}'"),
                          key=lambda v: int(v.version), reverse=True)[:max_versions]
        for v in versions:
            params = client.get_run(v.run_id).data.params if v.run_id else {}
            nz = int(v.tags.get("nz", params.get("nz", 100)))
            netG = mlflow.pytorch.load_model(f"models:/{model.name}/{v.version}")
            scores = evaluate_generator(netG, nz, data, classifier, values, n=n, seed=seed,
                                        latent=v.tags.get("latent", "normal"),
                                        inception=inception)
            rows.append({"model": model.name, "version": int(v.version),
                         "variant": v.tags.get("variant", ""), "run_id": v.run_id, **scores})
    return pd.DataFrame(rows, columns=COLUMNS) if rows else pd.DataFrame(columns=COLUMNS)


def set_champions(client, table: pd.DataFrame) -> dict[str, int]:
    """Alias `champion` on each model's version with the lowest Fréchet distance."""
    champions = {}
    for model, group in table.groupby("model"):
        best = group.sort_values(["frechet_distance", "version"]).iloc[0]
        client.set_registered_model_alias(model, "champion", str(best["version"]))
        champions[model] = int(best["version"])
    return champions


def markdown(table: pd.DataFrame, champions: dict[str, int]) -> str:
    shown = table.drop(columns=["run_id"]).dropna(axis=1, how="all")
    shown = shown.sort_values(["model", "frechet_distance"]).copy()
    shown["champion"] = [("✔" if champions.get(m) == v else "")
                         for m, v in zip(shown["model"], shown["version"], strict=True)]
    return shown.to_markdown(index=False, floatfmt=".4f")
