"""The demo person detector: training time, quality on held-out photos, inference speed.

    python benchmarks/person_detector.py [--products 200] [--steps 200] [--batches 1 8 32]
                                         [--size 160 240]

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

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.demo_store import demo_store  # noqa: E402
from pipelines.processing.catalogue import read_catalogue  # noqa: E402
from pipelines.processing.demo_truth import annotated_photos, load_truth  # noqa: E402
from pipelines.processing.front_view import photo_table  # noqa: E402
from pipelines.processing.person_detector import (  # noqa: E402
    DEMO_SMALL_SIZE,
    detect_people,
    evaluate_detector,
    held_out,
    load_rgb,
    train_detector,
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--products", type=int, default=200)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--size", type=int, nargs=2, metavar=("MIN", "MAX"),
                    default=[DEMO_SMALL_SIZE["min_size"], DEMO_SMALL_SIZE["max_size"]],
                    help="the photos' size inside the model (the shorter and longer side)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = demo_store(Path(tmp), args.products)
        photos = annotated_photos(photo_table(read_catalogue(store / "catalogue")),
                                  load_truth(store / "raw" / "demo" / "truth.json"))
        train = [p for p in photos if not held_out(p[0])]
        test = [p for p in photos if held_out(p[0]) and p[2]["view"] == "front"]
        images = [load_rgb(store / p[1]) for p in train]
        result = train_detector(images, [p[2]["box"] for p in train], steps=args.steps,
                                build_kwargs={"min_size": args.size[0],
                                              "max_size": args.size[1]})
        print(f"trained on {len(train)} photos, {args.steps} steps, batch 8: "
              f"{result.wall_s:.0f} s ({result.wall_s / args.steps:.2f} s/step)")
        test_images = [load_rgb(store / p[1]) for p in test]
        s = evaluate_detector(result.model, test_images, [p[2]["box"] for p in test])
        print(f"held-out front photos: {s['photos']}; mean IoU {s['mean_iou']:.3f}; "
              f"IoU >= 0.5: {s['iou_over_half']:.1%}; recall {s['recall']:.1%}")
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
