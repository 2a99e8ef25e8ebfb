"""Does bf16 autocast hurt quality? DCGAN at equal steps, fp32 against bf16, several seeds.

    python benchmarks/dcgan_bf16_quality.py [--seeds 0 1 2] [--steps 300]
        [--data FILE] [--classifier FILE]

On datasets/packshots.h5 (make run first; --data names another store): the attribute
classifier is trained once (seed 0; --classifier FILE uses a saved one instead), then the demo
DCGAN (baseline variant) is trained per seed in fp32 and in bf16 autocast, and each generator
is scored by training.evaluation.evaluate_generator (Fréchet distance in the classifier's
feature space, 1,000 samples), sampled as its registry tags say. bf16 does not hurt if its
distances sit within the seed-to-seed spread of the fp32 ones.
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.classifier import load_classifier, train_classifier  # noqa: E402
from training.datasets import H5ImageDataset  # noqa: E402
from training.evaluation import evaluate_generator  # noqa: E402
from training.families.dcgan import DCGAN, DCGANConfig  # noqa: E402
from training.loop import train  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "assets_store" / "datasets" / "packshots.h5"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--classifier-steps", type=int, default=400)
    ap.add_argument("--data", type=Path, default=DATA, help="the HDF5 store trained on")
    ap.add_argument("--classifier", type=Path, default=None,
                    help="a saved attribute classifier (default: train one here, seed 0)")
    args = ap.parse_args()
    if args.classifier:
        model, values = load_classifier(args.classifier)
    else:
        clf = train_classifier(args.data, steps=args.classifier_steps)
        model, values = clf.model, clf.values
    data = H5ImageDataset(args.data)
    results: dict[str, list[float]] = {"fp32": [], "bf16": []}
    print("| seed | arithmetic | images/s | Fréchet distance | KID |\n|---|---|---|---|---|")
    for seed in args.seeds:
        for name, bf16 in (("fp32", False), ("bf16", True)):
            cfg = DCGANConfig(variant="baseline", steps=args.steps, seed=seed, bf16=bf16,
                              sample_every=10_000, checkpoint_every=10_000)
            with tempfile.TemporaryDirectory() as tmp:
                summary = train("dcgan", cfg, args.data, tmp)
                trained = DCGAN.restore(cfg, data, Path(tmp))
                scores = evaluate_generator(trained.netG, trained.registry_tags(), data, model,
                                            values, n=1000, seed=0)
            results[name].append(scores["frechet_distance"])
            print(f"| {seed} | {name} | {summary['images_per_s']:.0f} | "
                  f"{scores['frechet_distance']:.1f} | {scores['kid']:.2f} |", flush=True)
    for name, distances in results.items():
        spread = statistics.stdev(distances) if len(distances) > 1 else 0.0
        print(f"\n{name}: mean Fréchet distance {statistics.mean(distances):.1f}, "
              f"seed-to-seed sd {spread:.1f}")


if __name__ == "__main__":
    main()
