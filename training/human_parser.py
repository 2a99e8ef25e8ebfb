"""The human parser: a small U-Net (training/models/parser.py) trained on the segmentation
store's demo masks, measured on held-out products (per-pixel accuracy, IoU per class, mIoU),
saved and loaded with weights_only, and run on real shop front photos so they get label maps
in the segmentation store's layout (pipelines/processing/segmentation.py `write_store`).

Two uses: the `human_parser` asset turns a crawl of a real shop (front photos + the person
detector's boxes) into `segmentation.h5`, which until now only the demo's drawn masks could
fill; and the two-stage FashionGAN's body-coherence measure parses generated images (`parse`).

    python -m training.human_parser --data datasets/segmentation.h5 --out models/human_parser.pt

prints one JSON line: held-out pixel accuracy, mIoU, IoU per class, wall time.
"""

import argparse
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from pipelines.processing.segmentation import CLASS_NAMES, N_CLASSES, SIZE, write_store
from training.checkpoint import load_plain, plain, save_plain
from training.models.parser import UNetParser

PARSED_SOURCE = "human_parser"  # the store attribute `source` of label maps this module wrote
MARGIN = 0.04  # around the person, as pipelines.processing.segmentation.crop_person crops


@contextmanager
def torch_threads(n: int | None):
    """Run the block on n CPU threads (None: as set). On a busy 2-core machine 20 parser steps
    took 3 s on 1 thread and 40-70 s on 2 (the threads wait on each other), and the description
    encoder's 100 steps 3.7 s against 39 s."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class SegmentationStoreError(ValueError):
    """A segmentation store the parser cannot learn from (or read skin from)."""


@dataclass
class SegmentationData:
    ids: list[str]
    images: np.ndarray  # uint8 (N, 128, 128, 3)
    labels: np.ndarray  # uint8 (N, 128, 128), 0..6
    source: str = ""  # the file's `source` attribute: "human_parser" for parsed label maps


def _strings(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def read_segmentation(path: Path | str) -> SegmentationData:
    """The whole store in memory, checked: labels 0-6 and a real image for every label map.
    Errors name the file, how many samples are bad and the first offending product id."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"segmentation store {path} does not exist: materialise "
                                "segmentation_store (the demo's masks) first")
    with h5py.File(path, "r") as f:
        if "labels" not in f or "ids" not in f:
            raise SegmentationStoreError(f"{path} is not a segmentation store: it needs "
                                         f"labels and ids, it holds {sorted(f)}")
        ids = _strings(f["ids"][:])
        n = len(ids)
        if n == 0:
            raise SegmentationStoreError(f"segmentation store {path} holds no samples")
        if "images" not in f:
            raise SegmentationStoreError(
                f"segmentation store {path} has no images: its {n} label maps (the first is "
                f"product {ids[0]!r}) have no photo to learn from or to take skin from; "
                "rebuild it with segmentation_store (the demo's masks, or an ICCV17 import "
                "with its `ih` images)")
        labels, images = f["labels"][:], f["images"][:]
        source = f.attrs.get("source", "")
    if labels.shape != (n, SIZE, SIZE) or images.shape != (n, SIZE, SIZE, 3):
        raise SegmentationStoreError(
            f"segmentation store {path}: expected labels ({n}, {SIZE}, {SIZE}) and images "
            f"({n}, {SIZE}, {SIZE}, 3) for its {n} ids, found {labels.shape} and "
            f"{images.shape}")
    top = labels.reshape(n, -1).max(1)
    bad = np.flatnonzero(top >= N_CLASSES)
    if len(bad):
        raise SegmentationStoreError(
            f"{len(bad)} of {n} label maps in {path} hold labels outside 0-{N_CLASSES - 1} "
            f"(up to {int(top.max())}); the first is product {ids[bad[0]]!r}. The classes are "
            f"{', '.join(f'{i} {c}' for i, c in enumerate(CLASS_NAMES))}.")
    flat = images.reshape(n, -1)
    blank = np.flatnonzero(flat.min(1) == flat.max(1))
    if len(blank):
        raise SegmentationStoreError(
            f"{len(blank)} of {n} images in {path} are blank (one flat value: no photo); "
            f"the first is product {ids[blank[0]]!r}")
    return SegmentationData(ids, images.astype(np.uint8), labels.astype(np.uint8),
                            source.decode() if isinstance(source, bytes) else str(source))


