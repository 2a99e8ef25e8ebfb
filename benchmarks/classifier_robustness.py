"""The fashion-MNIST study's experiment on this project's data: the dense, conv and multihead
classifiers, their held-out accuracy per head, and accuracy against ε under FGSM, FGSM on the
garment only and PGD.

    python benchmarks/classifier_robustness.py [--data FILE] [--steps 400] [--n 1000]
        [--eps 0,0.01,0.02,0.05,0.1,0.2,0.3] [--pgd-steps 10] [--adversarial pgd]
        [--fashion-mnist FOLDER] [--bf16-check] [--out DIR]

On datasets/packshots.h5 (make run first; --data names another store, label columns: the
catalogue's eight that it has): each architecture is trained on the frame (training.loop,
demo profile, --steps, seed 0, a 0.2 holdout), then swept on n held-out images (fewer if the
holdout is smaller). --adversarial fgsm|pgd also trains the conv network adversarially
(adv_eps 0.05) for its curve against the plain one. --fashion-mnist FOLDER (the four IDX files)
trains dense and conv on its 60k training images and scores the t10k test files: the study
reports 88% (dense) and 90% (conv). --bf16-check repeats every sweep under bf16 autocast and
prints the largest accuracy difference (the sweep may use bf16 where it stays within 0.5
points). Prints the held-out accuracies, the sweep's wall time per classifier, the table (mean
over heads, one column per ε) and writes robustness.png and robustness.csv to --out.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import h5py
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.families.classifier import (  # noqa: E402
    CATALOGUE_COLUMNS,
    Classifier,
    ClassifierConfig,
)
from training.loop import train  # noqa: E402
from training.robustness import EPS, check_eps, curves_png, sweep, wide  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "assets_store" / "datasets" / "packshots.h5"


def store_columns(path: Path) -> list[str]:
    """The catalogue's label columns this store has."""
    with h5py.File(path, "r") as f:
        names = [str(n) for n in f.attrs.get("label_names", [])]
    return [c for c in CATALOGUE_COLUMNS if any(n.startswith(f"{c}_") for n in names)]


def trained(cfg: ClassifierConfig, data: Path, out: Path) -> tuple[Classifier, dict]:
    from training.datasets import open_dataset

    summary = train("classifier", cfg, data, out)
    dataset = open_dataset(data, **Classifier.data_options(cfg))
    return Classifier.restore(cfg, dataset, out), summary


def parse_eps(text: str) -> list[float]:
    try:
        return check_eps([float(s) for s in text.split(",") if s.strip()])
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA, help="the HDF5 store (packshots)")
    ap.add_argument("--steps", type=int, default=400, help="training steps per classifier")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--eps", type=parse_eps, default=list(EPS), help="comma-separated ε")
    ap.add_argument("--n", type=int, default=1000, help="held-out images swept")
    ap.add_argument("--pgd-steps", type=int, default=10)
    ap.add_argument("--adversarial", choices=("", "fgsm", "pgd"), default="",
                    help="also train conv adversarially (adv_eps 0.05)")
    ap.add_argument("--fashion-mnist", type=Path, default=None,
                    help="a Fashion-MNIST folder: dense and conv test accuracy")
    ap.add_argument("--bf16-check", action="store_true",
                    help="repeat each sweep under bf16 autocast, print the largest difference")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/classifier_robustness"))
    args = ap.parse_args()
    columns = store_columns(args.data)
    if not columns:
        ap.error(f"{args.data} has no label column of {', '.join(CATALOGUE_COLUMNS)}")
    runs = [("dense", "dense", ""), ("conv", "conv", ""), ("multihead", "multihead", "")]
    if args.adversarial:
        runs.append((f"conv+{args.adversarial}", "conv", args.adversarial))
    tables, lines = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, arch, adversarial in runs:
            cfg = ClassifierConfig(arch=arch, label_columns=columns, steps=args.steps,
                                   batch_size=args.batch_size, adversarial=adversarial,
                                   sample_every=10 ** 6, checkpoint_every=10 ** 6,
                                   pgd_steps=args.pgd_steps)
            family, summary = trained(cfg, args.data, Path(tmp) / name)
            images, targets = family.heldout(args.n)
            net = family.classifier().float().cpu().eval()
            t0 = time.perf_counter()
            table = sweep(net, (images, targets), columns, args.eps, n=args.n,
                          pgd_steps=args.pgd_steps)
            sweep_s = time.perf_counter() - t0
            table.insert(0, "model", name)
            tables.append(table)
            line = (f"| {name} | {summary['wall_s']:.0f} | {summary['mean_heldout_accuracy']:.3f}"
                    f" | {len(images)} | {sweep_s:.1f} |")
            if args.bf16_check:
                t0 = time.perf_counter()
                low = sweep(net, (images, targets), columns, args.eps, n=args.n,
                            pgd_steps=args.pgd_steps, bf16=True)
                diff = (low["accuracy"] - table["accuracy"]).abs().max() * 100
                line += f" {time.perf_counter() - t0:.1f} | {diff:.2f} |"
            lines.append(line)
            print(line, f"held-out per head: {summary['heldout_accuracy']}", flush=True)
        if args.fashion_mnist:
            for arch in ("dense", "conv"):
                cfg = ClassifierConfig(arch=arch, label_columns=["class"], steps=args.steps,
                                       batch_size=args.batch_size, flip=False,
                                       test_data=str(args.fashion_mnist),
                                       sample_every=10 ** 6, checkpoint_every=10 ** 6)
                summary = train("classifier", cfg, args.fashion_mnist,
                                Path(tmp) / f"fm_{arch}")
                print(f"Fashion-MNIST {arch}: test accuracy "
                      f"{summary['heldout_accuracy']['class']:.3f} on "
                      f"{summary['heldout_images']} test images "
                      f"(the study: {'88%' if arch == 'dense' else '90%'})", flush=True)
    table = pd.concat(tables, ignore_index=True)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "robustness.csv", index=False)
    png = curves_png(table, args.out / "robustness.png",
                     f"{args.data.name}: accuracy against ε (mean over heads)")
    head = "| classifier | train s | held-out accuracy (mean over heads) | images swept | " \
           "sweep s |"
    if args.bf16_check:
        head += " sweep s (bf16) | largest difference bf16 (points) |"
    print("\n" + head + "\n|" + "---|" * (head.count("|") - 1) + "\n" + "\n".join(lines))
    print(f"\nsweep total {sum(float(x.split('|')[5]) for x in lines):.1f} s\n")
    print(wide(table).reset_index().to_markdown(index=False, floatfmt=".3f"))
    print(f"\n{png}")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
