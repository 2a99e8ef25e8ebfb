"""Adversarial robustness of the classifiers: FGSM, FGSM on the garment only, and PGD over an
ε sweep, accuracy per head (the fashion-MNIST study's experiment, plus the stronger attack it
did not try).

ε is a fraction of the pixel range, as in the study (images in [0, 1]): the networks here read
[-1, 1], so a step of ε is 2ε in their units, and every attacked image is clipped back to the
valid range. A multi-head classifier is attacked on the sum of its heads' cross-entropies (the
heads it is scored on; unknown labels, -1, are left out), and every head is scored on the same
perturbed images. FGSM's direction sign(∇x loss) does not depend on ε, so a sweep computes it
once per image and reuses it for every ε and for both FGSM variants; only PGD (Madry et al.:
random start in the ε-ball, `steps` signed steps of α = 2.5 ε / steps, projection) costs a
gradient per step and ε. The sweep's PGD (pgd_right) counts an image as broken on a head as
soon as any iterate misclassifies it (the logits of each gradient pass are read for free), and
drops an image from the batch once every known head is broken: at the larger ε most images
leave after a step or two. The sweep runs PGD's ε in ascending order and carries what broke:
an adversarial image inside a smaller ε-ball lies inside every larger one, so an image broken
at ε stays broken at every larger ε without being attacked again (PGD's accuracy cannot rise
with ε, and the larger ε cost less); the books start from the clean images, which lie in every
ball. The attack loss sums the heads' cross-entropies per image, so an
image's direction does not depend on the rest of its batch. Scoring runs under
torch.inference_mode, in batches.

sweep_registered runs the sweep for the registered classifiers (training.families.classifier:
every fashion-classifier-* champion and each model's latest version) on the images each one
held out (rebuilt from its version's seed / holdout / heldout_of / test_data tags), and, where
a segmentation store is given, on its person crops with the clothing classes as the garment.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from pipelines.processing.atomic import write_atomically
from training.runtime import device as runtime_device

EPS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3)
ATTACKS = ("fgsm", "fgsm_garment", "pgd")
MISSING = -1
Targets = dict[str, torch.Tensor]  # column -> (N,) class index, -1 = unknown


def check_eps(eps: float | Sequence[float]) -> list[float]:
    """ε values as floats, each in [0, 1] (a fraction of the pixel range), else a one-line
    ValueError."""
    values = [eps] if isinstance(eps, (int, float)) else list(eps)
    for e in values:
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not 0 <= e <= 1:
            raise ValueError(f"eps must be in [0, 1] (a fraction of the pixel range), got {e!r}")
    return [float(e) for e in values]


def check_columns(model: nn.Module, columns: Sequence[str] | None,
                  available: Sequence[str] | None = None) -> list[str]:
    """The heads to attack and score (all the model's by default); an unknown one is a
    one-line ValueError naming the heads there are."""
    heads = list(model.heads)  # type: ignore[union-attr]
    columns = list(columns) if columns else [c for c in heads
                                             if available is None or c in available]
    unknown = [c for c in columns if c not in heads or (available is not None
                                                       and c not in available)]
    if unknown:
        have = [c for c in heads if available is None or c in available]
        raise ValueError(f"no head {', '.join(map(repr, unknown))}; the classifier (with these "
                         f"labels) has: {', '.join(have) or 'none'}")
    if not columns:
        raise ValueError("no head to score: the classifier's heads and the data's labels share "
                         "no column")
    return columns


def head_loss(logits: dict[str, torch.Tensor], targets: Targets,
              reduction: str = "mean") -> torch.Tensor:
    """Sum over the heads of the cross-entropy of their known targets: each head's mean (the
    training loss), or with reduction "sum" every image's sum over its heads (the attacks'
    loss: an image's gradient is then independent of the rest of its batch)."""
    terms = [F.cross_entropy(logits[c].float(), t, ignore_index=MISSING, reduction=reduction)
             for c, t in targets.items() if (t != MISSING).any()]
    if not terms:
        return next(iter(logits.values())).sum() * 0.0
    return torch.stack(terms).sum()


def autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def input_gradient(model: nn.Module, images: torch.Tensor, targets: Targets,
                   bf16: bool = False) -> torch.Tensor:
    """∇x of the heads' loss at `images` (the weights' gradients are neither computed nor
    accumulated)."""
    return input_gradient_and_logits(model, images, targets, bf16)[0]