def held_out(product_id: str, seed: int = 0, share: float = 0.2) -> bool:
    """Whether a product is kept out of training: a hash of seed and id, so the split does
    not move when the store grows (as the person detector splits)."""
    h = int(hashlib.sha1(f"parser:{seed}:{product_id}".encode()).hexdigest()[:8], 16)
    return h / 0xFFFFFFFF < share


def split_ids(ids: Sequence[str], seed: int = 0, share: float = 0.2
              ) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, held-out rows); at least one of each when there are two samples."""
    test = np.array([held_out(i, seed, share) for i in ids], bool)
    if len(ids) >= 2 and test.all():
        test[0] = False
    if len(ids) >= 2 and not test.any():
        test[-1] = True
    return np.flatnonzero(~test), np.flatnonzero(test)


def to_input(images: np.ndarray | torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, size, size) in [-1, 1] (resized when H, W differ)."""
    x = images if isinstance(images, torch.Tensor) else torch.from_numpy(
        np.array(images, np.uint8))  # a copy: PIL's arrays are read-only
    x = x.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                          align_corners=False)
    return x


def augment(x: torch.Tensor, y: torch.Tensor, g: torch.Generator
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random horizontal flips (the classes have no left and right) and per-image colour
    gains of +-15 % per channel, so the parser does not learn the demo's exact colours."""
    flip = torch.rand(len(x), generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    y = torch.where(flip[:, None, None], y.flip(-1), y)
    gain = 1 + 0.15 * (2 * torch.rand(len(x), 3, 1, 1, generator=g) - 1)
    return ((x + 1) * gain - 1).clamp(-1, 1), y


def confusion(pred: np.ndarray, truth: np.ndarray, classes: int = N_CLASSES) -> np.ndarray:
    """(classes, classes) pixel counts, rows the truth."""
    idx = truth.astype(np.int64).ravel() * classes + pred.astype(np.int64).ravel()
    return np.bincount(idx, minlength=classes * classes).reshape(classes, classes)


def scores(cm: np.ndarray) -> dict:
    """Pixel accuracy, IoU per class and their mean over the classes present in truth or
    prediction (a class absent from both has no IoU)."""
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - tp
    iou = {name: (round(float(tp[c] / union[c]), 4) if union[c] else None)
           for c, name in enumerate(CLASS_NAMES)}
    present = [v for v in iou.values() if v is not None]
    return {"pixel_accuracy": round(float(tp.sum() / max(cm.sum(), 1)), 4),
            "miou": round(float(np.mean(present)), 4) if present else 0.0,
            "iou": iou, "pixels": int(cm.sum())}


@torch.no_grad()
def parse(model: UNetParser, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Label maps uint8 (N, 128, 128) of person crops uint8 (N, H, W, 3) (resized to 128)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = np.zeros((len(images), SIZE, SIZE), np.uint8)
    for start in range(0, len(images), batch_size):
        x = to_input(images[start:start + batch_size]).to(device)
        out[start:start + len(x)] = model(x).argmax(1).to(torch.uint8).cpu().numpy()
    model.train(was_training)
    return out


def evaluate(model: UNetParser, images: np.ndarray, labels: np.ndarray,
             batch_size: int = 32) -> dict:
    """Held-out scores of the parse of `images` against `labels` (+ sample count)."""
    if not len(images):
        return {**scores(np.zeros((N_CLASSES, N_CLASSES), np.int64)), "samples": 0}
    return {**scores(confusion(parse(model, images, batch_size), labels)),
            "samples": len(images)}


@dataclass
class ParserResult:
    model: UNetParser
    scores: dict  # held-out pixel_accuracy, miou, iou per class, pixels, samples
    train_ids: list[str]
    test_ids: list[str]
    wall_s: float
    history: list[dict] = field(default_factory=list)


def class_weights(labels: np.ndarray, clip: tuple[float, float] = (0.1, 10.0)) -> np.ndarray:
    """Median-frequency balancing: weight median(share) / share per class, clipped. Plain
    cross-entropy let background and clothes win: face, hair, arms and legs (1-1.5 % of the
    pixels each) had IoU 0 after 200 demo steps; weighted, 0.74-0.88 after 400."""
    share = np.bincount(labels.ravel(), minlength=N_CLASSES) / max(labels.size, 1)
    present = share > 0
    weights = np.ones(N_CLASSES, np.float32)
    weights[present] = np.clip(np.median(share[present]) / share[present], *clip)
    return weights


def train_parser(data: SegmentationData, steps: int = 400, batch_size: int = 16,
                 lr: float = 3e-3, width: int = 8, seed: int = 0, holdout: float = 0.2,
                 log: Callable[[str], None] | None = None, threads: int | None = 1,
                 device: str = "cpu") -> ParserResult:
    """Train on the products not held out (Adam, cosine-annealed lr, class-balanced
    cross-entropy, flips and colour jitter), then score the held-out ones. Refuses label maps
    the parser wrote itself. `threads`: CPU threads (torch_threads); `device`: where to
    train (the returned model is on the CPU)."""
    if data.source == PARSED_SOURCE:
        raise SegmentationStoreError(
            "this segmentation store holds label maps the human parser wrote (source "
            f"{PARSED_SOURCE!r}, first product {data.ids[0]!r}): training on them would learn "
            "the parser's own mistakes; train on the demo's masks or pass weights")
    if len(data.ids) < 2:
        raise SegmentationStoreError(f"the human parser needs at least 2 samples to train and "
                                     f"hold out, the store has {len(data.ids)}")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    train_rows, test_rows = split_ids(data.ids, seed, holdout)
    images = torch.from_numpy(data.images[train_rows])
    labels = torch.from_numpy(data.labels[train_rows]).long()
    weights = torch.from_numpy(class_weights(data.labels[train_rows])).to(device)
    model = UNetParser(width).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr * 0.02)
    history = []
    model.train()
    t0 = time.perf_counter()
    with torch_threads(threads):
        for step in range(steps):
            idx = torch.randint(0, len(train_rows), (min(batch_size, len(train_rows)),),
                                generator=g)
            x, y = augment(to_input(images[idx]), labels[idx], g)
            loss = F.cross_entropy(model(x.to(device)), y.to(device), weight=weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            history.append({"step": step, "loss": round(float(loss.detach()), 5)})
            if log and (step % 50 == 0 or step == steps - 1):
                log(f"human parser step {step}/{steps} loss {loss.item():.3f}")
        wall_s = time.perf_counter() - t0
        model = model.cpu().eval()
        result = evaluate(model, data.images[test_rows], data.labels[test_rows])
    return ParserResult(model, result, [data.ids[i] for i in train_rows],
                        [data.ids[i] for i in test_rows], wall_s, history)


def save_parser(model: UNetParser, path: Path, scores: dict | None = None,
                meta: dict | None = None) -> Path:
    """Weights, the net's config, the class names and the held-out scores, as plain values
    (load_parser reads them with weights_only=True)."""
    return save_plain({"state_dict": model.state_dict(), "config": plain(model.config, "config"),
                       "classes": list(CLASS_NAMES), "scores": plain(scores or {}, "scores"),
                       "meta": plain(meta or {}, "meta")}, path)


def load_parser(path: Path | str) -> tuple[UNetParser, dict]:
    """(the parser in eval mode, the file's scores and meta); a file from elsewhere is read
    without unpickling objects and refused with the reason when it is not a parser."""
    saved = load_plain(path, "human parser weights file")
    if not isinstance(saved, dict) or not {"state_dict", "config"} <= saved.keys():
        raise ValueError(f"human parser weights file {path} was not written by save_parser "
                         "(needs state_dict and config)")
    if list(saved.get("classes", CLASS_NAMES)) != list(CLASS_NAMES):
        raise ValueError(f"human parser weights file {path} parses into "
                         f"{saved['classes']}, not the store's {list(CLASS_NAMES)}")
    try:
        model = UNetParser(**saved["config"])
        model.load_state_dict(saved["state_dict"])
    except (TypeError, RuntimeError) as e:
        raise ValueError(f"human parser weights file {path} does not hold a parser of its "
                         f"stated config: {type(e).__name__}: {e}") from e
    return model.eval(), {"scores": saved.get("scores", {}), "meta": saved.get("meta", {})}


# ---- real photos: the person detector's box -> a crop like the store's -> a label map ------

def person_window(box: Sequence[float], margin: float = MARGIN) -> tuple[int, int, int]:
    """(left, top, side) of the square around a person box [x0, y0, x1, y1] plus a margin,
    as crop_person squares the labelled person."""
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(1, int(round(max(x1 - x0, y1 - y0) * (1 + 2 * margin))))
    cx, cy = int((x0 + x1) // 2), int((y0 + y1) // 2)
    return cx - side // 2, cy - side // 2, side


def crop_window(array: np.ndarray, window: tuple[int, int, int], size: int = SIZE,
                fill=0, resample=Image.Resampling.NEAREST) -> np.ndarray:
    """The square window of an image (H, W, 3) or label map (H, W), padded with `fill` where
    it leaves the array, resized to size x size."""
    left, top, side = window
    h, w = array.shape[:2]
    canvas = np.empty((side, side, *array.shape[2:]), array.dtype)
    canvas[:] = fill
    sy0, sx0, sy1, sx1 = max(0, top), max(0, left), min(h, top + side), min(w, left + side)
    if sy1 > sy0 and sx1 > sx0:
        canvas[sy0 - top:sy1 - top, sx0 - left:sx1 - left] = array[sy0:sy1, sx0:sx1]
    return np.asarray(Image.fromarray(canvas).resize((size, size), resample))


def crop_photo(photo: np.ndarray, box: Sequence[float], margin: float = MARGIN
               ) -> tuple[np.ndarray, tuple[int, int, int]]:
    """(the person crop uint8 (128, 128, 3), its window) from an RGB photo and a person box,
    padded with the photo's border colour."""
    window = person_window(box, margin)
    border = np.concatenate([photo[0], photo[-1], photo[:, 0], photo[:, -1]])
    fill = np.median(border, axis=0).astype(np.uint8)
    return crop_window(photo, window, SIZE, fill, Image.Resampling.BILINEAR), window


@dataclass
class ParsedPhotos:
    ids: list[str] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    windows: list[tuple[int, int, int]] = field(default_factory=list)
    drops: dict[str, int] = field(default_factory=lambda: {"no_box": 0, "unreadable": 0})

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        images = np.stack(self.images) if self.images else np.zeros((0, SIZE, SIZE, 3),
                                                                     np.uint8)
        labels = np.stack(self.labels) if self.labels else np.zeros((0, SIZE, SIZE), np.uint8)
        return images, labels


def front_photo_boxes(fronts, crops_path: Path) -> dict[str, np.ndarray]:
    """Product id -> the person detector's box in its front photo (person_crops.h5)."""
    with h5py.File(crops_path, "r") as f:
        ids, boxes = _strings(f["ids"][:]), f["boxes"][:]
    wanted = {str(i) for i in fronts["id"]}
    return {i: b for i, b in zip(ids, boxes, strict=True) if i in wanted}


def parse_photos(model: UNetParser, photos: Sequence[tuple[str, Path, Sequence[float] | None]],
                 margin: float = MARGIN, chunk: int = 64) -> ParsedPhotos:
    """Crop each (id, photo path, person box) like the store's crops and parse it; photos
    without a box or that do not decode are counted in `drops` and left out."""
    out = ParsedPhotos()
    for start in range(0, len(photos), chunk):
        crops = []
        for pid, path, box in photos[start:start + chunk]:
            if box is None:
                out.drops["no_box"] += 1
                continue
            try:
                with Image.open(path) as im:
                    photo = np.asarray(im.convert("RGB"))
            except OSError:
                out.drops["unreadable"] += 1
                continue
            crop, window = crop_photo(photo, box, margin)
            out.ids.append(str(pid))
            out.windows.append(window)
            crops.append(crop)
        if crops:
            out.images += crops
            out.labels += list(parse(model, np.stack(crops)))
    return out


def score_against_masks(parsed: ParsedPhotos, masks: dict[str, Path],
                        only: set[str] | None = None) -> dict:
    """Scores of parsed photos against their truth label maps (the demo shop's masks, full
    photo size), cropped with the same windows: how well the real-photo path (detector box,
    crop, parse) works end to end. `only`: the products to score (the held-out ones)."""
    cm = np.zeros((N_CLASSES, N_CLASSES), np.int64)
    n = 0
    for pid, window, labels in zip(parsed.ids, parsed.windows, parsed.labels, strict=True):
        if (only is not None and pid not in only) or pid not in masks:
            continue
        with Image.open(masks[pid]) as im:
            truth = crop_window(np.asarray(im), window, SIZE, 0, Image.Resampling.NEAREST)
        cm += confusion(labels, truth)
        n += 1
    return {**scores(cm), "samples": n}


def write_parsed(path: Path, parsed: ParsedPhotos, parser_file: str = "") -> Path:
    """The parsed label maps in the segmentation store's layout (atomic, same writer), marked
    `source: human_parser` so nothing trains the parser on its own output by accident."""
    images, labels = parsed.arrays()
    return write_store(path, parsed.ids, images, labels,
                       attrs={"source": PARSED_SOURCE, "parser": str(parser_file)})


def comparison_grid(images: np.ndarray, truth: np.ndarray, parsed: np.ndarray, n: int = 8):
    """Rows of photo | truth | parse (label maps in the store's palette), n rows at most."""
    from pipelines.processing.images import array_grid
    from pipelines.processing.segmentation import label_colors

    cells = []
    for image, t, p in list(zip(images, truth, parsed, strict=True))[:n]:
        cells += [image, label_colors(t), label_colors(p)]
    return array_grid(cells, cols=3)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m training.human_parser",
                                 description="Train the human parser on a segmentation store "
                                             "(or load --weights) and score its held-out "
                                             "products; prints one JSON line.")
    ap.add_argument("--data", required=True, help="segmentation.h5 (the demo's masks)")
    ap.add_argument("--out", help="write the weights here")
    ap.add_argument("--weights", help="score this weights file instead of training")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--holdout", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (0: torch's default)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    try:
        data = read_segmentation(args.data)
        if args.weights:
            model, _ = load_parser(args.weights)
            _, test_rows = split_ids(data.ids, args.seed, args.holdout)
            t0 = time.perf_counter()
            result = evaluate(model, data.images[test_rows], data.labels[test_rows])
            summary = {**result, "wall_s": round(time.perf_counter() - t0, 2)}
        else:
            trained = train_parser(data, args.steps, args.batch_size, args.lr, args.width,
                                   args.seed, args.holdout, threads=args.threads or None,
                                   device=args.device)
            summary = {**trained.scores, "train_samples": len(trained.train_ids),
                       "steps": args.steps, "wall_s": round(trained.wall_s, 2)}
            if args.out:
                save_parser(trained.model, args.out, trained.scores,
                            {"steps": args.steps, "width": args.width, "seed": args.seed})
    except (ValueError, FileNotFoundError) as e:
        ap.exit(2, f"{ap.prog}: error: {e}\n")
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
