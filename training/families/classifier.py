"""Image classifiers on the frame: the fashion-MNIST study's dense and convolutional networks
and the project's attribute classifier (training/models/classifier.py), one head per label
column (the catalogue's eight by default, `class` for Fashion-MNIST), optionally trained
adversarially.

Training draws from the images with at least one known label; a seeded `holdout` fraction of
them is never trained on and scores the held-out accuracy per head in the summary (or, with
`test_data`, another store or a Fashion-MNIST folder's t10k test files). Each step minimises
the sum over the heads of the cross-entropy of the known labels; with `adversarial` set (fgsm
or pgd, at `adv_eps` on the [0, 1] pixel scale, training.robustness) the loss is the mean of
the clean and the attacked batch's (Goodfellow et al.'s mixture). The attacks run with the
network in training mode, like Madry et al.'s. The grids show held-out images over their FGSM
versions at adv_eps (or 0.05). The exported classifier (`classifier.pt`, plain weights and the
architecture) loads with `load_trained` in any of the three architectures, each offering the
`features` / `heads` the shared metrics read.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from training.checkpoint import load_plain, plain, save_plain
from training.config import GANConfig
from training.datasets import ImageDataset, holdout_split, open_dataset, to_unit_range
from training.families.cgan import as_columns
from training.family import Family, option, register
from training.models.classifier import ARCHS, MultiHeadClassifier, build_classifier
from training.robustness import correct_counts, fgsm, head_loss, pgd, sweep

CATALOGUE_COLUMNS = ["category", "color", "length", "sleeve_length", "fit", "pattern",
                     "neckline", "occasion"]
ADVERSARIAL = ("", "fgsm", "pgd")
EXPORT = "classifier.pt"


@dataclass
class ClassifierConfig(GANConfig):
    arch: str = option("conv", "dense (the study's flatten -> 128 -> heads), conv (its 5x5x64, "
                       "5x5x128, dense -> heads) or multihead (the attribute classifier)",
                       choices=ARCHS)
    label_columns: list[str] = option(
        CATALOGUE_COLUMNS, "label columns, one head each (category, color, length, "
        "sleeve_length, fit, pattern, neckline, occasion; class for Fashion-MNIST)")
    hidden: int = option(128, "dense and conv: units of the dense layer (the study's 128)",
                         ge=1)
    width: int = option(32, "multihead: channels of the first conv block", ge=1)
    depth: int = option(4, "multihead: conv blocks (each halves the image)", ge=1, le=6)
    feature_dim: int = option(256, "multihead: dimensions of the features", ge=1)
    lr: float = option(1e-3, "Adam learning rate", gt=0)
    beta1: float = option(0.9, "Adam beta1", ge=0, lt=1)
    flip: bool = option(True, "random left-right flips of the training images")
    holdout: float = option(0.2, "seeded fraction of the labelled images held out for the "
                            "accuracy (unless test_data is given)", gt=0, lt=1)
    test_data: str = option("", "held-out data instead of the holdout: a Fashion-MNIST folder "
                            "(its t10k test files) or an HDF5 store")
    adversarial: str = option("", "adversarial training: fgsm or pgd examples of each batch "
                              "mixed into the loss (half its weight); empty: none",
                              choices=ADVERSARIAL)
    adv_eps: float = option(0.05, "ε of the adversarial training (fraction of the pixel range)",
                            ge=0, le=1)
    pgd_steps: int = option(7, "PGD steps (adversarial training and the report's sweep)", ge=1)
    sweep_images: int = option(0, "held-out images of the report's FGSM/PGD sweep (0: none; "
                               "the classifier_robustness asset sweeps)", ge=0)

    PROFILES = {"demo": {}, "full": {"steps": 6000, "batch_size": 64, "log_every": 50,
                                     "sample_every": 1000, "checkpoint_every": 1000}}

    def __post_init__(self) -> None:
        # one form from the CLI (a list), code (a tuple) or text, so resume compares equal
        self.label_columns = as_columns(self.label_columns)


def open_test(cfg: ClassifierConfig, data: ImageDataset) -> ImageDataset:
    """test_data at the training data's size and channels, with the same label columns."""
    return open_dataset(cfg.test_data, split="test", label_columns=tuple(cfg.label_columns),
                        image_size=data.image_size, channels=data.channels)


