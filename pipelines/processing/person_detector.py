"""Person detection with torchvision's Faster R-CNN, and 64x64 person crops.

Weights come from one of three places, tried in this order by `load_detector`:
1. a weights file: one written by `save_detector` (its variant is recorded in it), or a plain
   torchvision state dict of the variant given as `variant`; either is read with
   weights_only=True, so a file from elsewhere cannot run code;
2. torchvision's COCO weights (`weights="coco"`), from the torch hub cache or downloaded;
3. nothing: then `DetectorWeightsError` names the options.

Offline (this project's CI, the demo) there are no COCO weights, so the `person_detector` asset
fine-tunes the `demo_small` variant on the demo shop's annotated person boxes: a real
torchvision `FasterRCNN` with a small convolutional backbone and anchors shaped for standing
people, trainable from scratch on a CPU in a few minutes. Every variant puts "person" at label 1,
as COCO does, so the inference code is the same for all.
"""

import hashlib
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision.models import detection
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.rpn import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign, box_iou

from training.checkpoint import save_plain
from training.runtime import device

PERSON = 1  # COCO's label for a person; the demo variant uses the same index

# variant -> (torchvision builder, its COCO weights enum) for the COCO-pretrainable variants
COCO_VARIANTS = {
    "mobilenet_v3_large_320_fpn": ("fasterrcnn_mobilenet_v3_large_320_fpn",
                                   "FasterRCNN_MobileNet_V3_Large_320_FPN_Weights"),
    "mobilenet_v3_large_fpn": ("fasterrcnn_mobilenet_v3_large_fpn",
                               "FasterRCNN_MobileNet_V3_Large_FPN_Weights"),
    "resnet50_fpn": ("fasterrcnn_resnet50_fpn", "FasterRCNN_ResNet50_FPN_Weights"),
    "resnet50_fpn_v2": ("fasterrcnn_resnet50_fpn_v2", "FasterRCNN_ResNet50_FPN_V2_Weights"),
}
VARIANTS = ("demo_small", *COCO_VARIANTS)


class DetectorWeightsError(RuntimeError):
    """No usable detector weights; the message says how to provide some."""


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True))


# The demo photos (320x480) are resized to 160x240 inside the model: 200 steps there train in
# half the time of 300 at 240x360, for a mean held-out IoU of 0.896 against 0.904 and the same
# recall (benchmarks/README.md, "Person detector"). Files
# saved before the size was recorded were trained at LEGACY_DEMO_SMALL_SIZE.
DEMO_SMALL_SIZE = {"min_size": 160, "max_size": 240}
LEGACY_DEMO_SMALL_SIZE = {"min_size": 240, "max_size": 360}


def build_demo_small(min_size: int = DEMO_SMALL_SIZE["min_size"],
                     max_size: int = DEMO_SMALL_SIZE["max_size"]) -> FasterRCNN:
    """Faster R-CNN with a 4-stage conv backbone (stride 16, 128 channels), one feature map,
    anchors 32-256 px with height/width 1-4 (standing people), a 256-wide box head."""
    backbone = nn.Sequential(_conv_block(3, 32), _conv_block(32, 64), _conv_block(64, 128),
                             _conv_block(128, 128))
    backbone.out_channels = 128
    return FasterRCNN(
        backbone, num_classes=None, min_size=min_size, max_size=max_size,
        rpn_anchor_generator=AnchorGenerator(sizes=((32, 64, 128, 256),),
                                             aspect_ratios=((1.0, 2.0, 3.0, 4.0),)),
        box_roi_pool=MultiScaleRoIAlign(["0"], output_size=7, sampling_ratio=2),
        box_head=TwoMLPHead(128 * 7 * 7, 256),
        box_predictor=FastRCNNPredictor(256, 2),
        rpn_pre_nms_top_n_train=300, rpn_post_nms_top_n_train=100,
        rpn_pre_nms_top_n_test=150, rpn_post_nms_top_n_test=50,
        rpn_batch_size_per_image=64, box_batch_size_per_image=64)


def build_detector(variant: str, **kwargs) -> FasterRCNN:
    """An untrained detector of the given variant."""
    if variant == "demo_small":
        return build_demo_small(**kwargs)
    if variant not in COCO_VARIANTS:
        raise ValueError(f"unknown detector variant {variant!r}: one of {', '.join(VARIANTS)}")
    builder = getattr(detection, COCO_VARIANTS[variant][0])
    return builder(weights=None, weights_backbone=None, num_classes=91, **kwargs)


