"""The human parser and the description encoder on the demo shop, at the assets' defaults.

    python benchmarks/human_parser.py [--products 200] [--steps 400] [--encoder-steps 400]

Human parser: the demo's front photos and masks (through JPEG, as crawled), cropped as
segmentation_store crops them, products held out by a hash of their id (20 %); trained as the
`human_parser` asset trains (U-Net width 8, batch 16, class-balanced cross-entropy, 1 thread),
then per-pixel accuracy, IoU per class and mIoU on the held-out products' crops, and the same
for the real-photo path: the full front photo cropped at the person's box (here the truth box:
a perfect detector) and parsed, scored against the mask in the same window. Inference speed in
crops/s. Description encoder: the same products' catalogue rows (their truth columns), trained
as the `description_encoder` asset trains; held-out accuracy per head.
"""

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.machine import cpu_model  # noqa: E402
from pipelines.processing.segmentation import CLASS_NAMES, crop_person  # noqa: E402
from scrapers.demo_shop.catalog import make_catalog  # noqa: E402
from scrapers.demo_shop.draw import jpeg, model_photo  # noqa: E402
from training.description_encoder import train_on_catalogue  # noqa: E402
from training.human_parser import (  # noqa: E402
    SegmentationData,
    confusion,
    crop_photo,
    crop_window,
    parse,
    scores,
    split_ids,
    torch_threads,
    train_parser,
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--products", type=int, default=200)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--encoder-steps", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    products = make_catalog(args.products, 0)
    ids, photos, masks, crops, labels = [], [], [], [], []
    for p in products:
        photo, mask = model_photo(p, p.views.index("front"))
        photo = np.asarray(Image.open(io.BytesIO(jpeg(photo))).convert("RGB"))
        mask = np.asarray(mask)
        image, label = crop_person(photo, mask)
        ids.append(p.id)
        photos.append(photo)
        masks.append(mask)
        crops.append(image)
        labels.append(label)
    data = SegmentationData(ids, np.stack(crops), np.stack(labels))
    print(f"CPU: {cpu_model()}, {torch.get_num_threads()} torch threads available, torch "
          f"{torch.__version__}; {args.products} demo products")
    result = train_parser(data, steps=args.steps, seed=args.seed)
    s = result.scores
    print(f"human parser: {len(result.train_ids)} train / {len(result.test_ids)} held-out "
          f"products, {args.steps} steps batch 16 in {result.wall_s:.0f} s "
          f"({result.wall_s / args.steps:.2f} s/step, 1 thread)")
    _, test = split_ids(ids, args.seed, 0.2)
    t0 = time.perf_counter()
    cm = np.zeros((7, 7), np.int64)
    with torch_threads(1):
        for k in test:
            ys, xs = np.nonzero(masks[k])
            image, window = crop_photo(photos[k], [xs.min(), ys.min(), xs.max() + 1,
                                                   ys.max() + 1])
            cm += confusion(parse(result.model, image[None])[0], crop_window(masks[k], window))
        photo_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        parse(result.model, data.images[test])
        speed = len(test) / (time.perf_counter() - t0)
    path = scores(cm)
    print("\n| held out | pixel accuracy | mIoU | " + " | ".join(CLASS_NAMES) + " |")
    print("|---" * (3 + len(CLASS_NAMES)) + "|")
    for name, r in (("store crops", s), ("front photo at its box", path)):
        print(f"| {name} | {r['pixel_accuracy']:.3f} | {r['miou']:.3f} | "
              + " | ".join(f"{r['iou'][c]:.3f}" if r['iou'][c] is not None else "-"
                           for c in CLASS_NAMES) + " |")
    print(f"\nparse: {speed:.0f} crops/s (1 thread, batch 32); photo path incl. decode and "
          f"crop: {len(test) / photo_s:.0f} photos/s")
    catalogue = pd.DataFrame([{"id": p.id, "brand": p.brand, "name": p.name, **p.truth}
                              for p in products])
    t0 = time.perf_counter()
    encoder, _, _ = train_on_catalogue(catalogue, steps=args.encoder_steps, seed=args.seed)
    print(f"\ndescription encoder: {args.encoder_steps} steps in {encoder.wall_s:.0f} s "
          f"(1 thread), vocabulary {len(encoder.vocabulary)}")
    print("\n| head | held-out accuracy | held-out products with the value |\n|---|---|---|")
    for head, acc in encoder.accuracy.items():
        print(f"| {head} | {acc:.3f} | {encoder.heldout[head]} |")


if __name__ == "__main__":
    main()