def known_index(data: ImageDataset) -> torch.Tensor:
    """The images with a value in at least one label column."""
    return torch.nonzero((data.label_index >= 0).any(1)).flatten()


@register
class Classifier(Family):
    """Image classifiers, one head per label column: the fashion-MNIST study's dense and conv
    networks or the attribute classifier (multihead); held-out accuracy per head;
    FGSM/PGD adversarial training as an option."""

    name = "classifier"
    kind = "classifier"
    Config = ClassifierConfig
    losses = ("loss", "train_accuracy", "adv_loss")
    variants = {"dense": {"arch": "dense"}, "conv": {"arch": "conv"}}
    in_demo = False

    @classmethod
    def check(cls, cfg: ClassifierConfig, data: ImageDataset) -> None:
        if not cfg.label_columns:
            raise ValueError("label_columns: name at least one label column (one head each)")
        if cfg.arch == "conv" and data.image_size < 4:
            raise ValueError(f"arch conv pools twice: it needs images of at least 4 px, the "
                             f"data is {data.image_size} px")
        if cfg.arch == "multihead" and data.image_size < 2 ** cfg.depth:
            raise ValueError(f"arch multihead of depth {cfg.depth} needs images of at least "
                             f"{2 ** cfg.depth} px, the data is {data.image_size} px")
        if len(known_index(data)) < 2:
            raise ValueError(f"the data has {len(known_index(data))} images with a label in "
                             f"{', '.join(cfg.label_columns)}; a classifier needs at least 2")
        if cfg.test_data and len(known_index(open_test(cfg, data))) == 0:
            raise ValueError(f"test_data {cfg.test_data} has no image with a label in "
                             f"{', '.join(cfg.label_columns)}")

    @classmethod
    def data_options(cls, cfg: ClassifierConfig) -> dict:
        return {"flip": cfg.flip, "label_columns": tuple(cfg.label_columns)}

    def build(self) -> None:
        cfg, data = self.cfg, self.data
        self.columns = list(data.label_columns)
        self.net = self.to_device(build_classifier(
            cfg.arch, {c: len(data.label_values[c]) for c in self.columns}, data.channels,
            data.image_size, cfg.hidden, cfg.width, cfg.depth, cfg.feature_dim))
        self.modules = {"classifier": self.net}
        self.optimizers = {"opt": self.adam(self.net)}
        known = known_index(data)
        if cfg.test_data:
            self.test, self.train_ids = open_test(cfg, data), known
            self.heldout_ids = known_index(self.test)
        else:  # the same split on every run and resume of this seed
            train, held = holdout_split(len(known), cfg.holdout,
                                        torch.Generator().manual_seed(cfg.seed))
            self.test, self.train_ids, self.heldout_ids = data, known[train], known[held]
        self.grid_ids = self.heldout_ids[:16]

    def train_index(self) -> torch.Tensor:
        return self.train_ids

    def targets(self, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {c: labels[:, i] for i, c in enumerate(self.columns)}

    def attack(self, images: torch.Tensor, targets: dict, gen: torch.Generator,
               eps: float, kind: str) -> torch.Tensor:
        if kind == "pgd":
            return pgd(self.net, images, targets, eps, self.cfg.pgd_steps, generator=gen,
                       bf16=self.cfg.bf16)
        return fgsm(self.net, images, targets, eps, bf16=self.cfg.bf16)

    def step(self, real, labels, gen, measure):
        cfg, net = self.cfg, self.net
        targets = self.targets(labels)
        adv = (self.attack(real, targets, gen, cfg.adv_eps, cfg.adversarial)
               if cfg.adversarial else None)
        with self.autocast:
            out = net(real)
            loss = head_loss(out, targets)
            adv_loss = head_loss(net(adv), targets) if adv is not None else None
            total = loss if adv_loss is None else (loss + adv_loss) / 2
        self.update("opt", total)
        if not measure:
            return {}
        right = [(out[c].argmax(1) == t)[t >= 0].float().mean() for c, t in targets.items()
                 if (t >= 0).any()]
        row = {"loss": loss.item(), "train_accuracy": float(torch.stack(right).mean())}
        if adv_loss is not None:
            row["adv_loss"] = adv_loss.item()
        return row

    def heldout(self, n: int | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(images in [-1, 1], targets) of the held-out images (the first n)."""
        ids = self.heldout_ids[:n]
        labels = self.test.label_index[ids]
        return to_unit_range(self.test.images[ids]), self.targets(labels)

    def grids(self):
        images, targets = self.heldout(16)
        images = images.to(self.device)
        targets = {c: t.to(self.device) for c, t in targets.items()}
        attacked = fgsm(self.net, images, targets, self.cfg.adv_eps or 0.05)
        return {"samples": torch.cat([images, attacked])}

    def heldout_accuracy(self, batch_size: int = 500) -> dict[str, float]:
        """Accuracy per head on the held-out images (their known labels)."""
        self.net.eval()
        totals = {c: [0, 0] for c in self.columns}
        for start in range(0, len(self.heldout_ids), batch_size):
            ids = self.heldout_ids[start:start + batch_size]
            x = to_unit_range(self.test.images[ids]).to(self.device)
            t = {c: v.to(self.device) for c, v in
                 self.targets(self.test.label_index[ids]).items()}
            for c, (right, known) in correct_counts(self.net, x, t).items():
                totals[c][0] += right
                totals[c][1] += known
        return {c: round(r / k, 4) for c, (r, k) in totals.items() if k}

    def finish(self, out_dir: Path) -> dict:
        accuracy = self.heldout_accuracy()
        save_trained(self.net, self.cfg, {c: self.data.label_values[c] for c in self.columns},
                     accuracy, Path(out_dir) / EXPORT)
        return {"arch": self.cfg.arch, "adversarial": self.cfg.adversarial,
                "heldout_accuracy": accuracy,
                "mean_heldout_accuracy": round(sum(accuracy.values()) / len(accuracy), 4)
                if accuracy else 0.0,
                "heldout_images": len(self.heldout_ids),
                "heldout_from": self.cfg.test_data or f"a {self.cfg.holdout} holdout of --data",
                "classifier": str(Path(out_dir) / EXPORT)}

    def sampler(self):
        raise NotImplementedError("a classifier exports no sampler: use classifier() or "
                                  f"load_trained(<run folder>/{EXPORT})")

    def classifier(self) -> MultiHeadClassifier:
        """The network users load from the registry: images -> {column: logits}, with
        features() and heads for the metrics."""
        return self.net

    def report(self, out_dir, summary):
        accuracy = summary.get("heldout_accuracy") or self.heldout_accuracy()
        metrics = {f"heldout_accuracy_{c}": v for c, v in accuracy.items()}
        metrics["mean_heldout_accuracy"] = round(sum(accuracy.values()) / len(accuracy), 4)
        if not self.cfg.sweep_images:
            return metrics, {}
        from training.robustness import curves_png

        images, targets = self.heldout(self.cfg.sweep_images)
        table = sweep(self.net.float().cpu(), (images, targets), self.columns,
                      n=self.cfg.sweep_images, seed=self.cfg.seed,
                      pgd_steps=self.cfg.pgd_steps)
        table.to_csv(Path(out_dir) / "robustness.csv", index=False)
        mean = table[table["head"] == "mean"]
        metrics.update({f"{r.attack}_eps_{r.eps:g}_accuracy": r.accuracy
                        for r in mean.itertuples()})
        png = curves_png(table, Path(out_dir) / "robustness.png",
                         f"{self.cfg.arch} classifier")
        return metrics, {"robustness": [png]}

    def registry_tags(self) -> dict[str, str]:
        cfg = self.cfg
        return {"kind": self.kind, "arch": cfg.arch, "label_columns": ",".join(self.columns),
                "label_sizes": ",".join(str(len(self.data.label_values[c]))
                                        for c in self.columns),
                "label_values": json.dumps({c: self.data.label_values[c]
                                            for c in self.columns}),
                "image_size": str(self.data.image_size), "channels": str(self.data.channels),
                "feature_dim": str(self.net.feature_dim), "adversarial": cfg.adversarial,
                "adv_eps": str(cfg.adv_eps) if cfg.adversarial else "",
                # what it held out, so classifier_robustness sweeps the same images
                "seed": str(cfg.seed), "holdout": str(cfg.holdout), "heldout_of": "labelled",
                "test_data": cfg.test_data}


def save_trained(net: MultiHeadClassifier, cfg: ClassifierConfig,
                 values: dict[str, list[str]], accuracy: dict[str, float], path: Path) -> Path:
    """Weights and everything build_classifier needs, as plain values (weights_only loads)."""
    state = {k: v.detach().float().cpu() for k, v in net.state_dict().items()}
    return save_plain({"state_dict": state, "arch": cfg.arch, "values": plain(values, "values"),
                       "channels": int(net.channels), "image_size": int(net.image_size or 64),
                       "hidden": cfg.hidden, "width": cfg.width, "depth": cfg.depth,
                       "feature_dim": cfg.feature_dim, "adversarial": cfg.adversarial,
                       "accuracy": plain(accuracy, "accuracy")}, path)


def load_trained(path: Path | str) -> tuple[MultiHeadClassifier, dict[str, list[str]]]:
    """(classifier in eval mode, {column: value names}) of a file save_trained wrote; read
    without unpickling objects."""
    saved: Any = load_plain(path, "classifier file")
    need = {"state_dict", "arch", "values", "channels", "image_size"}
    if not isinstance(saved, dict) or not need <= saved.keys():
        raise ValueError(f"classifier file {path} was not written by save_trained (needs "
                         f"{', '.join(sorted(need))})")
    try:
        net = build_classifier(saved["arch"], {c: len(v) for c, v in saved["values"].items()},
                               saved["channels"], saved["image_size"], saved.get("hidden", 128),
                               saved.get("width", 32), saved.get("depth", 4),
                               saved.get("feature_dim", 256))
        net.load_state_dict(saved["state_dict"])
    except (KeyError, TypeError, RuntimeError) as e:
        raise ValueError(f"classifier file {path} does not hold the network it describes: "
                         f"{type(e).__name__}: {e}") from e
    return net.eval(), saved["values"]


# ----- the registry: fashion-classifier-<arch>, `champion` by mean held-out accuracy ------------
class ConcatenatedLogits(torch.nn.Module):
    """What the registered MLflow model serves: images -> the heads' logits side by side
    (N, sum of label_sizes), split by the version's label_columns / label_sizes tags (MLflow's
    pt2 export takes one output tensor, not the {column: logits} dict)."""

    def __init__(self, net: MultiHeadClassifier):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(list(self.net(x).values()), 1)


def registered_name(arch: str) -> str:
    return f"fashion-classifier-{arch}"


def register_classifier(weights: Path | str, tags: dict[str, str]) -> str:
    """In the active MLflow run: the plain weights file (save_trained's, what the metrics load,
    weights_only) as the artifact `classifier_weights/classifier.pt`, and the network as an
    MLflow model (pt2, ConcatenatedLogits) registered as fashion-classifier-<arch>, the version
    tagged with `tags` (registry_tags, plus e.g. mean_heldout_accuracy). Returns the version."""
    import mlflow
    import numpy as np

    net, _ = load_trained(weights)
    size, channels = net.image_size or 64, net.channels
    mlflow.log_artifact(str(weights), "classifier_weights")
    name = registered_name(tags["arch"])
    example = np.zeros((2, channels, size, size), np.float32)
    info = mlflow.pytorch.log_model(
        ConcatenatedLogits(net).eval(), name="classifier", input_example=example,
        registered_model_name=name, pip_requirements=mlflow.pytorch.get_default_pip_requirements())
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    for k, v in tags.items():
        client.set_model_version_tag(name, version, k, str(v))
    return version


def set_classifier_champion(client: Any, name: str) -> str | None:
    """Alias `champion` on the version of `name` with the highest mean_heldout_accuracy tag."""
    scored = [(float(v.tags["mean_heldout_accuracy"]), int(v.version))
              for v in client.search_model_versions(f"name = '{name}'")
              if "mean_heldout_accuracy" in v.tags]
    if not scored:
        return None
    best = str(max(scored)[1])
    client.set_registered_model_alias(name, "champion", best)
    return best


def champion_classifier(client: Any, arch: str | None = None,
                        columns: tuple[str, ...] = ()) -> tuple[str, str]:
    """(registered name, version) of the best champion among fashion-classifier-<arch> (all
    archs when None) whose label_columns tag holds every one of `columns`, by
    mean_heldout_accuracy; a one-line error when none is registered."""
    names = ([registered_name(arch)] if arch else
             [m.name for m in client.search_registered_models(
                 "name LIKE 'fashion-classifier-%'")])
    best: tuple[float, str, str] | None = None
    for name in names:
        try:
            v = client.get_model_version_by_alias(name, "champion")
        except Exception:  # no such model or no champion yet
            continue
        if not set(columns) <= set(v.tags.get("label_columns", "").split(",")):
            continue
        score = float(v.tags.get("mean_heldout_accuracy", "nan"))
        if best is None or score > best[0]:
            best = (score, name, str(v.version))
    if best is None:
        heads = f" with heads {', '.join(columns)}" if columns else ""
        raise ValueError(f"no champion{heads} among "
                         f"{', '.join(names) or 'fashion-classifier-*'} (materialise "
                         "attribute_classifier, classifier_dense or classifier_conv first)")
    return best[1], best[2]


def classifier_weights(client: Any, name: str, version: str) -> Path:
    """The local copy of a registered version's plain weights file (save_trained's)."""
    import mlflow

    run_id = client.get_model_version(name, version).run_id
    return Path(mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=f"classifier_weights/{EXPORT}"))


def load_registered_classifier(client: Any, name: str, version: str
                               ) -> tuple[MultiHeadClassifier, dict[str, list[str]]]:
    """A registered classifier version as the metrics use it (features, heads), from its
    plain weights artifact (read with weights_only=True, never unpickled)."""
    return load_trained(classifier_weights(client, name, version))


@dataclass
class RegisteredVersion:
    name: str
    version: str
    champion: bool
    tags: dict[str, str]


def registered_classifiers(client: Any) -> list[RegisteredVersion]:
    """Every fashion-classifier-* model's champion and its latest version (one entry when
    they are the same; the latest alone where no champion is set): what classifier_robustness
    sweeps, so an adversarially trained version that did not win is still compared with the
    champion."""
    out = []
    for model in sorted(client.search_registered_models("name LIKE 'fashion-classifier-%'"),
                        key=lambda m: m.name):
        versions = sorted(client.search_model_versions(f"name = '{model.name}'"),
                          key=lambda v: int(v.version))
        if not versions:
            continue
        champion = (model.aliases or {}).get("champion")
        chosen = {str(versions[-1].version)} | ({str(champion)} if champion else set())
        for v in versions:
            if str(v.version) in chosen:
                out.append(RegisteredVersion(model.name, str(v.version),
                                             str(v.version) == str(champion), dict(v.tags)))
    return out