def _plain(value, where: str):
    """`value` as types torch.load(weights_only=True) reads back (numpy scalars and Paths
    converted); anything else is refused at save time rather than at load time."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, np.generic):
        return _plain(value.item(), where)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    raise TypeError(f"detector {where} holds a {type(value).__name__}: only str, int, float, "
                    "bool, None, lists and dicts of those can be saved")


def save_detector(model: FasterRCNN, variant: str, path: Path, meta: dict | None = None,
                  build_kwargs: dict | None = None) -> Path:
    """Weights, variant and meta as tensors and plain values: `load_detector` reads files
    with weights_only=True, so a weights file from elsewhere cannot run code. A demo_small
    model's input size is recorded, so it loads at the size it was trained at."""
    if variant == "demo_small" and build_kwargs is None:
        build_kwargs = {"min_size": int(model.transform.min_size[0]),
                        "max_size": int(model.transform.max_size)}
    return save_plain({"variant": str(variant),
                       "build_kwargs": _plain(build_kwargs or {}, "build_kwargs"),
                       "state_dict": model.state_dict(), "meta": _plain(meta or {}, "meta")},
                      path)


def _read_weights(path: Path) -> dict:
    """The file's dict, read without unpickling objects (weights_only=True)."""
    if not path.is_file():
        raise DetectorWeightsError(f"detector weights file {path} does not exist")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = next((line.strip() for line in str(e).splitlines()
                      if "Unsupported global" in line), type(e).__name__)
        raise DetectorWeightsError(
            f"detector weights file {path} holds non-tensor objects and is refused: only "
            f"tensors and plain str/int/float/list/dict values are loaded, never pickled "
            f"objects, which could run code. ({found})") from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise DetectorWeightsError(f"cannot read detector weights file {path}: "
                                   f"{type(e).__name__}: {e}") from e
    if not isinstance(saved, dict):
        raise DetectorWeightsError(f"detector weights file {path} holds a "
                                   f"{type(saved).__name__}, not a dict: {WEIGHTS_FORMATS}")
    return saved


WEIGHTS_FORMATS = ("expected either a file written by save_detector (a dict with variant, "
                   "build_kwargs, state_dict and meta) or a plain torchvision Faster R-CNN "
                   "state dict (parameter name -> tensor) of the variant passed as `variant`")


def load_detector(weights: str | Path | None, variant: str = "mobilenet_v3_large_320_fpn"
                  ) -> tuple[FasterRCNN, dict]:
    """(model in eval mode, the file's meta) from a weights file or torchvision's COCO weights.
    A file from save_detector names its variant; a plain state dict is of `variant`."""
    if weights is not None and str(weights) != "coco":
        path = Path(weights)
        saved = _read_weights(path)
        if "state_dict" in saved and "variant" in saved:
            variant, state = str(saved["variant"]), saved["state_dict"]
            build_kwargs, meta = saved.get("build_kwargs") or {}, saved.get("meta") or {}
            if variant == "demo_small" and not build_kwargs:
                build_kwargs = LEGACY_DEMO_SMALL_SIZE
        elif saved and all(isinstance(v, torch.Tensor) for v in saved.values()):
            state, build_kwargs, meta = saved, {}, {"source": f"state dict {path.name}"}
        else:
            raise DetectorWeightsError(f"detector weights file {path} has neither layout: "
                                       f"{WEIGHTS_FORMATS}")
        try:
            model = build_detector(variant, **build_kwargs)
            model.load_state_dict(state)
        except (ValueError, TypeError, RuntimeError) as e:
            raise DetectorWeightsError(
                f"detector weights file {path} does not fit variant {variant!r} "
                f"({type(e).__name__}: {str(e)[:500]}); {WEIGHTS_FORMATS}, one of "
                f"{', '.join(VARIANTS)}") from e
        return model.eval(), {**meta, "variant": variant}
    if weights is None:
        raise DetectorWeightsError(
            "no person-detector weights. Options: (1) weights='coco' to use torchvision's COCO "
            "Faster R-CNN weights (cached under $TORCH_HOME or downloaded; needs the internet "
            "once); (2) weights=<path> to a file written by save_detector, or a plain "
            "torchvision Faster R-CNN state dict with variant=<its variant> (one of "
            f"{', '.join(VARIANTS)}); (3) on the demo shop, leave weights unset and let the "
            "person_detector asset fine-tune the demo_small variant on the shop's annotated "
            "boxes.")
    if variant not in COCO_VARIANTS:
        raise DetectorWeightsError(f"variant {variant!r} has no COCO weights: one of "
                                   f"{', '.join(COCO_VARIANTS)}")
    builder_name, enum_name = COCO_VARIANTS[variant]
    enum = getattr(detection, enum_name).COCO_V1
    try:
        model = getattr(detection, builder_name)(weights=enum)
    except Exception as e:  # no cache and no internet, a corrupt download, ...
        raise DetectorWeightsError(
            f"could not load torchvision's COCO weights for {variant} ({e}). Put the file "
            f"{Path(enum.url).name} in $TORCH_HOME/hub/checkpoints, or set weights=<path>.") from e
    return model.eval(), {"variant": variant, "source": "torchvision COCO_V1"}


