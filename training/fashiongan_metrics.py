"""The two-stage FashionGAN's measures (the study could only show pictures):

- body coherence: parse the generated images with the human parser (training/human_parser.py)
  and compare the parse with the stage-1 map the image was drawn from (`coherence_miou`, the
  mean IoU over the 7 classes), and its non-clothing regions (face, hair, arms, legs) with the
  original person's map (`body_miou`): a model that keeps the body gives the person back;
- description following, the description-swap matrix of the study's Fig. 6 as numbers: person
  i drawn with product j's description; an attribute judge reads colour and sleeve length of
  each image, and the rate it finds j's value is compared on the diagonal (i = j) and off it;
  `kept` is the rate it finds person i's own value instead where i and j differ;
- the Fréchet distance in the attribute classifier's feature space, per stage (stage 1's maps
  drawn in the segmentation palette against the real maps so drawn; stage 2 from the real
  maps; the two stages chained; the single GAN), with training.metrics' distance.

A parser is any callable uint8 images (N, H, W, 3) -> label maps (N, h, w); `load_parse`
makes one from the human parser's weights file. The judge of the swap matrix is any callable
images (N, 3, S, S) in [-1, 1] -> {column: class index (N,)}: an attribute head trained on
the store's real person images (`train_person_judge`, whose held-out accuracy is the ceiling
of the rates), or the packshot attribute classifier (`classifier_judge`).
"""

import hashlib
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from pipelines.processing.segmentation import CLASS_NAMES, PALETTE
from training.datasets import read_label_index
from training.evaluation import to_rgb_size
from training.metrics import embed, frechet_distance
from training.models.classifier import AttributeClassifier

Parse = Callable[[np.ndarray], np.ndarray]
Judge = Callable[[torch.Tensor], dict[str, torch.Tensor]]
BODY_CLASSES = tuple(CLASS_NAMES.index(c) for c in ("face", "hair", "arm", "legs"))
SWAP_COLUMNS = ("color", "sleeve_length")


# ---- images and maps ------------------------------------------------------------------------
def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Images (N, 3, H, W) in [-1, 1] -> uint8 (N, H, W, 3), as a parser reads photos."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().byte()
    return x.permute(0, 2, 3, 1).numpy()


COARSE_AS_CLASS = (0, 2, 1, 6)  # m(S0)'s background, hair, face, rest in the 7-class palette


def render_maps(maps: torch.Tensor) -> torch.Tensor:
    """Label maps (N, H, W) -> the segmentation palette as images (N, 3, H, W) in [-1, 1]
    (m(S0) maps through COARSE_AS_CLASS first)."""
    palette = torch.from_numpy(PALETTE).float().div(127.5).sub(1)
    return palette[maps.long().cpu()].permute(0, 3, 1, 2).contiguous()


def fit_labels(maps: np.ndarray, size: int) -> np.ndarray:
    """Label maps (N, h, w) at size x size, nearest."""
    if maps.shape[-1] == size:
        return maps
    t = torch.from_numpy(np.ascontiguousarray(maps)).float()[:, None]
    return F.interpolate(t, size=(size, size), mode="nearest")[:, 0].byte().numpy()


# ---- body coherence -------------------------------------------------------------------------
def class_iou(pred: np.ndarray, truth: np.ndarray, classes: Sequence[int]) -> dict[int, float]:
    """IoU per class over all pixels of the batch (pooled), for the classes present in the
    prediction or the truth (a class absent from both has none)."""
    out = {}
    for c in classes:
        p, t = pred == c, truth == c
        union = int((p | t).sum())
        if union:
            out[c] = int((p & t).sum()) / union
    return out


def mean_iou(pred: np.ndarray, truth: np.ndarray, classes: Sequence[int] = range(7)) -> float:
    """Mean of class_iou; 1.0 when no class is present in either (nothing to get wrong)."""
    ious = class_iou(np.asarray(pred), np.asarray(truth), classes)
    return float(np.mean(list(ious.values()))) if ious else 1.0


def body_coherence(parse: Parse, generated: torch.Tensor, original: torch.Tensor,
                   stage1: torch.Tensor | None = None) -> dict[str, float]:
    """`body_miou`: mean IoU of the parse of the generated images (N, 3, S, S) against the
    original persons' maps (N, S, S) over face, hair, arms and legs; with stage-1 maps
    `coherence_miou`: mean IoU of the parse against them over the 7 classes. The parse is
    compared at the maps' size."""
    size = original.shape[-1]
    parsed = fit_labels(np.asarray(parse(to_uint8(generated))), size)
    out = {"body_miou": mean_iou(parsed, original.cpu().numpy(), BODY_CLASSES)}
    for c, iou in class_iou(parsed, original.cpu().numpy(), BODY_CLASSES).items():
        out[f"body_iou_{CLASS_NAMES[c]}"] = iou
    if stage1 is not None:
        out["coherence_miou"] = mean_iou(parsed, stage1.cpu().numpy())
    return out


def load_parse(path: Path | str) -> Parse:
    """The human parser's weights file as a Parse callable."""
    from training.human_parser import load_parser, parse

    model, _ = load_parser(path)
    return lambda images: parse(model, images)


