"""Measures of image-to-image translators, each for what a translator is for:

- fidelity to a paired target: `l1` (mean |x − y| in [-1, 1] units, the pix2pix loss term's
  scale: training.metrics.mean_abs_error), `psnr` and `ssim` (on images mapped to [0, 1]);
- realism: the Fréchet distance in the attribute classifier's feature space
  (`frechet_in_classifier_space`, training.metrics' distance on training.evaluation's inputs,
  so a translator's figure reads like a sampler's);
- edits: `edit_success` (the classifier sees the requested value) and `preservation` (the other
  attributes keep the value the classifier saw before the edit);
- multimodality: `diversity` (mean pairwise distance of several outputs for one input, in the
  classifier's feature space).

`evaluate_translator` computes every measure a translator's evaluation set allows; the training
asset records them and the translator leaderboard (training/translator_board.py) ranks versions
by each family's main measure. `translation_grid` draws the report's input | output | target
sheet.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from training.datasets import PairedDataset
from training.evaluation import BATCH, to_rgb_size
from training.metrics import embed, frechet_distance, mean_abs_error

PSNR_CAP = 100.0  # dB: identical images (MSE 0) score this instead of infinity
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5  # Wang et al. (2004)
SSIM_K1, SSIM_K2 = 0.01, 0.03


def unit(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped."""
    return ((images.float() + 1) / 2).clamp(0, 1)


def l1(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute error of images in [-1, 1] (half of it on a [0, 1] scale)."""
    return mean_abs_error(a, b)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over images of 10·log10(1 / MSE) on [0, 1] images, each capped at PSNR_CAP dB (an
    identical pair would be infinite)."""
    mse = (unit(a) - unit(b)).pow(2).flatten(1).mean(1)
    per_image = 10 * torch.log10(1 / mse.clamp_min(10 ** (-PSNR_CAP / 10)))
    return float(per_image.mean())


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return torch.outer(g, g).float()


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = SSIM_WINDOW,
         sigma: float = SSIM_SIGMA) -> float:
    """Mean structural similarity (Wang et al., 2004) of images in [-1, 1], computed on [0, 1]
    (data range 1, K1 0.01, K2 0.03) with an 11x11 gaussian window (σ 1.5) per channel over the
    valid region (a smaller window on images under 11 px): 1 for identical images."""
    x, y = unit(a).double(), unit(b).double()  # float32 variances are off by ~1e-7, which
    c = x.shape[1]                                # C2 (9e-4) turns into 4e-4 of SSIM
    size = min(window, x.shape[-1], x.shape[-2])
    w = gaussian_window(size, sigma).double().to(x.device).expand(c, 1, size, size)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1)
                                                     * (var_x + var_y + c2))
    return float(s.mean())


def classifier_features(classifier, images: torch.Tensor) -> np.ndarray:
    """Features (N, D) of images (any size, 1 or 3 channels, [-1, 1]) in the classifier's space,
    brought to 64 px RGB first as the sampler metrics do."""
    classifier.eval()
    return embed(classifier.features, to_rgb_size(images.float(), 64))


def frechet_in_classifier_space(fake: torch.Tensor, real: torch.Tensor, classifier) -> float:
    """The Fréchet distance between translated and real target-domain images in the attribute
    classifier's feature space (training.metrics.frechet_distance)."""
    return frechet_distance(classifier_features(classifier, real),
                            classifier_features(classifier, fake))


