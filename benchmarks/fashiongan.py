"""The two-stage FashionGAN against the single-GAN baseline, and the study's tricks ablated:
body coherence, the description-swap rates and the Fréchet distance per stage
(training/fashiongan_metrics.py), every setting at every seed through the frame's train().

    python benchmarks/fashiongan.py --data STORE/datasets/segmentation.h5 \
        --descriptions STORE/datasets/descriptions.h5 \
        --classifier STORE/models/attribute_classifier.pt --parser STORE/models/human_parser.pt \
        --attributes STORE/datasets/packshots.h5 --settings two_stage single --seeds 0 1 2 \
        --steps 300 --out /tmp/fashiongan_bench

Each setting is the family's demo profile plus its overrides plus the size flags given here
(--steps, --image-size, --ngf, --ndf): `two_stage` and `single` are the families' demo
profiles, `all_tricks` the two-stage model with every trick of the study on (the cyclic lr
too), `no_<trick>` with one of them off, `batch_32` without the small batch, `no_tricks` with
none of them, `g2_on_generated` stage 2 trained on G1's maps, `ce_100` G1's cross-entropy
weighted 100.
Runs already in --out are only read again. Prints one markdown row per setting (mean over the
seeds, ± half the spread when several) and writes results.json beside the runs.
"""

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import cpu_model  # noqa: E402
from training.family import get_family  # noqa: E402
from training.loop import train  # noqa: E402

TRICKS_OFF = {"cyclic_lr": False, "lazy_d": False, "soft_labels": False,
              "noisy_labels": False, "noisy_d_input": False, "weighted_d_loss": False}
ALL_ON = {trick: True for trick in TRICKS_OFF}  # the family's defaults (the demo: no cyclic lr)
SETTINGS: dict[str, tuple[str, dict]] = {
    "two_stage": ("fashiongan", {}),
    "single": ("fashiongan_single", {}),
    # the ablation: every trick on, then one off at a time
    "all_tricks": ("fashiongan", ALL_ON),
    **{f"no_{trick}": ("fashiongan", {**ALL_ON, trick: False}) for trick in TRICKS_OFF},
    "batch_32": ("fashiongan", {**ALL_ON, "batch_size": 32}),
    "no_tricks": ("fashiongan", {**TRICKS_OFF, "batch_size": 32}),
    "g2_on_generated": ("fashiongan", {"g2_input": "generated"}),
    "ce_100": ("fashiongan", {"lambda_ce": 100.0}),
}
COLUMNS = (("body_miou", "body mIoU", 3), ("body_miou_real", "parser on photos", 3),
           ("coherence_miou", "parse vs stage 1", 3), ("stage1_miou", "stage 1 vs map", 3),
           ("swap_rate_diag", "swap diag", 2), ("swap_rate_off", "swap off", 2),
           ("swap_color_kept", "colour kept", 2), ("fd_image", "FD image", 1),
           ("fd_stage1", "FD stage 1", 1), ("fd_stage2", "FD stage 2", 1),
           ("wall_s", "wall s", 0))



def run(name: str, seed: int, args: argparse.Namespace) -> dict:
    """Train (unless already trained) one setting at one seed; its measures and wall time."""
    family, overrides = SETTINGS[name]
    sizes = {k: getattr(args, k) for k in ("steps", "image_size", "ngf", "ndf")}
    files = {"descriptions": str(args.descriptions),
             "fd_classifier": str(args.classifier or ""),
             "parser": str(args.parser or ""), "attributes": str(args.attributes or "")}
    cfg = get_family(family).Config.profile(
        "demo", **{**sizes, **files, **overrides, "seed": seed})
    out = args.out / f"{name}_s{seed}"
    summary_file = out / "summary.json"
    if not summary_file.exists():
        t0 = time.perf_counter()
        summary = train(family, cfg, args.data, out)
        summary["wall_s"] = round(time.perf_counter() - t0, 1)  # the measures included
        summary["config"] = asdict(cfg)
        summary_file.write_text(json.dumps(summary))
    summary = json.loads(summary_file.read_text())
    images = args.out / "images"
    images.mkdir(parents=True, exist_ok=True)
    for png in ("swap_matrix.png", "stages.png"):
        if (out / png).exists():
            shutil.copy(out / png, images / f"{name}_s{seed}_{png}")
    row = {**summary["measures"], "wall_s": summary["wall_s"]}
    print(f"{name} seed {seed}: " + ", ".join(f"{k} {row.get(k)}" for k, _, _ in COLUMNS),
          flush=True)
    return row


def cell(values: list[float], digits: int) -> str:
    values = [v for v in values if v is not None and v == v]
    if not values:
        return "–"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {(max(values) - min(values)) / 2:.{digits}f}"


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="datasets/segmentation.h5")
    ap.add_argument("--descriptions", type=Path, required=True, help="datasets/descriptions.h5")
    ap.add_argument("--classifier", type=Path, help="attribute_classifier.pt (the FDs)")
    ap.add_argument("--parser", type=Path, help="human_parser.pt (body coherence)")
    ap.add_argument("--attributes", type=Path, help="packshots.h5 (the swap matrix's targets)")
    ap.add_argument("--settings", nargs="+", default=["two_stage", "single"],
                    choices=list(SETTINGS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--ngf", type=int, default=16)
    ap.add_argument("--ndf", type=int, default=16)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    print(f"CPU: {cpu_model()}", flush=True)
    results = []
    for name in args.settings:
        rows = [run(name, seed, args) for seed in args.seeds]
        results.append({"setting": name, "seeds": args.seeds, "rows": rows})
    (args.out / "results.json").write_text(json.dumps(
        {"cpu": cpu_model(), "args": {k: str(v) for k, v in vars(args).items()},
         "results": results}, indent=1))
    print(f"\n| setting | seeds | {' | '.join(title for _, title, _ in COLUMNS)} |")
    print(f"|---|---|{'---|' * len(COLUMNS)}")
    for r in results:
        cells = [cell([row.get(k) for row in r["rows"]], d) for k, _, d in COLUMNS]
        print(f"| {r['setting']} | {len(r['seeds'])} | {' | '.join(cells)} |")
    return results


if __name__ == "__main__":
    main()
