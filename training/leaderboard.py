"""The leaderboard: every registered generator scored the same way; `champion` per family.

Each `fashion-<family>` version is loaded back from the MLflow registry (so what is measured is
exactly what users will load), sampled through its registry tags and scored by
training.evaluation.evaluate_generator with the current attribute classifier; the version with
the lowest Fréchet distance of each family gets the alias `champion` (registry stages are
deprecated).

Scores are kept in a table in the store (`cache`, parquet or CSV), one row per (model, version,
run id, classifier id, data id, samples, seed, inception id, sampling tags id, classifier): a
rerun pays only for new versions, or for all of them when the classifier, the data or the
settings change. A training asset scores the version it registers the same way
(score_version), so with the same samples and seed the leaderboard scores nothing twice.

The classifier is the registry's (metrics_classifier): the best `champion` among the
fashion-classifier-* models that have the category and colour heads, loaded from its version's
plain weights; the models/attribute_classifier.pt file only when the registry has none. Each
row's `classifier` column names it (`fashion-classifier-conv v3`), and its id is the digest of
those weights, so another version rescores.
"""

import hashlib
import json
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from training.datasets import H5ImageDataset
from training.evaluation import evaluate_generator, generate, to_rgb_size
from training.models.classifier import AttributeClassifier

METRICS = ["frechet_distance", "kid", "precision", "recall", "mode_coverage", "mode_coverage_real",
           "symmetry_error_generated", "symmetry_error_real", "conditional_accuracy",
           "conditional_unmapped", "fid_inception", "kid_inception"]
COLUMNS = ["model", "version", "variant", "kind", *METRICS, "classifier", "run_id"]
KEY = ["model", "version", "run_id", "classifier_id", "data_id", "samples", "seed",
       "inception_id", "tags_id", "classifier"]
TEXT_KEYS = ["model", "run_id", "classifier_id", "data_id", "inception_id", "tags_id",
             "classifier"]
# the tags that decide how a version is sampled: a change to any of them invalidates its scores
SAMPLING_TAGS = ("nz", "latent", "label_columns", "label_sizes", "label_values", "image_size",
                 "channels")
# the markdown table: short headers that fit the Dagster asset page, and their formats
SHORT = {"model": "model", "version": "ver", "variant": "variant", "frechet_distance": "FD",
         "kid": "KID", "precision": "prec", "recall": "recall", "mode_coverage": "cover",
         "mode_coverage_real": "cover_real",
         "symmetry_error_generated": "sym", "conditional_accuracy": "cond_acc",
         "fid_inception": "FID_incep"}
FORMATS = {"frechet_distance": "{:.1f}", "kid": "{:.3f}", "precision": "{:.2f}",
           "recall": "{:.2f}", "mode_coverage": "{:.2f}",
           "mode_coverage_real": "{:.2f}", "symmetry_error_generated": "{:.3f}",
           "conditional_accuracy": "{:.2f}", "fid_inception": "{:.1f}"}
MISSING = "–"
SAMPLERS = ("sampler", "conditional")  # the kinds the leaderboard can sample (tag `kind`)


def file_digest(path: Path | str) -> str:
    """sha256 of a file's content, first 16 hex digits: the id of a classifier or data file, so
    cached scores follow the content, not the path or modification time."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def tags_id(tags: dict) -> str:
    sampling = {k: str(tags[k]) for k in SAMPLING_TAGS if k in tags}
    return hashlib.sha256(json.dumps(sampling, sort_keys=True).encode()).hexdigest()[:16]


def read_scores(path: Path) -> pd.DataFrame:
    """The score table (empty when there is none yet)."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=KEY)
    if path.suffix == ".csv":  # ids stay text (a hex digest may be all digits), "" stays ""
        table = pd.read_csv(path, dtype={k: str for k in TEXT_KEYS})
        return table.fillna({k: "" for k in TEXT_KEYS if k in table})
    return pd.read_parquet(path)