@torch.no_grad()
def predict(classifier, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """{column: predicted class index (N,)}: one feature pass, then every head."""
    feats = torch.from_numpy(classifier_features(classifier, images)).float()
    return {c: head(feats).argmax(1) for c, head in classifier.heads.items()}


def target_indices(column: str, value: str | Sequence[str], n: int,
                   values: dict[str, list[str]]) -> torch.Tensor:
    """Requested value name(s) -> class indices in the classifier's values[column] (-1 where it
    has no such class: counted as a miss)."""
    known = values.get(column, [])
    names = [value] * n if isinstance(value, str) else list(value)
    return torch.tensor([known.index(v) if v in known else -1 for v in names])


def edit_success(classifier, images: torch.Tensor, column: str,
                 target_index: int | torch.Tensor) -> float:
    """Share of images in which the classifier recognises the requested class of `column`
    (a class index for all, or one per image; -1 never matches)."""
    pred = predict(classifier, images)[column]
    target = torch.as_tensor(target_index).expand(len(pred))
    return float(((pred == target) & (target >= 0)).float().mean())


def preservation(classifier, before: torch.Tensor, after: torch.Tensor,
                 columns: Sequence[str] | None = None) -> dict[str, float]:
    """Per column (default: every head), the share of images whose predicted value is the
    same before and after the translation, and their mean under `preservation`."""
    p0, p1 = predict(classifier, before), predict(classifier, after)
    columns = list(columns) if columns is not None else list(p0)
    kept = {f"preservation_{c}": float((p0[c] == p1[c]).float().mean()) for c in columns}
    if kept:
        kept["preservation"] = sum(kept.values()) / len(kept)
    return kept


def diversity(features: np.ndarray | torch.Tensor) -> float:
    """Mean pairwise L2 distance between K outputs for one input, features (K, D); for
    (M, K, D) (M inputs) the mean over inputs. 0 for a translator that ignores its style."""
    f = torch.as_tensor(np.asarray(features), dtype=torch.float64)
    if f.ndim == 2:
        f = f[None]
    k = f.shape[1]
    if k < 2:
        raise ValueError(f"diversity needs at least 2 outputs per input, got {k}")
    d = torch.cdist(f, f)  # (M, K, K)
    return float(d.sum((1, 2)).mean() / (k * (k - 1)))


@dataclass
class Edit:
    """One requested edit of a conditional translator: the second input it gets for every
    input image (N, cond_dim), and the value the classifier should then see in `column` (one
    name for all, or one per image). The other columns are measured for preservation. A
    translator with no second input gives condition None (a colouriser: the true colour)."""

    name: str  # e.g. "color_red": part of MLflow metric names, which refuse "="
    condition: torch.Tensor | None
    column: str
    value: str | Sequence[str]


@torch.no_grad()
def translate(net: torch.nn.Module, inputs: torch.Tensor,
              condition: torch.Tensor | None = None) -> torch.Tensor:
    """net(inputs[, condition]) in batches, float, clamped to [-1, 1]; a network loaded from
    the registry (torch.export) refuses .eval() and is already an inference graph."""
    try:
        net.eval()
    except NotImplementedError:
        pass
    out = []
    for i in range(0, len(inputs), BATCH):
        args = (inputs[i:i + BATCH],) if condition is None else \
            (inputs[i:i + BATCH], condition[i:i + BATCH])
        out.append(net(*args).float())
    return torch.cat(out).clamp(-1, 1)


@torch.no_grad()
def evaluate_translator(net: torch.nn.Module, inputs: torch.Tensor, classifier=None,
                        values: dict[str, list[str]] | None = None, *,
                        targets: torch.Tensor | None = None,
                        reference: torch.Tensor | None = None,
                        condition: torch.Tensor | None = None,
                        identity: torch.Tensor | None = None,
                        edits: Sequence[Edit] = (),
                        style: Callable[[int, torch.Generator], torch.Tensor] | None = None,
                        styles_per_input: int = 4, seed: int = 0) -> dict[str, float]:
    """Every measure the evaluation set allows, rounded:

    - targets (aligned with inputs): l1, psnr, ssim of net(inputs[, condition]) against them;
    - reference (real target-domain images) and a classifier: frechet_distance;
    - identity (a conditional translator's labels of the inputs themselves): identity_l1,
      L1 between each input and its translation to its own labels;
    - edits and a classifier: edit_success_<name>, preservation_<name> (the other columns),
      and their means edit_success, preservation;
    - style (a multimodal translator's second input: style(n, generator) -> (n, style_dim))
      and a classifier: diversity over styles_per_input outputs per input (and the FD above
      uses one style draw per input).
    n_test: the number of inputs."""
    gen = torch.Generator().manual_seed(seed)
    if style is not None and condition is None:
        condition = style(len(inputs), gen)
    out = translate(net, inputs, condition)
    m: dict[str, float] = {"n_test": float(len(inputs))}
    if targets is not None:
        m |= {"l1": l1(out, targets), "psnr": psnr(out, targets), "ssim": ssim(out, targets)}
    if reference is not None and classifier is not None:
        m["frechet_distance"] = frechet_in_classifier_space(out, reference, classifier)
    if identity is not None:
        m["identity_l1"] = l1(translate(net, inputs, identity), inputs)
    if edits and classifier is not None:
        success, kept = [], []
        for edit in edits:
            edited = translate(net, inputs, edit.condition)
            target = target_indices(edit.column, edit.value, len(inputs), values or {})
            m[f"edit_success_{edit.name}"] = edit_success(classifier, edited, edit.column,
                                                          target)
            others = [c for c in classifier.heads if c != edit.column]
            m[f"preservation_{edit.name}"] = preservation(classifier, inputs, edited,
                                                          others).get("preservation", 1.0)
            success.append(m[f"edit_success_{edit.name}"])
            kept.append(m[f"preservation_{edit.name}"])
        m["edit_success"], m["preservation"] = float(np.mean(success)), float(np.mean(kept))
    if style is not None and classifier is not None:
        feats = np.stack([classifier_features(classifier,
                                              translate(net, inputs, style(len(inputs), gen)))
                          for _ in range(styles_per_input)], 1)  # (N, K, D)
        m["diversity"] = diversity(feats)
    return {k: round(float(v), 5) if math.isfinite(v) else float(v) for k, v in m.items()}


def translation_set(data, n: int = 1000) -> dict[str, torch.Tensor]:
    """The default evaluation set of a translator's data (training.datasets PairedDataset or
    UnpairedDataset): `inputs`, the first n source images of the test split; `targets`, their
    aligned targets when the data is paired; `reference`, every target-domain image (the
    realism statistics; the demo's test split alone is 16 pairs)."""
    index = data.test_index()[:n]
    out = {"inputs": data.images_of(index),
           "reference": data.targets_of(torch.arange(len(data.targets)))}
    if isinstance(data, PairedDataset):
        out["targets"] = data.targets_of(index)
    return out


def translation_grid(columns: Sequence[tuple[str, torch.Tensor]], path: Path | str,
                     per_row: int = 4, pad: int = 2, gap: int = 8) -> Path:
    """One PNG of products side by side, each a group of images (one per column: ("input",
    x), ("output", y), ("target", t); or one per requested edit), `per_row` groups a row,
    the column titles above each group: the report's input | output | target sheet."""
    from PIL import Image, ImageDraw

    titles = [t for t, _ in columns]
    tensors = [unit(images.detach().cpu()) for _, images in columns]
    h = w = tensors[0].shape[-1]
    tensors = [to_rgb_size(t, w) for t in tensors]  # grey outputs beside RGB inputs
    n, k = len(tensors[0]), len(tensors)
    rows = math.ceil(n / per_row)
    group_w = k * (w + pad) - pad
    title_h = 14
    sheet = Image.new("RGB", (per_row * (group_w + gap) - gap, title_h + rows * (h + pad)),
                      "white")
    draw = ImageDraw.Draw(sheet)
    for g in range(min(per_row, n)):
        x0 = g * (group_w + gap)
        for j, title in enumerate(titles):
            draw.text((x0 + j * (w + pad) + 2, 1), title[: max(1, w // 6)], fill="black")
    for i in range(n):
        x0, y0 = (i % per_row) * (group_w + gap), title_h + (i // per_row) * (h + pad)
        for j, t in enumerate(tensors):
            pixels = t[i].mul(255).round().byte().permute(1, 2, 0).numpy()
            sheet.paste(Image.fromarray(pixels), (x0 + j * (w + pad), y0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
