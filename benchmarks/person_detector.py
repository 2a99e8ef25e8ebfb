"""The demo person detector: training time, quality on held-out photos, inference speed.

    python benchmarks/person_detector.py [--products 200] [--steps 300] [--batches 1 8 32]

Trains the demo_small Faster R-CNN exactly as the person_detector asset does (products split
80/20 by a hash of their id; all views of the training products), then measures on the
held-out products' front photos: mean IoU of the best person box against the truth box and
recall (a person found with score >= 0.5). Inference speed is images/s on this CPU at each
batch size, torch.inference_mode, 320x480 photos.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.demo_store import demo_store  # noqa: E402
from pipelines.processing.catalogue import read_catalogue  # noqa: E402
from pipelines.processing.demo_truth import load_truth, photos_by_url  # noqa: E402
from pipelines.processing.front_view import photo_table  # noqa: E402
from pipelines.processing.person_detector import (  # noqa: E402
    box_ious,
    detect_people,
    held_out,
    train_detector,
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--products", type=int, default=200)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = demo_store(Path(tmp), args.products)
        by_url = photos_by_url(load_truth(store / "raw" / "demo" / "truth.json"))
        rows = [(pid, store / path, by_url[url]) for pid, path, url in
                photo_table(read_catalogue(store / "catalogue")).itertuples(index=False)]
        load = lambda p: np.asarray(Image.open(p).convert("RGB"))  # noqa: E731
        train = [r for r in rows if not held_out(r[0])]
        test = [r for r in rows if held_out(r[0]) and r[2]["view"] == "front"]
        images = [load(r[1]) for r in train]
        result = train_detector(images, [r[2]["box"] for r in train], steps=args.steps)
        print(f"trained on {len(train)} photos, {args.steps} steps, batch 8: "
              f"{result.wall_s:.0f} s ({result.wall_s / args.steps:.2f} s/step)")
        test_images = [load(r[1]) for r in test]
        found = detect_people(result.model, test_images, min_score=0.5)
        ious = [float(box_ious([f[0]], [r[2]["box"]])[0]) if f else 0.0
                for f, r in zip(found, test, strict=True)]
        recall = sum(f is not None for f in found) / len(found)
        print(f"held-out front photos: {len(test)}; mean IoU {np.mean(ious):.3f}; "
              f"IoU >= 0.5: {np.mean(np.array(ious) >= 0.5):.1%}; recall {recall:.1%}")
        print(f"\n| batch | images/s (torch {torch.__version__}, {torch.get_num_threads()} "
              "threads) |\n|---|---|")
        pool = (test_images * 8)[:64]
        for b in args.batches:
            detect_people(result.model, pool[:b], batch_size=b)  # warm-up
            t0 = time.perf_counter()
            detect_people(result.model, pool, batch_size=b)
            print(f"| {b} | {len(pool) / (time.perf_counter() - t0):.1f} |", flush=True)


if __name__ == "__main__":
    main()
