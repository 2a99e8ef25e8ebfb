"""The classic collection on the demo packshots: the ten families at equal steps, several seeds.

    python benchmarks/collection_replication.py [--backbone infogan] [--steps 300]
        [--seeds 0 1 2] [--families gan cgan ...] [--set d_norm=none r1_gamma=1]
        [--score-seed 0] [--json FILE]

The fashion-MNIST study compared GAN, CGAN, infoGAN, ACGAN, EBGAN, BEGAN, WGAN, WGAN-GP, DRAGAN
and LSGAN by their sample grids only. Here each family is trained by training.loop.train at the
demo profile (batch 32, ngf = ndf = 32, Adam 2e-4 / 0.5) on the chosen backbone, restored from
its run folder and scored by the same training.evaluation.evaluate_generator the leaderboard
uses (1,000 samples, the attribute classifier's feature space): Fréchet distance, KID,
precision, recall, mode coverage (share of the category x colour classes the samples reach;
`mode_coverage_real`: of those the classifier finds among the real packshots), and for the
conditional families (CGAN, ACGAN) conditional accuracy. A family counts as
collapsed in a run when its samples reach fewer than 10% of the category x colour classes
that the classifier finds among the real packshots (mode coverage < 0.1 x the real images'
coverage, printed) — the study's "all samples look alike".

The classifier is assets_store/models/attribute_classifier.pt when it exists, else trained once
here (seed 0, 400 steps, as make run). Needs datasets/packshots.h5 (make run, or
catalogue_job). Quality figures do not depend on the machine's load; the wall times do.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.gan_replication import mean_sd  # noqa: E402
from benchmarks.machine import cpu_model  # noqa: E402
from training.classifier import load_classifier, save_classifier, train_classifier  # noqa: E402
from training.datasets import H5ImageDataset, open_dataset  # noqa: E402
from training.evaluation import evaluate_generator  # noqa: E402
from training.family import get_family  # noqa: E402
from training.loop import train  # noqa: E402
from training.metrics import embed, mode_coverage  # noqa: E402

STORE = Path(__file__).resolve().parent.parent / "assets_store"
FAMILIES = ("gan", "lsgan", "wgan", "wgan_gp", "dragan", "cgan", "acgan", "infogan", "ebgan",
            "began")
COLUMNS = ("frechet_distance", "kid", "precision", "recall", "mode_coverage",
           "mode_coverage_real", "conditional_accuracy", "images_per_s")
COLLAPSE = 0.1  # coverage below this share of the real images' coverage = collapsed


def real_coverage(data: H5ImageDataset, classifier, values: dict) -> float:
    """Mode coverage of the real packshots, as evaluate_generator measures samples."""
    import torch

    classifier.eval()
    with torch.no_grad():
        feats = torch.from_numpy(embed(classifier.features, data.batch(
            torch.arange(len(data))))).float()
        predicted = {c: classifier.heads[c](feats).argmax(1).numpy()
                     for c in ("category", "color")}
    return mode_coverage(predicted["category"], predicted["color"],
                         len(values["category"]), len(values["color"]))



def train_and_score(name: str, cfg, data_path: Path, out: Path, data: H5ImageDataset,
                    classifier, values: dict, samples: int, score_seed: int) -> tuple[dict, dict]:
    """Train one config into out, restore it from there and score it as the leaderboard does:
    (the training summary, the scores)."""
    family = get_family(name)
    summary = train(name, cfg, data_path, out)
    trained = family.restore(cfg, open_dataset(data_path, **family.data_options(cfg)), out)
    scores = evaluate_generator(trained.sampler(), trained.registry_tags(), data, classifier,
                                values, n=samples, seed=score_seed)
    return summary, scores


def summary_table(rows: list[dict]) -> str:
    lines = ["| family | seeds | " + " | ".join(COLUMNS) + " | collapsed |",
             "|---" * (len(COLUMNS) + 3) + "|"]
    by_family: dict[str, list[dict]] = {}
    for r in rows:
        by_family.setdefault(r["family"], []).append(r)
    ranked = sorted(by_family.items(),
                    key=lambda kv: statistics.mean(r["frechet_distance"] for r in kv[1]))
    for family, group in ranked:
        cells = []
        for c in COLUMNS:
            values = [r[c] for r in group if r.get(c) is not None]
            cells.append(mean_sd(values) if values else "–")
        collapsed = sum(r["collapsed"] for r in group)
        lines.append(f"| {family} | {len(group)} | " + " | ".join(cells)
                     + f" | {collapsed}/{len(group)} |")
    return "\n".join(lines)


def parse_options(pairs: list[str]) -> dict:
    """["d_norm=none", "r1_gamma=1"] -> {"d_norm": "none", "r1_gamma": 1.0}: numbers and
    booleans as such, the rest as text (the config refuses what it cannot take)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set takes OPTION=VALUE, got {pair!r}")
        if value in ("true", "false"):
            options[key] = value == "true"
        else:
            try:
                options[key] = int(value) if value.lstrip("-").isdigit() else float(value)
            except ValueError:
                options[key] = value
    return options


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    ap.add_argument("--backbone", choices=("infogan", "dcgan"), default="infogan",
                    help="infogan: the study's nets at 32 px; dcgan: 64 px")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--score-seed", type=int, default=None,
                    help="seed of the samples scored (default: the run's training seed; 0 is "
                         "what the leaderboard draws)")
    ap.add_argument("--data", type=Path, default=STORE / "datasets" / "packshots.h5")
    ap.add_argument("--classifier", type=Path,
                    default=STORE / "models" / "attribute_classifier.pt")
    ap.add_argument("--set", nargs="+", default=[], metavar="OPTION=VALUE",
                    help="more config options for every family, e.g. d_norm=none r1_gamma=1")
    ap.add_argument("--json", type=Path, help="write every run's row here")
    args = ap.parse_args()
    extra = parse_options(args.set)
    work = Path(tempfile.mkdtemp(prefix="collection-"))
    if not args.classifier.is_file():
        args.classifier.parent.mkdir(parents=True, exist_ok=True)  # kept for the next run
        args.classifier = save_classifier(train_classifier(args.data, steps=400),
                                          args.classifier, 32)
    classifier, values = load_classifier(args.classifier)
    data = H5ImageDataset(args.data)
    real = real_coverage(data, classifier, values)
    print(f"{cpu_model()}; {args.backbone} backbone, demo profile, {args.steps} steps, "
          f"{extra or 'no other options'}, seeds {args.seeds}, {len(data)} packshots (mode "
          f"coverage of the real images {real:.3f}), {args.samples} samples per model",
          flush=True)
    rows = []
    for name in args.families:
        family = get_family(name)
        for seed in args.seeds:
            cfg = family.Config.profile("demo", **{**extra, "backbone": args.backbone,
                                                   "steps": args.steps, "seed": seed,
                                                   "sample_every": 10**9,
                                                   "checkpoint_every": 10**9})
            out = work / f"{name}-{seed}"
            t0 = time.perf_counter()
            summary, scores = train_and_score(
                name, cfg, args.data, out, data, classifier, values, args.samples,
                seed if args.score_seed is None else args.score_seed)
            row = {"family": name, "seed": seed, "images_per_s": summary["images_per_s"],
                   **scores, "collapsed": scores["mode_coverage"] < COLLAPSE * real,
                   "wall_s": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\nRanked by mean Fréchet distance (lower is better); collapsed = mode coverage "
          f"< {COLLAPSE} x the real images' {real:.3f}\n")
    print(summary_table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
