"""Front full-body photo selection: accuracy against the demo ground truth, and time.

    python benchmarks/front_view_accuracy.py [--sizes 200 1000] [--k 8]

For each size a demo shop is crawled and catalogued (untimed); then, timed as the
front_model_images asset does it: features of every stored model photo (2 threads), K-means,
the automatic choice of the front cluster and the per-product nearest photo.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.demo_store import demo_store  # noqa: E402
from pipelines.processing.catalogue import read_catalogue  # noqa: E402
from pipelines.processing.demo_truth import front_accuracy, load_truth  # noqa: E402
from pipelines.processing.front_view import compute_features, photo_table, select_front  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[200, 1000])
    ap.add_argument("--k", type=int, nargs="+", default=[8])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print("| demo products | photos | k | features s | K-means + choice s | front accuracy |")
    print("|---|---|---|---|---|---|")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            store = demo_store(Path(tmp), n, args.seed)
            photos = photo_table(read_catalogue(store / "catalogue"))
            truth = load_truth(store / "raw" / "demo" / "truth.json")
            t0 = time.perf_counter()
            named, coarse, ok = compute_features([store / p for p in photos["image_path"]])
            t_feat = time.perf_counter() - t0
            photos = photos[ok].reset_index(drop=True)
            for k in args.k:
                t0 = time.perf_counter()
                _, best = select_front(list(photos["id"]), named, coarse, k, args.seed)
                t_fit = time.perf_counter() - t0
                acc = front_accuracy([photos["image_url"][i] for i, _, _ in best.values()],
                                     truth)
                print(f"| {n} | {len(photos)} | {k} | {t_feat:.1f} | {t_fit:.2f} | "
                      f"{acc:.1%} |", flush=True)


if __name__ == "__main__":
    main()