def input_gradient_and_logits(model: nn.Module, images: torch.Tensor, targets: Targets,
                              bf16: bool = False
                              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(∇x of the heads' summed loss, the detached logits of that same pass)."""
    x = images.detach().requires_grad_(True)
    with torch.enable_grad(), autocast(x.device, bf16):
        logits = model(x)
        loss = head_loss(logits, targets, "sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad, {c: v.detach() for c, v in logits.items()}


def as_mask(mask: torch.Tensor | None, images: torch.Tensor) -> torch.Tensor | float:
    return 1.0 if mask is None else mask.to(images.dtype)


def step(images: torch.Tensor, direction: torch.Tensor, eps: float,
         mask: torch.Tensor | float = 1.0) -> torch.Tensor:
    """images + ε·direction (ε on the [0, 1] scale), masked, clipped to [-1, 1]."""
    return (images + 2 * eps * direction * mask).clamp(-1, 1)


def fgsm(model: nn.Module, images: torch.Tensor, targets: Targets, eps: float,
         mask: torch.Tensor | None = None, bf16: bool = False) -> torch.Tensor:
    """Goodfellow et al.'s fast gradient sign attack: x + ε sign(∇x loss), only where `mask`
    (N, 1 or C, H, W) is 1."""
    (eps,) = check_eps(eps)
    if eps == 0:
        return images.clone()
    grad = input_gradient(model, images, targets, bf16)
    return step(images, grad.sign(), eps, as_mask(mask, images))


def pgd(model: nn.Module, images: torch.Tensor, targets: Targets, eps: float, steps: int = 10,
        alpha: float | None = None, mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None, bf16: bool = False,
        random_start: bool = True) -> torch.Tensor:
    """Projected gradient descent (Madry et al.): a random start in the ε-ball, then `steps`
    signed gradient steps of α (default 2.5 ε / steps), each projected back onto the ε-ball
    (and the mask, and [-1, 1])."""
    (eps,) = check_eps(eps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if eps == 0:
        return images.clone()
    alpha = 2.5 * eps / steps if alpha is None else alpha
    m = as_mask(mask, images)
    bound = 2 * eps
    if random_start:
        noise = torch.rand(images.shape, generator=generator).to(images.device)
        delta = (noise * 2 - 1) * bound * m
    else:
        delta = torch.zeros_like(images)
    delta = (images + delta).clamp(-1, 1) - images
    for _ in range(steps):
        grad = input_gradient(model, images + delta, targets, bf16)
        delta = (delta + 2 * alpha * grad.sign()).clamp(-bound, bound) * m
        delta = (images + delta).clamp(-1, 1) - images
    return (images + delta).detach()


def pgd_right(model: nn.Module, images: torch.Tensor, targets: Targets, eps: float,
              steps: int = 10, alpha: float | None = None, mask: torch.Tensor | None = None,
              generator: torch.Generator | None = None, bf16: bool = False,
              right: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """{head: (N,) bool}: the label is known and no PGD iterate (as pgd: random start, `steps`
    signed steps of α, projection; the start included, each gradient pass's logits checked,
    then the final iterate's) misclassifies the image. Images broken on every head leave the
    batch, so the cost falls with ε. `right` (this result at a smaller ε on the same images)
    carries over: an image broken inside a smaller ball is broken inside this one, so only
    images still right on some head are attacked, and the accuracy cannot rise with ε."""
    (eps,) = check_eps(eps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    known = {c: t != MISSING for c, t in targets.items()}
    right = {c: known[c].clone() if right is None else right[c] & known[c] for c in known}
    if eps == 0:
        clean = correct_per_image(model, images, targets, bf16)
        return {c: r & clean[c] for c, r in right.items()}
    alpha = 2.5 * eps / steps if alpha is None else alpha
    bound = 2 * eps
    m = as_mask(mask, images)
    # the whole batch's noise is drawn, so the generator moves the same with or without `right`
    noise = torch.rand(images.shape, generator=generator).to(images.device)
    alive = torch.nonzero(torch.stack(list(right.values())).any(0)).flatten()
    x0, t = images[alive], {c: v[alive] for c, v in targets.items()}
    m = m[alive] if isinstance(m, torch.Tensor) else m
    delta = (x0 + (noise[alive] * 2 - 1) * bound * m).clamp(-1, 1) - x0
    for k in range(steps + 1):
        if not len(alive):
            break
        if k < steps:
            grad, logits = input_gradient_and_logits(model, x0 + delta, t, bf16)
        else:
            with torch.inference_mode(), autocast(images.device, bf16):
                logits = {c: v.clone() for c, v in model(x0 + delta).items()}
        for c in right:
            right[c][alive] &= logits[c].argmax(1) == t[c]
        if k == steps:
            break
        keep = torch.stack([right[c][alive] for c in right]).any(0)
        if not keep.all():
            alive, x0, grad, delta = alive[keep], x0[keep], grad[keep], delta[keep]
            t = {c: v[keep] for c, v in t.items()}
            m = m[keep] if isinstance(m, torch.Tensor) else m
        delta = (delta + 2 * alpha * grad.sign()).clamp(-bound, bound) * m
        delta = (x0 + delta).clamp(-1, 1) - x0
    return right


def pgd_counts(model: nn.Module, images: torch.Tensor, targets: Targets, eps: float,
               steps: int = 10, alpha: float | None = None, mask: torch.Tensor | None = None,
               generator: torch.Generator | None = None, bf16: bool = False
               ) -> dict[str, tuple[int, int]]:
    """{head: (correct, known)} under PGD at one ε (pgd_right, counted)."""
    return counted(pgd_right(model, images, targets, eps, steps, alpha, mask, generator, bf16),
                   targets)


def garment_mask(images: torch.Tensor, background: str = "auto",
                 tol: float = 0.08) -> torch.Tensor:
    """(N, 1, H, W), 1 on the garment, 0 on the background: packshots stand on white
    (background: pixels within `tol` of white in every channel), Fashion-MNIST on black (within
    tol of black); `auto` picks per image by the mean of its border."""
    if background not in ("auto", "white", "black"):
        raise ValueError(f"background must be auto, white or black, got {background!r}")
    x = (images.detach().float() + 1) / 2
    white = x.amin(1, keepdim=True) >= 1 - tol
    black = x.amax(1, keepdim=True) <= tol
    if background == "white":
        is_white = torch.ones(len(x), 1, 1, 1, dtype=torch.bool, device=x.device)
    elif background == "black":
        is_white = torch.zeros(len(x), 1, 1, 1, dtype=torch.bool, device=x.device)
    else:
        border = torch.cat([x[..., 0, :], x[..., -1, :], x[..., :, 0], x[..., :, -1]], -1)
        is_white = (border.mean((1, 2)) > 0.5).view(-1, 1, 1, 1)
    return (~torch.where(is_white, white, black)).float()



def clothing_mask(labels: torch.Tensor | Any, size: int,
                  clothing: Sequence[int] = (4, 5)) -> torch.Tensor:
    """(N, 1, size, size) garment masks of person crops from the segmentation store's label
    maps (N, H, W): 1 where the class is clothing (upper_clothes 4, lower_clothes 5 of its
    CLASS_NAMES), resized by nearest neighbour to the crops' size."""
    labels = torch.as_tensor(labels)
    mask = torch.isin(labels.long(), torch.tensor(list(clothing))).float()[:, None]
    return F.interpolate(mask, size=(size, size), mode="nearest")


@torch.inference_mode()
def correct_per_image(model: nn.Module, images: torch.Tensor, targets: Targets,
                      bf16: bool = False) -> dict[str, torch.Tensor]:
    """{head: (N,) bool}: the label is known and predicted."""
    with autocast(images.device, bf16):
        logits = model(images)
    return {c: (t != MISSING) & (logits[c].argmax(1) == t) for c, t in targets.items()}


def counted(right: dict[str, torch.Tensor], targets: Targets) -> dict[str, tuple[int, int]]:
    """{head: (correct, known)} from per-image booleans."""
    return {c: (int(r.sum()), int((targets[c] != MISSING).sum())) for c, r in right.items()}


def correct_counts(model: nn.Module, images: torch.Tensor, targets: Targets,
                   bf16: bool = False) -> dict[str, tuple[int, int]]:
    """{head: (correct, known)} on a batch."""
    return counted(correct_per_image(model, images, targets, bf16), targets)


def sample_data(data: Any, columns: list[str], n: int, seed: int,
                index: torch.Tensor | None = None) -> tuple[torch.Tensor, Targets]:
    """(images, targets) of n images (seeded) with a known value in at least one column,
    from an ImageDataset opened with label columns, or given as (images, targets)."""
    if isinstance(data, tuple):
        images, targets = data
        targets = {c: targets[c] for c in columns}
        if index is not None:
            images, targets = images[index], {c: t[index] for c, t in targets.items()}
        return images[:n], {c: t[:n] for c, t in targets.items()}
    from training.datasets import to_unit_range

    where = [data.label_columns.index(c) for c in columns]
    labels = data.label_index[:, where]
    if index is None:
        index = torch.nonzero((labels >= 0).any(1)).flatten()
        order = torch.randperm(len(index), generator=torch.Generator().manual_seed(seed))
        index = index[order]
    index = index[:n]
    images = to_unit_range(data.images[index])
    return images, {c: labels[index, i] for i, c in enumerate(columns)}


def sweep(model: nn.Module, data: Any, columns: Sequence[str] | None = None,
          eps_list: Sequence[float] = EPS, attacks: Sequence[str] = ATTACKS, n: int = 1000,
          seed: int = 0, index: torch.Tensor | None = None, masks: torch.Tensor | None = None,
          pgd_steps: int = 5, batch_size: int = 250, bf16: bool = False,
          background: str = "auto") -> pd.DataFrame:
    """Accuracy per (attack, ε, head) on n images: rows attack, eps, head, accuracy, n (the
    images with that head's label known); head `mean` is the mean over the heads.

    data: an ImageDataset opened with label columns (n of its labelled images, seeded, or
    `index`), or (images in [-1, 1], {column: targets}). masks: the garment masks (N, 1, H, W)
    of those images (person crops: the segmentation store's clothing classes); by default
    garment_mask(background) (packshots: not the white background)."""
    eps_list = check_eps(eps_list)
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown:
        raise ValueError(f"attacks must be among {list(ATTACKS)}, got {unknown}")
    available = list(data[1]) if isinstance(data, tuple) else list(data.label_columns)
    columns = check_columns(model, columns, available)
    images, targets = sample_data(data, columns, n, seed, index)
    if masks is not None and len(masks) < len(images):
        raise ValueError(f"{len(masks)} garment masks for {len(images)} images")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    counts: dict[tuple[str, float, str], list[int]] = {}
    generator = torch.Generator().manual_seed(seed)

    def add(attack: str, eps: float, batch_counts: dict[str, tuple[int, int]]) -> None:
        for c, (right, known) in batch_counts.items():
            total = counts.setdefault((attack, eps, c), [0, 0])
            total[0] += right
            total[1] += known

    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device)
        t = {c: v[start:start + batch_size].to(device) for c, v in targets.items()}
        clean_right = correct_per_image(model, x, t, bf16)
        clean = counted(clean_right, t)
        direction = None
        if {"fgsm", "fgsm_garment"} & set(attacks) and any(e > 0 for e in eps_list):
            direction = input_gradient(model, x, t, bf16).sign()
        mask = None
        if "fgsm_garment" in attacks or ("pgd" in attacks and masks is not None):
            mask = (masks[start:start + batch_size].to(device) if masks is not None
                    else garment_mask(x, background))
        right = clean_right  # PGD's books, carried from each ε to the next larger one
        for attack in attacks:
            for eps in sorted(eps_list) if attack == "pgd" else eps_list:
                if eps == 0:
                    add(attack, eps, clean)
                    continue
                if attack == "fgsm":
                    adv = step(x, direction, eps)
                elif attack == "fgsm_garment":
                    adv = step(x, direction, eps, mask)
                else:  # pgd: everywhere, like the plain FGSM it is compared with
                    right = pgd_right(model, x, t, eps, pgd_steps, generator=generator,
                                      bf16=bf16, right=right)
                    add(attack, eps, counted(right, t))
                    continue
                add(attack, eps, correct_counts(model, adv, t, bf16))
    model.train(was_training)
    rows = [{"attack": a, "eps": e, "head": c, "accuracy": right / known if known else
             float("nan"), "n": known} for (a, e, c), (right, known) in counts.items()]
    table = pd.DataFrame(rows)
    mean = (table.groupby(["attack", "eps"], sort=False)
            .agg(accuracy=("accuracy", "mean"), n=("n", "max")).reset_index())
    mean["head"] = "mean"
    table = pd.concat([table, mean[table.columns]], ignore_index=True)
    table["accuracy"] = table["accuracy"].round(4)
    order = {a: i for i, a in enumerate(attacks)}
    return table.sort_values(["attack", "head", "eps"], key=lambda s: s.map(order)
                             if s.name == "attack" else s, kind="stable").reset_index(drop=True)


def wide(table: pd.DataFrame, head: str = "mean") -> pd.DataFrame:
    """One row per (model if present, attack), one column per ε: the table for a README."""
    keys = [k for k in ("model", "attack") if k in table]
    part = table[table["head"] == head]
    return part.pivot_table(index=keys, columns="eps", values="accuracy", sort=False)


def curves_png(table: pd.DataFrame, path: Path | str, title: str = "",
               cols: int | None = None, fmt: str | None = None) -> Path:
    """Accuracy against ε, one panel per attack (`cols` a row, default all in one row; 1 for
    the narrow asset page): a line per model (the mean over heads) when the table has a
    `model` column, else a line per head (the mean bold). `fmt` (default: `path`'s suffix)
    lets an atomic writer draw to its `.tmp` temporary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attacks = list(dict.fromkeys(table["attack"]))
    cols = min(cols or len(attacks), len(attacks))
    rows = -(-len(attacks) // cols)
    fig, grid = plt.subplots(rows, cols, figsize=(4.2 * cols + (1.6 if cols == 1 else 0),
                                                  3.6 * rows), sharey=True, squeeze=False)
    axes = [list(grid.flat)]
    for ax in axes[0][len(attacks):]:
        ax.set_visible(False)
    for ax, attack in zip(axes[0], attacks, strict=False):
        part = table[table["attack"] == attack]
        if "model" in part:
            part = part[part["head"] == "mean"]
            groups = part.groupby("model", sort=False)
        else:
            groups = part.groupby("head", sort=False)
        for name, g in groups:
            bold = name == "mean" or "model" in part
            ax.plot(g["eps"], g["accuracy"], marker="o", lw=2 if bold else 1,
                    alpha=1 if bold else 0.6, label=str(name))
        ax.set_title(attack)
        ax.set_xlabel("ε (fraction of the pixel range)")
        ax.grid(alpha=0.3)
    for ax in axes[0][::cols]:
        ax.set_ylabel("accuracy")
    axes[0][0].set_ylim(0, 1)
    axes[0][len(attacks) - 1].legend(fontsize=7, loc="upper right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, dpi=110, format=fmt)
    finally:
        plt.close(fig)
    return path


# ----- the registered classifiers' sweep (the classifier_robustness asset) ---------------------
@dataclass
class SweepImages:
    """The images one classifier is swept on, its targets in its own class order, and their
    garment masks (None: garment_mask's white/black background rule)."""

    data: str  # packshots (the version's data) or person_crops
    split: str  # which images: held out, test data, ...
    images: torch.Tensor
    targets: Targets
    masks: torch.Tensor | None = None


def map_targets(labels: torch.Tensor, store_values: Sequence[str],
                values: Sequence[str]) -> torch.Tensor:
    """A store's class indices of one label column in a classifier's value order (matched by
    name): MISSING where the label is unknown or the classifier has no such value."""
    lut = torch.tensor([values.index(v) if v in values else MISSING for v in store_values]
                       + [MISSING])
    return lut[torch.where(labels >= 0, labels, len(store_values))]


def store_label_columns(path: Path, columns: Sequence[str]) -> list[str]:
    """The columns among `columns` a store (or a Fashion-MNIST folder: `class`) has labels for."""
    path = Path(path)
    if path.is_dir():
        return [c for c in columns if c == "class"]
    import h5py

    with h5py.File(path, "r") as f:
        names = [n.decode() if isinstance(n, bytes) else str(n)
                 for n in f.attrs.get("label_names", [])] if "labels" in f else []
    return [c for c in columns if any(n.startswith(f"{c}_") for n in names)]


def heldout_images(tags: dict, path: Path, values: dict[str, list[str]], n: int
                   ) -> SweepImages:
    """The first n images a registered classifier did not train on, rebuilt from its version's
    tags: test_data (every labelled test image), heldout_of `labelled` (the classifier
    family's seeded holdout of the images with a label) or `all` (attribute_classifier's
    holdout of every image), with `seed` and `holdout`; a version without them is swept on
    every labelled image of its data, and says so in `split`."""
    from training.datasets import holdout_split, open_dataset, to_unit_range

    test = str(tags.get("test_data") or "")
    source = Path(test) if test else Path(path)
    columns = store_label_columns(source, list(values))
    if not columns:
        raise ValueError(f"{source} has no label column of the classifier's heads "
                         f"({', '.join(values)}): nothing to score it on")
    data = open_dataset(source, split="test" if test else "train", label_columns=columns)
    known = torch.nonzero((data.label_index >= 0).any(1)).flatten()
    rule = tags.get("heldout_of", "")
    if test:
        index, split = known, f"test data {source.name}"
    elif rule in ("labelled", "all") and "seed" in tags and "holdout" in tags:
        generator = torch.Generator().manual_seed(int(tags["seed"]))
        if rule == "labelled":
            index = known[holdout_split(len(known), float(tags["holdout"]), generator)[1]]
        else:
            held = holdout_split(len(data), float(tags["holdout"]), generator)[1]
            index = held[(data.label_index[held] >= 0).any(1)]
        split = f"held out ({tags['holdout']} of {'the labelled' if rule == 'labelled' else 'all'}"\
                f" images, seed {tags['seed']})"
    else:
        index, split = known, "every labelled image (the version records no holdout)"
    index = index[:n]
    targets = {c: map_targets(data.label_index[index, i], data.label_values[c], values[c])
               for i, c in enumerate(columns)}
    return SweepImages(str(tags.get("data") or Path(path).stem), split,
                       to_unit_range(data.images[index]), targets)


def person_crop_images(segmentation: Path, store: Path, values: dict[str, list[str]], n: int,
                       size: int, seed: int = 0) -> SweepImages | None:
    """n person crops of the segmentation store (seeded) whose product the classifier's data
    store labels (matched by id), at the classifier's size, with the clothing classes as the
    garment mask; None when the stores share no labelled product."""
    import h5py

    columns = store_label_columns(store, list(values))
    if not columns or Path(store).is_dir():
        return None
    from training.datasets import open_dataset

    data = open_dataset(store, label_columns=columns)
    with h5py.File(store, "r") as f:
        row = {(i.decode() if isinstance(i, bytes) else str(i)): k
               for k, i in enumerate(f["ids"][:])}
    with h5py.File(segmentation, "r") as f:
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in f["ids"][:]]
        rows = torch.tensor([row.get(i, -1) for i in ids], dtype=torch.long)
        labelled = torch.nonzero(rows >= 0).flatten()
        labelled = labelled[(data.label_index[rows[labelled]] >= 0).any(1)]
        order = labelled[torch.randperm(len(labelled),
                                        generator=torch.Generator().manual_seed(seed))][:n]
        if not len(order):
            return None
        take = sorted(order.tolist())  # h5py reads increasing indices
        images = torch.from_numpy(f["images"][take]).permute(0, 3, 1, 2).float()
        maps = torch.from_numpy(f["labels"][take])
    images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True,
                           align_corners=False).clamp(0, 255) / 127.5 - 1
    index = rows[take]
    targets = {c: map_targets(data.label_index[index, i], data.label_values[c], values[c])
               for i, c in enumerate(columns)}
    return SweepImages("person_crops", "person crops of the segmentation store (labels by "
                       "product id)", images, targets, clothing_mask(maps, size))


def prepared(net: nn.Module) -> nn.Module:
    """fp32, eval, on the GPU when there is one (else the CPU); channels_last for networks with
    batch norm (the multihead's 3x3 conv-BN blocks measured ~30% faster that way on the AVX2
    EPYC, the study's 5x5 conv net slower, so it stays contiguous)."""
    net = net.float().to(runtime_device()).eval()
    if any(isinstance(m, nn.BatchNorm2d) for m in net.modules()):
        net = net.to(memory_format=torch.channels_last)
    return net


@dataclass
class RobustnessResult:
    table: pd.DataFrame  # model, classifier, version, champion, data, split, attack, eps, head, ...
    timings: pd.DataFrame  # model, data, images, sweep_s


def sweep_registered(client: Any, data_path: Callable[[str], Path],
                     segmentation: Path | None = None, n: int = 1000,
                     eps_list: Sequence[float] = EPS, attacks: Sequence[str] = ATTACKS,
                     pgd_steps: int = 5, seed: int = 0, heads: Sequence[str] | None = None,
                     log: Callable[[str], None] | None = None) -> RobustnessResult:
    """The sweep for every registered classifier (registered_classifiers: each
    fashion-classifier-* champion and latest version) on the images it held out
    (heldout_images; data_path turns a version's `data` tag into its store), and on the
    segmentation store's person crops when one is given and exists. heads: the heads to
    score (default: each classifier's every head), an unknown one a one-line error."""
    from training.families.classifier import load_registered_classifier, registered_classifiers

    eps_list = check_eps(eps_list)
    versions = registered_classifiers(client)
    if not versions:
        raise ValueError("no fashion-classifier-* version in the registry: materialise "
                         "attribute_classifier, classifier_dense or classifier_conv first")
    tables, timings = [], []
    for v in versions:
        net, values = load_registered_classifier(client, v.name, v.version)
        net = prepared(net)
        label = f"{v.name.removeprefix('fashion-classifier-')} v{v.version}" + \
            (" (champion)" if v.champion else "")
        store = data_path(v.tags.get("data") or "packshots")
        sets = [heldout_images(v.tags, store, values, n)]
        if segmentation is not None and Path(segmentation).exists():
            crops = person_crop_images(Path(segmentation), store, values, n,
                                       net.image_size or 64, seed)
            if crops is not None:
                sets.append(crops)
        for s in sets:
            columns = check_columns(net, heads, list(s.targets))
            t0 = time.perf_counter()
            table = sweep(net, (s.images, s.targets), columns, eps_list, attacks,
                          n=len(s.images), seed=seed, masks=s.masks, pgd_steps=pgd_steps)
            wall = round(time.perf_counter() - t0, 2)
            model = label if s.data != "person_crops" else f"{label}, person crops"
            for k, value in (("model", model), ("classifier", v.name),
                             ("version", int(v.version)), ("champion", v.champion),
                             ("data", s.data), ("split", s.split)):
                table.insert(list(("model", "classifier", "version", "champion", "data",
                                   "split")).index(k), k, value)
            tables.append(table)
            timings.append({"model": model, "data": s.data, "images": len(s.images),
                            "sweep_s": wall})
            if log:
                log(f"{model}: {len(s.images)} {s.data} images ({s.split}) swept in {wall} s")
    return RobustnessResult(pd.concat(tables, ignore_index=True), pd.DataFrame(timings))


def robustness_markdown(table: pd.DataFrame, digits: int = 2) -> str:
    """The mean over heads per (model, attack), one column per ε: the asset's table."""
    shown = wide(table).reset_index()
    shown.columns = [f"ε {c:g}" if isinstance(c, float) else c for c in shown.columns]
    return shown.to_markdown(index=False, floatfmt=f".{digits}f")


def robustness_metrics(table: pd.DataFrame) -> dict[str, float]:
    """`<arch>/v<version>/<data>/<attack>_eps_<ε>`: the mean over heads, as MLflow metrics
    (names MLflow accepts: no spaces or parentheses)."""
    part = table[table["head"] == "mean"]
    return {f"{r.classifier.removeprefix('fashion-classifier-')}/v{r.version}/{r.data}/"
            f"{r.attack}_eps_{r.eps:g}": float(r.accuracy)
            for r in part.itertuples() if pd.notna(r.accuracy)}


def write_robustness(result: RobustnessResult, out_dir: Path | str) -> dict[str, Path]:
    """robustness.csv (every head), robustness.md (the mean per model and attack, and the
    sweep times) and robustness.png (the curves, one panel a row) in out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out_dir / "robustness.csv", "md": out_dir / "robustness.md",
             "png": out_dir / "robustness.png"}
    text = (robustness_markdown(result.table) + "\n\n"
            + result.timings.to_markdown(index=False) + "\n")
    # one set, renamed into place once all three are written: another run reading them sees
    # the old sweep or the new one, never half a file or a table beside another sweep's curves
    write_atomically({
        paths["csv"]: lambda p: result.table.to_csv(p, index=False),
        paths["md"]: lambda p: p.write_text(text, encoding="utf-8"),
        paths["png"]: lambda p: curves_png(result.table, p, "accuracy against ε (mean over heads)",
                                           cols=1, fmt="png")})
    return paths
