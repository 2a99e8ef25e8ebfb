"""Train the attribute classifier on packshots.h5 (images + the 42 one-hot label columns).

Each attribute column (category, color, length, …) is one softmax head; products whose shop
did not state a column have no target for that head and are left out of its loss and accuracy.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from training.checkpoint import load_plain, plain, save_plain
from training.datasets import H5ImageDataset, holdout_split
from training.models.classifier import AttributeClassifier, define_classifier
from training.runtime import device

MISSING = -1


def label_targets(labels: np.ndarray, names: list[str]) -> tuple[dict[str, np.ndarray],
                                                                  dict[str, list[str]]]:
    """One-hot columns `<column>_<value>` -> per column a class index (MISSING if none)."""
    columns: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        column = next(c for c in ("sleeve_length", "category", "color", "length", "fit",
                                  "pattern", "neckline", "occasion") if name.startswith(c + "_"))
        columns.setdefault(column, []).append(i)
    targets, values = {}, {}
    for column, idx in columns.items():
        block = labels[:, idx]
        target = block.argmax(1).astype(np.int64)
        target[block.sum(1) == 0] = MISSING
        targets[column] = target
        values[column] = [names[i][len(column) + 1:] for i in idx]
    return targets, values


@dataclass
class ClassifierResult:
    model: AttributeClassifier
    values: dict[str, list[str]]
    accuracy: dict[str, float]  # per head, on the held-out images
    wall_s: float
    device: str = "cpu"  # where it trained (training.runtime.device)


def train_classifier(data_path: Path, steps: int = 300, batch_size: int = 32, lr: float = 2e-3,
                     seed: int = 0, holdout: float = 0.2, width: int = 32,
                     log: Callable[[str], None] | None = None) -> ClassifierResult:
    """Train on a random (seeded) 1 - holdout of the images, report accuracy on the rest.
    The catalogue's own test split (1%) is too small on the demo to measure anything."""
    torch.manual_seed(seed)
    data = H5ImageDataset(data_path, flip=True, seed=seed)
    with h5py.File(data_path, "r") as f:
        labels = f["labels"][:]
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f.attrs["label_names"]]
    targets, values = label_targets(labels, names)
    heads = {c: len(v) for c, v in values.items()}
    g = torch.Generator().manual_seed(seed)
    train_idx, test_idx = holdout_split(len(data), holdout, g)
    y = {c: torch.from_numpy(t) for c, t in targets.items()}
    dev = device()  # CUDA when present (training.runtime.device)
    model = define_classifier(heads, width).to(dev)
    y = {c: t.to(dev) for c, t in y.items()}
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    t0 = time.perf_counter()
    model.train()
    for step in range(steps):
        idx = train_idx[torch.randint(0, len(train_idx), (batch_size,), generator=g)]
        idx_dev = idx.to(dev)
        out = model(data.batch(idx).to(dev))
        loss = sum(F.cross_entropy(out[c], y[c][idx_dev], ignore_index=MISSING)
                   for c in heads if (y[c][idx_dev] != MISSING).any())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if log and step % 50 == 0:
            log(f"classifier step {step}/{steps} loss {loss.item():.3f}")
    model.eval()
    data.flip = False
    with torch.no_grad():
        out = {c: o.cpu() for c, o in model(data.batch(test_idx).to(dev)).items()}
    y = {c: t.cpu() for c, t in y.items()}
    model.cpu()  # saved and registered from the CPU
    accuracy = {}
    for c in heads:
        known = y[c][test_idx] != MISSING
        if known.any():
            pred = out[c].argmax(1)[known]
            accuracy[c] = round(float((pred == y[c][test_idx][known]).float().mean()), 4)
    return ClassifierResult(model, values, accuracy, time.perf_counter() - t0, dev.type)


def save_classifier(result: ClassifierResult, path: Path, width: int) -> Path:
    """Plain values only, so load_classifier can read it with weights_only=True; written
    atomically, as gan_leaderboard may be reading the previous file meanwhile."""
    return save_plain({"state_dict": result.model.state_dict(),
                       "values": plain(result.values, "values"), "width": int(width),
                       "accuracy": plain(result.accuracy, "accuracy")}, path)


def load_classifier(path: Path) -> tuple[AttributeClassifier, dict[str, list[str]]]:
    """A file written by save_classifier; it may come from elsewhere (BiGAN's
    --feature-weights), so it is read without unpickling objects (weights_only=True)."""
    saved = load_plain(path, "attribute classifier file")
    if not isinstance(saved, dict) or not {"state_dict", "values", "width"} <= saved.keys():
        raise ValueError(f"attribute classifier file {path} was not written by save_classifier "
                         "(needs state_dict, values and width)")
    try:
        model = define_classifier({k: len(v) for k, v in saved["values"].items()},
                                  int(saved["width"]))
        model.load_state_dict(saved["state_dict"])
    except (AttributeError, TypeError, RuntimeError) as e:
        raise ValueError(f"attribute classifier file {path} does not hold a classifier of its "
                         f"stated heads and width: {type(e).__name__}: {e}") from e
    return model.eval(), saved["values"]


def register_attribute_classifier(result: ClassifierResult, width: int, seed: int,
                                  holdout: float, tags: dict[str, str] | None = None
                                  ) -> tuple[str, str | None]:
    """In the active MLflow run: the attribute classifier registered as
    fashion-classifier-multihead (training.families.classifier.register_classifier: its plain
    weights in save_trained's layout and the MLflow model), tagged like the family's versions
    (arch, label columns/sizes/values, the held-out accuracy, and seed / holdout / heldout_of
    `all`, so classifier_robustness sweeps the images it held out), and `champion` set on the
    model's best version by mean held-out accuracy. Returns (the new version, the champion's)."""
    import json
    import tempfile

    import mlflow

    from training.families.classifier import (
        ClassifierConfig,
        register_classifier,
        registered_name,
        save_trained,
        set_classifier_champion,
    )

    columns = list(result.values)
    accuracy = result.accuracy
    mean = round(sum(accuracy.values()) / len(accuracy), 4) if accuracy else 0.0
    cfg = ClassifierConfig(arch="multihead", label_columns=columns, width=width, depth=4,
                           feature_dim=result.model.feature_dim, seed=seed, holdout=holdout)
    version_tags = {
        "kind": "classifier", "arch": "multihead", "label_columns": ",".join(columns),
        "label_sizes": ",".join(str(len(result.values[c])) for c in columns),
        "label_values": json.dumps(result.values), "image_size": "64", "channels": "3",
        "feature_dim": str(result.model.feature_dim), "adversarial": "", "adv_eps": "",
        "seed": str(seed), "holdout": str(holdout), "heldout_of": "all", "test_data": "",
        "data": "packshots", "mean_heldout_accuracy": str(mean), **(tags or {})}
    with tempfile.TemporaryDirectory() as tmp:
        path = save_trained(result.model, cfg, result.values, accuracy,
                            Path(tmp) / "classifier.pt")
        version = register_classifier(path, version_tags)
    return version, set_classifier_champion(mlflow.MlflowClient(), registered_name("multihead"))