@contextmanager
def locked(path: Path):
    """An exclusive lock on `path`'s hidden lock file while the block runs: training assets
    running side by side in train_job each add their version's scores, and without it one
    read-merge-write could drop the other's row."""
    import fcntl

    with path.with_name(f".{path.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_scores(path: Path, rows: list[dict]) -> None:
    """Merge rows into the score table (a newer row replaces one with the same key), written
    to a temporary file and renamed, so a crash or a concurrent reader never sees half a file,
    under a lock, so concurrent writers never drop each other's rows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path):
        old = read_scores(path) if path.exists() else pd.DataFrame()
        table = pd.concat([old, pd.DataFrame(rows)], ignore_index=True)
        # a cache written before a key column existed has it empty (its rows match nothing now)
        table = table.fillna({k: "" for k in TEXT_KEYS if k in table})
        table = table.drop_duplicates([k for k in KEY if k in table], keep="last")
        table = table.reset_index(drop=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        if path.suffix == ".csv":
            table.to_csv(tmp, index=False)
        else:
            table.to_parquet(tmp, index=False)
        os.replace(tmp, path)


# mode coverage counts category x colour classes: a feature space without those heads (a
# Fashion-MNIST classifier's) cannot score packshot GANs
METRIC_HEADS = ("category", "color")


@dataclass
class MetricsClassifier:
    """The classifier whose features and heads score the GANs, and what it is."""

    net: torch.nn.Module
    values: dict[str, list[str]]
    name: str  # `fashion-classifier-conv v3`, or `file attribute_classifier.pt`
    id: str  # file_digest of its weights: the score cache's classifier_id


def metrics_classifier(client, fallback: Path | str,
                       log: Callable[[str], None] | None = None) -> MetricsClassifier:
    """The registry's champion classifier (champion_classifier over every
    fashion-classifier-* model with the METRIC_HEADS) from its version's plain weights; the
    file `fallback` (save_classifier's) only when the registry has none, which the log says."""
    from training.classifier import load_classifier
    from training.families.classifier import champion_classifier, classifier_weights, load_trained

    try:
        name, version = champion_classifier(client, columns=METRIC_HEADS)
    except ValueError as e:
        fallback = Path(fallback)
        if not fallback.exists():
            raise ValueError(f"{e}; and no classifier file {fallback} to fall back on") from None
        if log:
            log(f"GAN metrics: {e}; falling back to the file {fallback}")
        net, values = load_classifier(fallback)
        return MetricsClassifier(net, values, f"file {fallback.name}", file_digest(fallback))
    path = classifier_weights(client, name, version)
    net, values = load_trained(path)
    if log:
        log(f"GAN metrics in the feature space of {name} version {version} (its champion)")
    return MetricsClassifier(net, values, f"{name} v{version}", file_digest(path))


def version_tags(client, version) -> dict:
    """A version's tags; `nz` from its run's params for versions registered before the tag."""
    tags = dict(version.tags or {})
    if "nz" not in tags:
        params = client.get_run(version.run_id).data.params if version.run_id else {}
        tags["nz"] = params.get("nz", "100")
    return tags


def score_key(version, tags: dict, classifier: MetricsClassifier, data_id: str, n: int,
              seed: int, inception_id: str = "") -> dict:
    """The cache key of one version's scores: what they depend on (KEY). The training asset
    that registers a version and the leaderboard build it the same way, so a version its asset
    scored is not scored again."""
    return {"model": version.name, "version": int(version.version),
            "run_id": version.run_id or "", "classifier_id": classifier.id, "data_id": data_id,
            "samples": int(n), "seed": int(seed), "inception_id": inception_id,
            "tags_id": tags_id(tags), "classifier": classifier.name}


def score_version(client, name: str, version: str, data: H5ImageDataset,
                  classifier: MetricsClassifier, n: int, seed: int, cache: Path | str,
                  data_id: str, inception=None, inception_id: str = "") -> dict[str, float]:
    """Load one registered generator back from the registry (what users load), score it as the
    leaderboard does, and keep the scores in `cache` under score_key: the training asset calls
    this right after registering, so the leaderboard finds the version scored."""
    import mlflow

    v = client.get_model_version(name, str(version))
    tags = version_tags(client, v)
    netG = mlflow.pytorch.load_model(f"models:/{name}/{v.version}")
    scores = evaluate_generator(netG, tags, data, classifier.net, classifier.values, n=n,
                                seed=seed, inception=inception)
    key = score_key(v, tags, classifier, data_id, n, seed,
                    inception_id if inception is not None else "")
    write_scores(cache, [{**key, **scores}])
    return scores


def score_registered(client, data: H5ImageDataset, classifier: AttributeClassifier,
                     values: dict, n: int, max_versions: int, seed: int, inception,
                     cache: Path | str, classifier_id: str, data_id: str,
                     inception_id: str = "", log: Callable[[str], None] | None = None,
                     classifier_name: str = "") -> tuple[pd.DataFrame, dict[str, int]]:
    """One row per registered version (the newest max_versions of each fashion-* model) and
    {"scored": versions evaluated now, "cached": versions whose scores were in `cache`}.

    classifier_id / data_id / inception_id name what the scores depend on (file_digest of
    the files); scores are taken from `cache` when all of them, n, seed, the version's run id
    and its sampling tags match, else the version is loaded from the registry, scored, and
    the cache rewritten (after each version, so an interrupted run keeps what it paid for).
    classifier_name (e.g. `fashion-classifier-multihead v2`) is each row's `classifier`."""
    import mlflow

    if inception is not None and not inception_id:
        raise ValueError("score_registered: an Inception net needs its inception_id "
                         "(file_digest of its weights), or cached FIDs could outlive them")
    cache = Path(cache)
    known = {tuple(row.get(k, "") for k in KEY): row
             for row in read_scores(cache).to_dict("records")}
    judge = MetricsClassifier(classifier, values, classifier_name, classifier_id)
    inception_id = inception_id if inception is not None else ""
    rows, counts = [], {"scored": 0, "cached": 0}
    for model in client.search_registered_models("name LIKE 'fashion-%'"):
        versions = sorted(client.search_model_versions(f"name='{model.name}'"),
                          key=lambda v: int(v.version), reverse=True)[:max_versions]
        for v in versions:
            tags = version_tags(client, v)
            if tags.get("kind", "sampler") not in SAMPLERS:
                if log:
                    log(f"{model.name} version {v.version} is a {tags['kind']}: not sampled")
                continue
            key = score_key(v, tags, judge, data_id, n, seed, inception_id)
            cached = known.get(tuple(key[k] for k in KEY))
            if cached is not None:
                scores = {k: x for k, x in cached.items() if k not in KEY and pd.notna(x)}
                counts["cached"] += 1
            else:
                t0 = time.perf_counter()
                try:
                    netG = mlflow.pytorch.load_model(f"models:/{model.name}/{v.version}")
                    scores = evaluate_generator(netG, tags, data, classifier, values, n=n,
                                                seed=seed, inception=inception)
                except Exception as e:  # say which version, not only what went wrong
                    raise RuntimeError(f"scoring {model.name} version {v.version}: "
                                       f"{type(e).__name__}: {e}") from e
                write_scores(cache, [{**key, **scores}])
                counts["scored"] += 1
                if log:
                    log(f"scored {model.name} version {v.version} in "
                        f"{time.perf_counter() - t0:.1f} s")
            kind = tags.get("kind") or ("conditional" if tags.get("label_sizes") else "sampler")
            rows.append({"model": model.name, "version": int(v.version),
                         "variant": tags.get("variant", ""), "kind": kind,
                         "classifier": classifier_name, "run_id": v.run_id or "", **scores})
    table = pd.DataFrame(rows)
    extra = sorted(c for c in table.columns if c not in COLUMNS)
    return table.reindex(columns=[*COLUMNS[:-1], *extra, "run_id"]), counts


def set_champions(client, table: pd.DataFrame) -> dict[str, int]:
    """Alias `champion` on each model's version with the lowest Fréchet distance."""
    champions = {}
    for model, group in table.groupby("model"):
        best = group.sort_values(["frechet_distance", "version"]).iloc[0]
        client.set_registered_model_alias(model, "champion", str(best["version"]))
        champions[model] = int(best["version"])
    return champions


KIND_TITLES = {"sampler": "Samplers (z -> image)",
               "conditional": "Conditional samplers ((z, labels) -> image)"}


def kind_table(shown: pd.DataFrame, champions: dict[str, int], conditional: bool) -> str:
    """One kind's rows with short headers, the `fashion-` prefix dropped (the page is narrow);
    `–` where a version lacks a metric; a column nobody has (FID without Inception) left out;
    cond_acc only in the conditional table."""
    cells = {}
    for column, header in SHORT.items():
        if column not in shown or (column == "conditional_accuracy" and not conditional):
            continue
        if column in FORMATS and column != "conditional_accuracy" and \
                shown[column].isna().all():
            continue
        if column == "model":
            cells[header] = [m.removeprefix("fashion-") for m in shown[column]]
            continue
        fmt = FORMATS.get(column, "{}")
        cells[header] = [MISSING if pd.isna(x) else fmt.format(x) for x in shown[column]]
    # the champion marked beside its version: a column of its own was cut off the page
    cells["ver"] = [f"{c} ✔" if champions.get(m) == v else c for c, m, v in
                    zip(cells["ver"], shown["model"], shown["version"], strict=True)]
    align = ["left" if h in ("model", "variant") else "right" for h in cells]
    return pd.DataFrame(cells).to_markdown(index=False, disable_numparse=True, colalign=align)


def markdown(table: pd.DataFrame, champions: dict[str, int]) -> str:
    """One table per kind (samplers, conditional samplers), narrow enough for the Dagster asset
    page, then a legend: what each column measures."""
    shown = table.sort_values(["model", "frechet_distance"]).reset_index(drop=True)
    kinds = shown["kind"].fillna("sampler") if "kind" in shown else \
        pd.Series("sampler", index=shown.index)
    parts = []
    for kind, title in KIND_TITLES.items():
        rows = shown[kinds == kind]
        if len(rows):
            parts.append(f"**{title}**\n\n" + kind_table(rows, champions,
                                                          kind == "conditional"))
    real = shown["symmetry_error_real"].dropna() if "symmetry_error_real" in shown else []
    judges = sorted({c for c in shown.get("classifier", pd.Series(dtype=str)).dropna() if c})
    space = f"the feature space of {', '.join(judges)}" if judges else \
        "the attribute classifier's feature space"
    legend = [f"FD, KID, prec, recall: in {space}",
              "cover: share of the category x colour classes found in the samples; "
              "cover_real: share of those the classifier finds among the real images",
              "sym: symmetry error of the samples"
              + (f" (real images: {real.iloc[0]:.3f})" if len(real) else ""),
              "cond_acc: share of samples in which the classifier recognises the requested "
              "labels",
              "model names are registered as `fashion-<model>`; ✔ beside a version: alias "
              "`champion`"]
    return "\n\n".join(parts) + "\n\n" + "\n".join(f"- {line}" for line in legend)


@torch.no_grad()
def champion_grid(client, champions: dict[str, int], tags_by_model: dict[str, dict] | None,
                  path: Path | str, n: int = 16, seed: int = 0) -> Path:
    """One PNG: each champion's sample grid side by side, `model vN` written above it,
    sampled from the registered version through its tags (tags_by_model, else the
    registry's)."""
    import mlflow
    from PIL import Image, ImageDraw
    from torchvision.utils import make_grid

    tags_by_model = tags_by_model or {}
    panels = []
    for model, version in sorted(champions.items()):
        tags = tags_by_model.get(model) or version_tags(
            client, client.get_model_version(model, str(version)))
        netG = mlflow.pytorch.load_model(f"models:/{model}/{version}")
        images, _ = generate(netG, tags, n, seed)
        images = to_rgb_size(images, max(64, images.shape[-1]))
        grid = make_grid(images, nrow=max(1, round(n ** 0.5)), padding=2,
                         normalize=True, value_range=(-1, 1), pad_value=1.0)
        pixels = grid.mul(255).round().byte().permute(1, 2, 0).numpy()
        panels.append((f"{model} v{version}", Image.fromarray(pixels)))
    title, gap = 16, 8
    width = sum(p.width for _, p in panels) + gap * max(0, len(panels) - 1)
    height = title + max((p.height for _, p in panels), default=0)
    sheet = Image.new("RGB", (max(width, 1), height), "white")
    draw, x = ImageDraw.Draw(sheet), 0
    for label, panel in panels:
        draw.text((x + 2, 2), label, fill="black")
        sheet.paste(panel, (x, title))
        x += panel.width + gap
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")  # PNG whatever the name (an atomic write's .tmp)
    return path