# ---- the description-swap matrix ------------------------------------------------------------
def swap_rates(predicted: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]
               ) -> dict[str, float]:
    """Rates of a swap matrix. predicted[column] (K, K): the judge's class for person i
    drawn with description j; targets[column] (K,): product j's class (-1: unknown, left
    out). Per column: `swap_<column>_diag` (i = j), `swap_<column>_off` (i != j: j's value
    found), `swap_<column>_kept` (i != j and i, j differ: i's own value found instead);
    `swap_rate_diag` / `swap_rate_off` their means over the columns."""
    out: dict[str, float] = {}
    diag, off = [], []
    for column, pred in predicted.items():
        target = targets[column].long()
        k = len(target)
        eye = torch.eye(k, dtype=torch.bool)
        known = (target >= 0)[None, :].expand(k, k)
        hit = pred.long() == target[None, :]
        for name, cells in (("diag", eye & known), ("off", ~eye & known)):
            rate = float(hit[cells].float().mean()) if cells.any() else math.nan
            out[f"swap_{column}_{name}"] = rate
        differ = ~eye & known & (target >= 0)[:, None] & (target[:, None] != target[None, :])
        own = pred.long() == target[:, None]
        out[f"swap_{column}_kept"] = float(own[differ].float().mean()) if differ.any() \
            else math.nan
        diag.append(out[f"swap_{column}_diag"])
        off.append(out[f"swap_{column}_off"])
    finite = lambda xs: [x for x in xs if not math.isnan(x)]  # noqa: E731
    out["swap_rate_diag"] = float(np.mean(finite(diag))) if finite(diag) else math.nan
    out["swap_rate_off"] = float(np.mean(finite(off))) if finite(off) else math.nan
    return out


