"""BiGAN's paper options, each against its absence, at equal steps over several seeds.

    python benchmarks/bigan_options.py [--steps 300] [--seeds 0 1 2] [--preset EX6]
        [--unroll 5] [--samples 1000] [--width N] [--batch-size N] [--data FILE]
        [--classifier FILE] [--json FILE]

Runs: `baseline` (today's defaults), `l_ad_prime` (λ1 weighs L′_AD instead of L_AD),
`unroll_k` (G/E against D unrolled k steps), `bn_decay_0.97` (bn_momentum 0.03),
`normalize_features` (ℓ2-normalised L_H features; it only matters with λ3 > 0, hence the
default preset EX6 and the classifier as F). Each is trained by training.loop.train, its held-out
pixel/latent reconstruction errors and flip gap come from the run's summary
(training.families.bigan.reconstruction_report), and its generator, restored from the run folder
(BiGAN.restore), is scored by training.evaluation.evaluate_generator (Fréchet distance in the
classifier's feature space), sampled z ~ U[-1, 1] as its registry tags say. The classifier is
assets_store/models/attribute_classifier.pt when it exists, else trained once here.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.classifier import load_classifier, save_classifier, train_classifier  # noqa: E402
from training.datasets import open_dataset  # noqa: E402
from training.evaluation import evaluate_generator  # noqa: E402
from training.families.bigan import BiGAN, BiGANConfig  # noqa: E402
from training.loop import train  # noqa: E402

STORE = Path(__file__).resolve().parent.parent / "assets_store"
COLUMNS = ("reconstruction_error_pixel", "reconstruction_error_latent", "frechet_distance",
           "flip_gap", "images_per_s")


def runs(unroll: int) -> dict[str, dict]:
    """{run name: config overrides}: the baseline, then one option at a time."""
    return {"baseline": {}, "l_ad_prime": {"latent_loss": "l_ad_prime"},
            f"unroll_{unroll}": {"unroll_steps": unroll}, "bn_decay_0.97": {"bn_momentum": 0.03},
            "normalize_features": {"normalize_features": True}}


def mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.mean(values):.4g} ± {statistics.stdev(values):.2g}"


def table(rows: list[dict]) -> str:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["run"], []).append(r)
    lines = ["| run | seeds | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 2) + "|"]
    for name, group in groups.items():
        cells = [mean_sd([r[c] for r in group if c in r]) if any(c in r for r in group)
                 else "-" for c in COLUMNS]
        lines.append(f"| {name} | {len(group)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", choices=tuple(BiGANConfig.PROFILES), default="demo")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--preset", default="EX6", help="the paper's experiment every run uses")
    ap.add_argument("--unroll", type=int, default=5, help="k of the unrolled run")
    ap.add_argument("--runs", nargs="*", help="only these runs (default: all)")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--width", type=int, help="ngf = ndf = nef (default: the profile's)")
    ap.add_argument("--batch-size", type=int, help="default: the profile's")
    ap.add_argument("--data", type=Path, default=STORE / "datasets" / "packshots.h5")
    ap.add_argument("--classifier", type=Path, default=STORE / "models" /
                    "attribute_classifier.pt")
    ap.add_argument("--json", type=Path, help="write every run's figures here")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bigan-options-"))
    if not args.classifier.is_file():
        args.classifier = save_classifier(train_classifier(args.data, steps=400), work /
                                          "classifier.pt", 32)
    classifier, values = load_classifier(args.classifier)
    data = open_dataset(args.data)
    chosen = {k: v for k, v in runs(args.unroll).items() if not args.runs or k in args.runs}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"torch {torch.__version__} on {device}, {args.profile} profile, preset "
          f"{args.preset}, {args.steps} steps, seeds {args.seeds}, {len(data)} images, "
          f"{args.samples} samples per model", flush=True)
    rows = []
    for name, overrides in chosen.items():
        for seed in args.seeds:
            cfg = BiGANConfig.profile(args.profile, preset=args.preset, steps=args.steps,
                                      seed=seed, feature_weights=str(args.classifier),
                                      sample_every=10**9, checkpoint_every=10**9,
                                      ngf=args.width, ndf=args.width, nef=args.width,
                                      batch_size=args.batch_size, **overrides)
            out = work / f"{name}-{seed}"
            t0 = time.perf_counter()
            summary = train("bigan", cfg, args.data, out)
            trained = BiGAN.restore(cfg, data, out)
            scores = evaluate_generator(trained.netG, {"nz": str(cfg.nz), "latent": "uniform"},
                                        data, classifier, values, n=args.samples, seed=seed)
            row = {"run": name, "seed": seed, "images_per_s": summary["images_per_s"],
                   **{k: summary[k] for k in COLUMNS if k in summary},
                   "frechet_distance": scores["frechet_distance"],
                   "wall_s": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\nBiGAN {args.preset}, {args.steps} steps: each option against the baseline\n")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
