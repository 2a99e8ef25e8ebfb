"""Replication of the two seed papers on the demo data, at equal steps and several seeds.

    python benchmarks/gan_replication.py [--profile demo] [--steps 300] [--seeds 0 1 2]
        [--presets EX1 EX4 EX7] [--json FILE]

- DCGAN baseline vs flip augmentation vs symmetric: flip gap (the final D's loss on flipped
  minus original generated images), symmetry error of samples (real images' figure beside
  it), Fréchet distance and KID in the classifier's feature space, mode coverage, and
  flip-inversion repair before/after (symmetry error, reconstruction error);
- BiGAN presets (EX1, EX4, EX7 by default: λ1 = 0.05, 1, 2.5, L_AD alone): held-out pixel
  and latent reconstruction error, mode coverage, Fréchet distance.
The DCGAN keeps the paper's discriminator (batch norm, no R1 penalty), also where the profile
sets the small-data recipe. Every model is trained by training.loop.train, restored from its
run folder (the discriminator for the flip gap comes with it) and scored by the same
training.evaluation.evaluate_generator,
sampled as its registry tags say (DCGAN z ~ N(0, I), BiGAN z ~ U[-1, 1]). The classifier is
assets_store/models/attribute_classifier.pt when it exists, else trained once here (seed 0).
Runs on CUDA when present (training; scoring on the CPU). Needs datasets/packshots.h5.
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
from training.datasets import H5ImageDataset  # noqa: E402
from training.evaluation import evaluate_generator  # noqa: E402
from training.families.bigan import BiGAN, BiGANConfig  # noqa: E402
from training.families.dcgan import DCGAN, VARIANTS, DCGANConfig, symmetry_report  # noqa: E402
from training.loop import train  # noqa: E402

STORE = Path(__file__).resolve().parent.parent / "assets_store"
DCGAN_COLUMNS = ("flip_gap", "symmetry_error_generated", "symmetry_error_before_repair",
                 "symmetry_error_repaired",
                 "flip_inversion_reconstruction_error", "frechet_distance", "kid",
                 "mode_coverage")
BIGAN_COLUMNS = ("reconstruction_error_pixel", "reconstruction_error_latent", "mode_coverage",
                 "frechet_distance", "flip_gap")


def mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.mean(values):.4g} ± {statistics.stdev(values):.2g}"


def table(rows: list[dict], key: str, columns: tuple[str, ...]) -> str:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r[key], []).append(r)
    lines = [f"| {key} | seeds | " + " | ".join(columns) + " |",
             "|---" * (len(columns) + 2) + "|"]
    for name, group in groups.items():
        cells = [mean_sd([r[c] for r in group]) for c in columns]
        lines.append(f"| {name} | {len(group)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", choices=("demo", "full"), default="demo")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--presets", nargs="*", default=["EX1", "EX4", "EX7"])
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--data", type=Path, default=STORE / "datasets" / "packshots.h5")
    ap.add_argument("--classifier", type=Path, default=STORE / "models" /
                    "attribute_classifier.pt")
    ap.add_argument("--json", type=Path, help="write every run's figures here")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="replication-"))
    if not args.classifier.is_file():
        args.classifier = save_classifier(train_classifier(args.data, steps=400), work /
                                          "classifier.pt", 32)
    classifier, values = load_classifier(args.classifier)
    data = H5ImageDataset(args.data)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"torch {torch.__version__} on {device}, {args.profile} profile, {args.steps} steps, "
          f"seeds {args.seeds}, {len(data)} images, {args.samples} samples per model",
          flush=True)
    dcgan_rows, bigan_rows = [], []
    for variant in args.variants:
        for seed in args.seeds:
            # the paper's D (batch norm, no R1) whatever the demo profile's small-data recipe
            cfg = DCGANConfig.profile(args.profile, variant=variant, steps=args.steps,
                                      seed=seed, sample_every=10**9, checkpoint_every=10**9,
                                      d_norm="batch", r1_gamma=0.0)
            out = work / f"dcgan-{variant}-{seed}"
            t0 = time.perf_counter()
            summary = train("dcgan", cfg, args.data, out)
            trained = DCGAN.restore(cfg, data, out)
            report, _, _ = symmetry_report(trained.netG, data, cfg.nz, seed=seed, n_repair=64,
                                           netD=trained.netD)
            scores = evaluate_generator(trained.netG, trained.registry_tags(), data, classifier,
                                        values, n=args.samples, seed=seed)
            row = {"variant": variant, "seed": seed, "images_per_s": summary["images_per_s"],
                   **report, **scores, "wall_s": round(time.perf_counter() - t0, 1)}
            dcgan_rows.append(row)
            print(json.dumps(row), flush=True)
    for preset in args.presets:
        for seed in args.seeds:
            cfg = BiGANConfig.profile(args.profile, preset=preset, steps=args.steps, seed=seed,
                                      feature_weights=str(args.classifier),
                                      sample_every=10**9, checkpoint_every=10**9)
            out = work / f"bigan-{preset}-{seed}"
            t0 = time.perf_counter()
            summary = train("bigan", cfg, args.data, out)
            trained = BiGAN.restore(cfg, data, out)
            scores = evaluate_generator(trained.netG, trained.registry_tags(), data, classifier,
                                        values, n=args.samples, seed=seed)
            row = {"preset": preset, "seed": seed, "images_per_s": summary["images_per_s"],
                   **{k: summary[k] for k in BIGAN_COLUMNS if k in summary}, **scores,
                   "wall_s": round(time.perf_counter() - t0, 1)}
            bigan_rows.append(row)
            print(json.dumps(row), flush=True)
    if dcgan_rows:
        real = statistics.mean(r["symmetry_error_real"] for r in dcgan_rows)
        print(f"\nDCGAN (symmetry error of real images: {real:.4f})\n")
        print(table(dcgan_rows, "variant", DCGAN_COLUMNS))
    if bigan_rows:
        print("\nBiGAN\n")
        print(table(bigan_rows, "preset", BIGAN_COLUMNS))
    if args.json:
        args.json.write_text(json.dumps({"dcgan": dcgan_rows, "bigan": bigan_rows}, indent=1))


if __name__ == "__main__":
    main()