@torch.no_grad()
def swap_matrix(draw: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                persons: torch.Tensor, conditions: torch.Tensor, judge: Judge,
                targets: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """images (K, K, 3, S, S): row i person i (`persons` indexes whatever `draw` reads), column
    j drawn with conditions[j]; and swap_rates of the judge's reading against `targets`."""
    k = len(persons)
    rows = [draw(persons, conditions[j:j + 1].expand(k, *conditions.shape[1:]))
            for j in range(k)]  # column j: every person with description j
    images = torch.stack(rows, 1).float().clamp(-1, 1)  # (K persons, K descriptions, ...)
    read = judge(images.flatten(0, 1))
    predicted = {c: read[c].view(k, k) for c in targets if c in read}
    return images, swap_rates(predicted, {c: targets[c] for c in predicted})


def read_attributes(path: Path | str, ids: Sequence[str], columns: Sequence[str] = SWAP_COLUMNS
                    ) -> tuple[dict[str, torch.Tensor], dict[str, list[str]]]:
    """({column: class index per id (-1: unknown or absent)}, {column: values}) from an image
    store's one-hot `labels` (packshots.h5), joined by product id."""
    with h5py.File(path, "r") as f:
        if "labels" not in f or "ids" not in f:
            raise ValueError(f"{path}: no labels and ids to read the attributes "
                             f"{', '.join(columns)} from")
        store_ids = [s.decode() if isinstance(s, bytes) else str(s) for s in f["ids"][:]]
        onehot = f["labels"][:]
        names = [str(n) for n in f.attrs.get("label_names", [])]
    index, values = read_label_index(onehot, names, tuple(columns), len(store_ids), str(path))
    row = {i: r for r, i in enumerate(store_ids)}
    out = {}
    for k, column in enumerate(columns):
        out[column] = torch.tensor([int(index[row[i], k]) if i in row else -1 for i in ids])
    return out, values


_JUDGES: dict[str, tuple[Judge, dict[str, float]]] = {}


def judge_key(*parts) -> str:
    h = hashlib.sha1()
    for part in parts:
        if isinstance(part, dict):
            for k in sorted(part):
                h.update(k.encode())
                h.update(part[k].numpy().tobytes())
        elif torch.is_tensor(part):
            h.update(part.numpy().tobytes())
        else:
            h.update(repr(part).encode())
    return h.hexdigest()


def train_person_judge(images: torch.Tensor, targets: dict[str, torch.Tensor],
                       test_images: torch.Tensor, test_targets: dict[str, torch.Tensor],
                       steps: int = 400, batch_size: int = 32, lr: float = 2e-3,
                       width: int = 16, seed: int = 0) -> tuple[Judge, dict[str, float]]:
    """An attribute head per column on real person images (N, 3, S, S) in [-1, 1] (flips
    only: colour is a target), trained seeded; (its judge, held-out accuracy per column as
    `judge_accuracy_<column>`: the ceiling of the swap rates). It depends on nothing but its
    arguments, so it is kept per process: the runs of a benchmark share one per seed."""
    key = judge_key(images, targets, test_images, test_targets, steps, batch_size, lr, width,
                    seed)
    if key not in _JUDGES:
        _JUDGES[key] = fit_person_judge(images, targets, test_images, test_targets, steps,
                                        batch_size, lr, width, seed)
    return _JUDGES[key]


def fit_person_judge(images: torch.Tensor, targets: dict[str, torch.Tensor],
                     test_images: torch.Tensor, test_targets: dict[str, torch.Tensor],
                     steps: int, batch_size: int, lr: float, width: int, seed: int
                     ) -> tuple[Judge, dict[str, float]]:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    sizes = {c: int(max(int(t.max()) + 1, 2)) for c, t in targets.items()}
    for c, t in test_targets.items():
        sizes[c] = max(sizes.get(c, 2), int(t.max()) + 1)
    net = AttributeClassifier(sizes, width=width, feature_dim=64)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    x_all = to_rgb_size(images.float(), 64)
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x_all), (min(batch_size, len(x_all)),), generator=g)
        x = x_all[idx]
        flip = torch.rand(len(x), generator=g) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        out = net(x)
        loss = sum(F.cross_entropy(out[c], targets[c][idx], ignore_index=-1)
                   for c in targets if (targets[c][idx] >= 0).any())
        if not torch.is_tensor(loss):
            continue
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    net.eval()

    @torch.no_grad()
    def judge(x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = [net(to_rgb_size(x[i:i + 256].float(), 64)) for i in range(0, len(x), 256)]
        return {c: torch.cat([o[c] for o in out]).argmax(1) for c in sizes}

    read = judge(test_images)
    accuracy = {}
    for c, t in test_targets.items():
        known = t >= 0
        accuracy[f"judge_accuracy_{c}"] = (float((read[c][known] == t[known]).float().mean())
                                           if known.any() else math.nan)
    return judge, accuracy


def classifier_judge(classifier: AttributeClassifier, values: dict[str, list[str]],
                     own_values: dict[str, list[str]]) -> Judge:
    """The packshot attribute classifier as a judge, its classes mapped by name to
    `own_values` (the attribute store's), -1 where it has no such class."""

    @torch.no_grad()
    def judge(x: torch.Tensor) -> dict[str, torch.Tensor]:
        classifier.eval()
        feats = torch.from_numpy(embed(classifier.features, to_rgb_size(x.float(), 64))).float()
        out = {}
        for c, head in classifier.heads.items():
            if c not in own_values:
                continue
            lut = torch.tensor([own_values[c].index(v) if v in own_values[c] else -1
                                for v in values[c]])
            out[c] = lut[head(feats).argmax(1)]
        return out

    return judge


# ---- Fréchet distance per stage -------------------------------------------------------------
def classifier_fd(classifier: AttributeClassifier, fake: torch.Tensor, real: torch.Tensor
                  ) -> float:
    """training.metrics.frechet_distance of two image sets in the classifier's feature space
    (images brought to 64 px RGB, as the sampler metrics do); NaN with fewer than two images
    on a side (no covariance)."""
    if len(fake) < 2 or len(real) < 2:
        return math.nan
    classifier.eval()
    return frechet_distance(embed(classifier.features, to_rgb_size(real.float(), 64)),
                            embed(classifier.features, to_rgb_size(fake.float(), 64)))


# ---- pictures -------------------------------------------------------------------------------
def labelled_grid(rows: Sequence[Sequence[torch.Tensor]], path: Path | str,
                  row_titles: Sequence[str] = (), col_titles: Sequence[str] = (),
                  pad: int = 2, title_w: int = 0, title_h: int = 0) -> Path:
    """A PNG of images (3, S, S) in [-1, 1] in rows, with optional titles on the left and
    above; an empty cell (None) stays white."""
    from PIL import Image, ImageDraw

    cells = [[c for c in row] for row in rows]
    s = next(c for row in cells for c in row if c is not None).shape[-1]
    title_w = title_w or (60 if row_titles else 0)
    title_h = title_h or (14 if col_titles else 0)
    n_cols = max(len(r) for r in cells)
    sheet = Image.new("RGB", (title_w + n_cols * (s + pad), title_h + len(cells) * (s + pad)),
                      "white")
    draw = ImageDraw.Draw(sheet)
    for j, t in enumerate(col_titles):
        draw.text((title_w + j * (s + pad) + 2, 1), str(t)[: max(1, s // 6)], fill="black")
    for i, row in enumerate(cells):
        y = title_h + i * (s + pad)
        if i < len(row_titles):
            draw.text((2, y + s // 2 - 6), str(row_titles[i])[:10], fill="black")
        for j, img in enumerate(row):
            if img is None:
                continue
            pixels = to_uint8(img[None])[0]
            sheet.paste(Image.fromarray(pixels), (title_w + j * (s + pad), y))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def swap_grid(images: torch.Tensor, persons: torch.Tensor, products: torch.Tensor,
              path: Path | str) -> Path:
    """The swap matrix as a picture: the top row the products' own photos (the description
    given), the left column the persons, cell (i, j) person i with description j."""
    k = len(persons)
    rows = [[None, *products]] + [[persons[i], *images[i]] for i in range(k)]
    return labelled_grid(rows, path, col_titles=["person", *[f"d{j}" for j in range(k)]])