@dataclass
class TrainResult:
    model: FasterRCNN
    steps: int
    wall_s: float
    losses: list[float] = field(default_factory=list)


def train_detector(images: Sequence[np.ndarray], boxes: Sequence[Sequence[float]],
                   steps: int = 200, batch_size: int = 8, lr: float = 3e-3, seed: int = 0,
                   variant: str = "demo_small", log: Callable[[str], None] | None = None,
                   build_kwargs: dict | None = None) -> TrainResult:
    """Fine-tune (or, offline, train from scratch) on one person box per image. Images stay
    uint8 in memory and become float tensors a batch at a time."""
    torch.manual_seed(seed)
    dev = device()  # CUDA when present (training.runtime.device)
    model = build_detector(variant, **(build_kwargs or {})).to(dev)
    targets = [{"boxes": torch.tensor([b], dtype=torch.float32, device=dev),
                "labels": torch.tensor([PERSON], device=dev)} for b in boxes]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1),
                                                pct_start=0.15)
    g = torch.Generator().manual_seed(seed)
    model.train()
    losses, t0 = [], time.perf_counter()
    for step in range(steps):
        idx = torch.randint(0, len(images), (batch_size,), generator=g).tolist()
        loss = sum(model([to_tensor(images[i]).to(dev) for i in idx],
                         [targets[i] for i in idx]).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if log and (step % 50 == 0 or step == steps - 1):
            log(f"detector step {step}/{steps} loss {losses[-1]:.3f}")
    return TrainResult(model.cpu().eval(), steps, time.perf_counter() - t0, losses)


def load_rgb(path: Path) -> np.ndarray:
    """A photo as uint8 RGB (H, W, 3)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def evaluate_detector(model: FasterRCNN, images: Sequence[np.ndarray],
                      boxes: Sequence[Sequence[float]], min_score: float = 0.5) -> dict:
    """Mean IoU of the best person box against the true box (0 where none is found), the
    share with IoU >= 0.5, and recall (a person found with score >= min_score)."""
    found = detect_people(model, images, min_score=min_score)
    ious = np.array([float(box_ious([f[0]], [b])[0]) if f else 0.0
                     for f, b in zip(found, boxes, strict=True)])
    return {"photos": len(images), "mean_iou": round(float(ious.mean()), 4),
            "iou_over_half": round(float((ious >= 0.5).mean()), 4),
            "recall": round(sum(f is not None for f in found) / len(found), 4)}


def held_out(product_id: str, seed: int = 0, share: float = 0.2) -> bool:
    """Whether a product is kept out of detector training (stable: a hash of seed and id)."""
    h = int(hashlib.sha1(f"{seed}:{product_id}".encode()).hexdigest()[:8], 16)
    return h / 0xFFFFFFFF < share


# (product id, image_path relative to the store root, the photo's truth: view, box, ...), as
# demo_truth.annotated_photos gives them
Sample = tuple[str, str, dict]


def detector_training_split(samples: Sequence[Sample], seed: int = 0, holdout: float = 0.2,
                            max_train_photos: int | None = None
                            ) -> tuple[list[Sample], list[Sample]]:
    """(train, test) by product, so no product's photos are on both sides: the `holdout` share
    of products (held_out) is kept out of training and measured on, front photos only, as
    person_crops crops front photos. Train keeps at most max_train_photos, a seeded sample in
    the original order."""
    train = [s for s in samples if not held_out(s[0], seed, holdout)]
    test = [s for s in samples if held_out(s[0], seed, holdout) and s[2]["view"] == "front"]
    if max_train_photos is not None and len(train) > max_train_photos:
        rng = np.random.default_rng(seed)
        train = [train[i] for i in sorted(rng.choice(len(train), max_train_photos,
                                                     replace=False))]
    return train, test


def train_on_samples(samples: Sequence[Sample], store_root: Path, steps: int = 200,
                     batch_size: int = 8, lr: float = 3e-3, seed: int = 0,
                     log: Callable[[str], None] | None = None) -> tuple[FasterRCNN, dict]:
    """The demo_small detector trained on the samples' photos and true boxes, and the meta
    save_detector records (and the asset reports): what it learnt from, steps, time, loss."""
    root = Path(store_root)
    result = train_detector([load_rgb(root / s[1]) for s in samples],
                            [s[2]["box"] for s in samples], steps, batch_size, lr, seed, log=log)
    meta = {"trained_on": "demo shop boxes", "train_photos": len(samples),
            "device": device().type,
            "steps": result.steps, "train_wall_s": round(result.wall_s, 1),
            "final_loss": round(float(np.mean(result.losses[-20:])), 4)}
    return result.model, meta


def heldout_scores(model: FasterRCNN, samples: Sequence[Sample], store_root: Path,
                   min_score: float = 0.5) -> dict:
    """evaluate_detector on the held-out samples, as heldout_front_photos, heldout_mean_iou
    and heldout_recall."""
    root = Path(store_root)
    scores = evaluate_detector(model, [load_rgb(root / s[1]) for s in samples],
                               [s[2]["box"] for s in samples], min_score)
    return {"heldout_front_photos": scores["photos"], "heldout_mean_iou": scores["mean_iou"],
            "heldout_recall": scores["recall"]}


def to_tensor(image: np.ndarray) -> torch.Tensor:
    image = np.ascontiguousarray(image)
    if not image.flags.writeable:  # arrays from PIL are read-only; torch wants to own them
        image = image.copy()
    return torch.from_numpy(image).permute(2, 0, 1).float().div(255.0)


def detect_people(model: FasterRCNN, images: Sequence[np.ndarray], batch_size: int = 8,
                  min_score: float = 0.5) -> list[tuple[np.ndarray, float] | None]:
    """The highest-scoring person box (x0, y0, x1, y1) and its score per image, or None."""
    out: list[tuple[np.ndarray, float] | None] = []
    dev = device()  # CUDA when present; the model goes back where it was
    home = next(model.parameters()).device
    model.eval().to(dev)
    # the model's own cut-off (0.05 by default) must not hide boxes the caller would accept
    model.roi_heads.score_thresh = min(model.roi_heads.score_thresh, min_score)
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = [to_tensor(im).to(dev) for im in images[start:start + batch_size]]
            for det in model(batch):
                det = {k: v.cpu() for k, v in det.items()}
                keep = (det["labels"] == PERSON) & (det["scores"] >= min_score)
                if not keep.any():
                    out.append(None)
                    continue
                best = int(torch.argmax(torch.where(keep, det["scores"], -1.0)))
                out.append((det["boxes"][best].numpy().astype(np.float32),
                            float(det["scores"][best])))
    model.to(home)
    return out


def crop_square(image: np.ndarray, box: Sequence[float], size: int = 64,
                margin: float = 0.05) -> np.ndarray:
    """The box plus a margin, padded to a square with the background colour (the photo's
    border median), resized to size x size."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    side = int(round(side))
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    canvas = np.empty((side, side, 3), np.uint8)
    canvas[:] = np.median(border, axis=0).astype(np.uint8)
    sy0, sx0 = max(0, top), max(0, left)
    sy1, sx1 = min(h, top + side), min(w, left + side)
    if sy1 > sy0 and sx1 > sx0:
        canvas[sy0 - top:sy1 - top, sx0 - left:sx1 - left] = image[sy0:sy1, sx0:sx1]
    return np.asarray(Image.fromarray(canvas).resize((size, size), Image.Resampling.LANCZOS))


def box_ious(pred: Sequence[Sequence[float]], truth: Sequence[Sequence[float]]) -> np.ndarray:
    """Element-wise IoU of matching boxes."""
    p = torch.tensor(np.asarray(pred, np.float32)).reshape(-1, 4)
    t = torch.tensor(np.asarray(truth, np.float32)).reshape(-1, 4)
    return box_iou(p, t).diagonal().numpy()


@dataclass
class Crops:
    """People cut out of photos: one row per photo where a person was found."""

    keys: list = field(default_factory=list)  # the caller's key of each cropped photo
    images: list[np.ndarray] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    drops: dict[str, int] = field(default_factory=lambda: {"unreadable": 0, "no_person": 0})


def crop_people(model: FasterRCNN, photos: Sequence[tuple[object, Path]], size: int = 64,
                margin: float = 0.05, batch_size: int = 8, min_score: float = 0.5,
                chunk: int = 64) -> Crops:
    """Detect and crop the person in each (key, path) photo, `chunk` photos in memory at a
    time; unreadable photos and photos without a person are counted in `drops`."""
    out = Crops()
    for start in range(0, len(photos), chunk):
        images, keys = [], []
        for key, path in photos[start:start + chunk]:
            try:
                images.append(load_rgb(path))
                keys.append(key)
            except OSError:
                out.drops["unreadable"] += 1
        for key, image, hit in zip(keys, images, detect_people(model, images, batch_size,
                                                               min_score), strict=True):
            if hit is None:
                out.drops["no_person"] += 1
                continue
            out.keys.append(key)
            out.boxes.append(hit[0])
            out.scores.append(hit[1])
            out.images.append(crop_square(image, hit[0], size, margin))
    return out


# ----- the registry: fashion-person-detector, `champion` by held-out IoU ------------------------
REGISTERED = "fashion-person-detector"
WEIGHTS_ARTIFACT = "detector"  # the run's artifact folder the version points at


def detector_tags(meta: dict, scores: dict, weights: str | None) -> dict[str, str]:
    """A detector version's tags: kind, its variant and what it learnt from (the demo shop's
    boxes and how many photos and steps, torchvision's COCO weights, or a given file), and
    the held-out scores where there were held-out photos."""
    source = meta.get("trained_on") or meta.get("source") or (
        f"file {Path(weights).name}" if weights and weights != "coco" else "")
    tags = {"kind": "detector", "variant": str(meta.get("variant", "demo_small")),
            "training_data": str(source)}
    for k in ("train_photos", "steps"):
        if k in meta:
            tags[k] = str(meta[k])
    tags.update({k: str(v) for k, v in scores.items()})
    return tags


def register_detector(weights: Path | str, tags: dict[str, str]) -> str:
    """In the active MLflow run: the weights file (save_detector's, read back with
    weights_only=True by load_detector) as the artifact `detector/`, registered as
    fashion-person-detector, a version whose source is that folder, tagged with `tags`
    (detector_tags). A Faster R-CNN does not go through torch.export, and a pickled model
    would run code when loaded, so the version is the plain weights: load it with
    load_registered_detector. Returns the version."""
    import mlflow

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("register_detector needs an active MLflow run")
    mlflow.log_artifact(str(weights), WEIGHTS_ARTIFACT)
    client = mlflow.MlflowClient()
    try:
        client.get_registered_model(REGISTERED)
    except Exception:  # not registered yet
        client.create_registered_model(
            REGISTERED, description="The person detector behind person_crops: a torchvision "
                                    "Faster R-CNN weights file (load_registered_detector).")
    version = client.create_model_version(
        REGISTERED, f"{run.info.artifact_uri}/{WEIGHTS_ARTIFACT}", run.info.run_id,
        tags={k: str(v) for k, v in tags.items()})
    return str(version.version)


def set_detector_champion(client) -> str | None:
    """Alias `champion` on the fashion-person-detector version with the highest
    heldout_mean_iou tag (None when no version was scored on held-out photos)."""
    scored = [(float(v.tags["heldout_mean_iou"]), int(v.version))
              for v in client.search_model_versions(f"name = '{REGISTERED}'")
              if "heldout_mean_iou" in v.tags]
    if not scored:
        return None
    best = str(max(scored)[1])
    client.set_registered_model_alias(REGISTERED, "champion", best)
    return best


def load_registered_detector(client, version: str = "champion") -> tuple[FasterRCNN, dict]:
    """A registered detector version (a number, or an alias such as `champion`) as
    load_detector returns it, read without unpickling objects."""
    import mlflow

    if version.isdigit():
        mv = client.get_model_version(REGISTERED, version)
    else:
        mv = client.get_model_version_by_alias(REGISTERED, version)
    folder = Path(mlflow.artifacts.download_artifacts(run_id=mv.run_id,
                                                      artifact_path=WEIGHTS_ARTIFACT))
    [path] = sorted(folder.glob("*.pt"))
    return load_detector(path)
