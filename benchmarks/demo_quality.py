"""DCGAN sample quality on the demo packshots: settings x seeds, scored in the attribute
classifier's feature space (training.evaluation), with each setting's sample grid saved.

    python benchmarks/demo_quality.py --data STORE/datasets/packshots.h5 \
        --classifier STORE/models/attribute_classifier.pt --settings today tc_hinge_sn_ema \
        --seeds 0 1 2 --out /tmp/demo_quality

Every setting is a full DCGANConfig (the dataclass defaults plus its overrides), so "today"
stays the demo as it was before the small-data options, whatever the demo profile becomes.
Runs already trained in --out are only scored again (--score-only skips training entirely).
Prints one markdown row per setting (mean over seeds; ± the spread when several).
"""

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.classifier import load_classifier  # noqa: E402
from training.datasets import open_dataset  # noqa: E402
from training.evaluation import evaluate_generator  # noqa: E402
from training.families.dcgan import DCGAN, DCGANConfig  # noqa: E402
from training.loop import train  # noqa: E402

SMALL_DATA = {"augment": "translation,cutout", "loss": "hinge", "spectral_norm": True,
              "ema_decay": 0.99, "ema_warmup": 100}
SETTINGS: dict[str, dict] = {
    # the demo before the small-data options: 300 steps of the symmetric variant
    "today": {"variant": "symmetric"},
    "flips_1500": {"variant": "augment", "steps": 1500},
    "tc_ema_1000": {"variant": "augment", "steps": 1000, "augment": "translation,cutout",
                    "ema_decay": 0.99, "ema_warmup": 100},
    "tc_hinge_sn_ema_1000": {"variant": "augment", "steps": 1000, **SMALL_DATA},
    "ct_hinge_sn_ema_1000": {"variant": "augment", "steps": 1000, **SMALL_DATA,
                             "augment": "color,translation"},
    "tc_hinge_sn_ema_600": {"variant": "augment", "steps": 600, **SMALL_DATA},
    "tc_hinge_sn_ema_600_sym": {"variant": "symmetric", "steps": 600, **SMALL_DATA},
    "tc_hinge_sn_600": {"variant": "augment", "steps": 600, **SMALL_DATA, "ema_decay": 0.0},
    "hinge_sn_ema_600": {"variant": "augment", "steps": 600, **SMALL_DATA, "augment": ""},
    # ProGAN's minibatch standard deviation in D, against the collapse every setting above shows
    "mbstd": {"variant": "symmetric", "minibatch_std": True},
    "mbstd_augment": {"variant": "augment", "minibatch_std": True},
    "mbstd_tc_ema_600": {"variant": "augment", "steps": 600, "minibatch_std": True,
                         "augment": "translation,cutout", "ema_decay": 0.99, "ema_warmup": 100},
    "mbstd_tc_hinge_sn_ema_600": {"variant": "augment", "steps": 600, **SMALL_DATA,
                                  "minibatch_std": True},
    "mbstd_sym_600": {"variant": "symmetric", "steps": 600, "minibatch_std": True},
    # the R1 penalty, which with a D without batch norm meets the targets for GAN and LSGAN
    "r1": {"variant": "symmetric", "r1_gamma": 1.0},
    "sn_r1": {"variant": "symmetric", "spectral_norm": True, "r1_gamma": 1.0},
}
METRICS = ("frechet_distance", "kid", "precision", "recall", "mode_coverage",
           "mode_coverage_real", "wall_s")


def run(name: str, seed: int, args: argparse.Namespace) -> dict:
    """Train (unless already trained) and score one setting at one seed."""
    cfg = DCGANConfig(**{**SETTINGS[name], "seed": seed, "repair_steps": 0})
    out = args.out / f"{name}_s{seed}"
    summary_file = out / "summary.json"
    if not summary_file.exists():
        if args.score_only:
            raise SystemExit(f"{out} is not trained; run without --score-only")
        t0 = time.perf_counter()
        summary = train("dcgan", cfg, args.data, out)
        summary["wall_s"] = round(time.perf_counter() - t0, 1)
        summary_file.write_text(json.dumps(summary))
    summary = json.loads(summary_file.read_text())
    grid = sorted((out / "samples").glob("step_*.png"))[-1]
    images = args.out / "grids"
    images.mkdir(parents=True, exist_ok=True)
    shutil.copy(grid, images / f"{name}_s{seed}.png")
    if args.classifier is None:
        return {"wall_s": summary["wall_s"]}
    data = open_dataset(args.data)
    generator = DCGAN.restore(cfg, data, out).sampler()
    classifier, values = load_classifier(args.classifier)
    metrics = evaluate_generator(generator, {"nz": str(cfg.nz), "latent": "normal"}, data,
                                 classifier, values, n=args.n)
    metrics["wall_s"] = summary["wall_s"]
    (out / "metrics.json").write_text(json.dumps(metrics))
    print(f"{name} seed {seed}: " + ", ".join(f"{k} {metrics.get(k)}" for k in METRICS),
          flush=True)
    return metrics


def cell(values: list[float], digits: int) -> str:
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--classifier", type=Path, default=None,
                    help="attribute_classifier.pt (without it: train only)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/demo_quality"))
    ap.add_argument("--settings", nargs="+", default=["today", "tc_hinge_sn_ema_1000"],
                    choices=tuple(SETTINGS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--n", type=int, default=1000, help="generated images scored")
    ap.add_argument("--score-only", action="store_true")
    args = ap.parse_args()
    results = {name: [run(name, seed, args) for seed in args.seeds] for name in args.settings}
    print(f"\n| setting | seeds | {' | '.join(METRICS)} |")
    print("|---" * (len(METRICS) + 2) + "|")
    for name, rows in results.items():
        cells = [cell([r[k] for r in rows], 1 if k in ("frechet_distance", "wall_s") else 3)
                 if all(k in r for r in rows) else "-" for k in METRICS]
        print(f"| {name} | {len(rows)} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
