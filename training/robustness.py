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
gradient per step and ε. Scoring runs under torch.inference_mode, in batches.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

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


def head_loss(logits: dict[str, torch.Tensor], targets: Targets) -> torch.Tensor:
    """Sum over the heads of the mean cross-entropy of their known targets."""
    terms = [F.cross_entropy(logits[c].float(), t, ignore_index=MISSING)
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
    x = images.detach().requires_grad_(True)
    with torch.enable_grad(), autocast(x.device, bf16):
        loss = head_loss(model(x), targets)
    (grad,) = torch.autograd.grad(loss, x)
    return grad


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
def correct_counts(model: nn.Module, images: torch.Tensor, targets: Targets,
                   bf16: bool = False) -> dict[str, tuple[int, int]]:
    """{head: (correct, known)} on a batch."""
    with autocast(images.device, bf16):
        logits = model(images)
    out = {}
    for c, t in targets.items():
        known = t != MISSING
        out[c] = (int((logits[c].argmax(1)[known] == t[known]).sum()), int(known.sum()))
    return out


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
          pgd_steps: int = 10, batch_size: int = 250, bf16: bool = False,
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
        clean = correct_counts(model, x, t, bf16)
        direction = None
        if {"fgsm", "fgsm_garment"} & set(attacks) and any(e > 0 for e in eps_list):
            direction = input_gradient(model, x, t, bf16).sign()
        mask = None
        if "fgsm_garment" in attacks or ("pgd" in attacks and masks is not None):
            mask = (masks[start:start + batch_size].to(device) if masks is not None
                    else garment_mask(x, background))
        for attack in attacks:
            for eps in eps_list:
                if eps == 0:
                    add(attack, eps, clean)
                    continue
                if attack == "fgsm":
                    adv = step(x, direction, eps)
                elif attack == "fgsm_garment":
                    adv = step(x, direction, eps, mask)
                else:  # pgd: everywhere, like the plain FGSM it is compared with
                    adv = pgd(model, x, t, eps, pgd_steps, generator=generator, bf16=bf16)
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


def curves_png(table: pd.DataFrame, path: Path | str, title: str = "") -> Path:
    """Accuracy against ε, one panel per attack: a line per model (the mean over heads) when
    the table has a `model` column, else a line per head (the mean bold)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attacks = list(dict.fromkeys(table["attack"]))
    fig, axes = plt.subplots(1, len(attacks), figsize=(4.2 * len(attacks), 3.6),
                             sharey=True, squeeze=False)
    for ax, attack in zip(axes[0], attacks, strict=True):
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
    axes[0][0].set_ylabel("accuracy")
    axes[0][0].set_ylim(0, 1)
    axes[0][-1].legend(fontsize=7, loc="upper right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
