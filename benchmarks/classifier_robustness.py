"""The fashion-MNIST study's experiment on this project's data: the dense, conv and multihead
classifiers, their held-out accuracy per head on the catalogue's test split, and accuracy
against ε under FGSM, FGSM on the garment only and PGD, with the sweep's wall time.

    python benchmarks/classifier_robustness.py [--demo 5000 --test-fraction 0.2 | --data FILE]
        [--steps 300] [--n 1000] [--eps 0,0.01,0.02,0.05,0.1,0.2,0.3] [--pgd-steps 5]
        [--pgd-compare 10] [--pgd-nesting] [--adversarial pgd] [--fashion-mnist FOLDER]
        [--bf16-check]
        [--threads N] [--out DIR]

Data: --data names a packshot store (datasets/packshots.h5 after make run: 1% test split,
too small to measure on the demo's ~200 products), or --demo N draws N demo-shop products in
memory as the shop draws its packshots (white-padded square, 64x64 like packshot_store, the
42 one-hot labels from the products' truth) and splits them with the catalogue's own
assign_splits (stratified by category x colour) with --test-fraction test. Either way the
classifiers train on the train and val splits (training.loop, demo profile, --steps, seed 0)
and are scored per head on the test split (the family's test_data), then swept on its first
--n images. A store without a split falls back to the family's seeded 0.2 holdout.

The sweep is training.robustness.sweep as the classifier_robustness asset runs it: fp32 (no
native bf16 on an AVX2-only CPU: emulated bf16 is ~10x slower), scoring under
torch.inference_mode, the FGSM direction computed once per image for every ε and both FGSM
variants, PGD (random start, --pgd-steps steps of α = 2.5 ε / steps) counting an image broken
as soon as any iterate misclassifies it and dropping it once every head is broken, the
multihead network in channels_last (training.robustness.prepared). --pgd-compare K repeats the
PGD curve with K steps on min(n, 200) images and prints the largest accuracy difference (is
--pgd-steps enough?). --pgd-nesting times the PGD curve as the sweep runs it (ε ascending, an
image broken at a smaller ε not attacked again) against each ε on its own, and prints both
times and the largest difference of the mean accuracy. --adversarial fgsm|pgd also trains conv
adversarially (adv_eps 0.05) for its curve against the plain one. --fashion-mnist FOLDER
trains dense and conv on its 60k training images and scores the t10k test files (the study:
88% dense, 90% conv). Prints the CPU, the load average, held-out accuracies, the sweep time per
classifier and the table (mean over heads, one column per ε); writes robustness.png and
robustness.csv to --out.
"""

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.families.classifier import (  # noqa: E402
    CATALOGUE_COLUMNS,
    Classifier,
    ClassifierConfig,
)
from training.loop import train  # noqa: E402
from training.robustness import (  # noqa: E402
    EPS,
    check_eps,
    curves_png,
    prepared,
    sweep,
    wide,
)

DATA = Path(__file__).resolve().parent.parent / "assets_store" / "datasets" / "packshots.h5"


def cpu_model() -> str:
    """The CPU's model name and the vector extensions that matter here."""
    name, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    ext = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{name}, {os.cpu_count()} cores, {'/'.join(ext) or 'no AVX2'}"


def demo_store(path: Path, n: int, test_fraction: float, seed: int = 0) -> Path:
    """n demo products' packshots drawn in memory, padded white to a square and resized to
    64x64 as the catalogue and packshot_store do, their truth as the 42 one-hot labels and a
    split from the catalogue's assign_splits."""
    from PIL import Image, ImageOps

    from pipelines.processing.catalogue import one_hot
    from pipelines.processing.h5store import write_image_store
    from pipelines.processing.splits import assign_splits
    from scrapers.demo_shop import draw
    from scrapers.demo_shop.catalog import make_catalog

    products = make_catalog(n, seed)
    images = np.empty((n, 64, 64, 3), np.uint8)
    for i, p in enumerate(products):
        square = ImageOps.pad(draw.packshot(p), (256, 256), color=(255, 255, 255))
        images[i] = np.asarray(square.resize((64, 64), Image.Resampling.LANCZOS))
    df = pd.DataFrame([{"id": p.id, "img_path": p.id, **p.truth} for p in products])
    labels = one_hot(df).drop(columns="img_path")
    split = assign_splits(df, 0.01, test_fraction, seed)
    return write_image_store(path, list(df["id"]), images, {
        "labels": labels.to_numpy(np.uint8),
        "split": split.map({"train": 0, "val": 1, "test": 2}).to_numpy(np.uint8)},
        attrs={"label_names": list(labels.columns), "split_names": ["train", "val", "test"]})


def split_store(path: Path, folder: Path) -> tuple[Path, Path | None]:
    """(training store: train + val, test store: the test split) of a store with a `split`;
    (the store, None) without one."""
    from pipelines.processing.h5store import write_image_store

    with h5py.File(path, "r") as f:
        if "split" not in f:
            return path, None
        split = f["split"][:]
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in f["ids"][:]]
        images, labels = f["images"][:], f["labels"][:]
        names = [str(n) for n in f.attrs["label_names"]]
    out = []
    for name, keep in (("train", split != 2), ("test", split == 2)):
        kept = [i for i, k in zip(ids, keep, strict=True) if k]
        out.append(write_image_store(folder / f"{name}.h5", kept, images[keep],
                                     {"labels": labels[keep]}, attrs={"label_names": names}))
    return out[0], out[1]


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


def pgd_nesting(net, images, targets, columns, args) -> str:
    """The PGD curve as the sweep runs it against each ε alone (books from the clean images
    either way): both times and the largest difference of the mean accuracy, in points."""
    t0 = time.perf_counter()
    nested = sweep(net, (images, targets), columns, args.eps, ("pgd",), n=args.n,
                   pgd_steps=args.pgd_steps)
    nested_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    alone = pd.concat([sweep(net, (images, targets), columns, (0.0, e), ("pgd",), n=args.n,
                             pgd_steps=args.pgd_steps) for e in args.eps if e > 0])
    alone_s = time.perf_counter() - t0
    mean = (nested[nested["head"] == "mean"].set_index("eps")["accuracy"]
            - alone[alone["head"] == "mean"].drop_duplicates("eps").set_index("eps")["accuracy"])
    return (f"PGD curve carried across ε {nested_s:.1f} s, each ε alone {alone_s:.1f} s "
            f"({alone_s / nested_s:.2f}x); mean accuracy lower by up to "
            f"{-mean.min() * 100:.1f} points")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA, help="the HDF5 store (packshots)")
    ap.add_argument("--demo", type=int, default=0,
                    help="draw a demo store of this many products instead of --data")
    ap.add_argument("--test-fraction", type=float, default=0.2,
                    help="--demo: the test split's share (the catalogue's default is 0.01)")
    ap.add_argument("--steps", type=int, default=300, help="training steps per classifier")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--eps", type=parse_eps, default=list(EPS), help="comma-separated ε")
    ap.add_argument("--n", type=int, default=1000, help="test images swept")
    ap.add_argument("--pgd-steps", type=int, default=5)
    ap.add_argument("--pgd-compare", type=int, default=0,
                    help="also PGD with this many steps on min(n, 200) images")
    ap.add_argument("--pgd-nesting", action="store_true",
                    help="time the PGD curve carried across ε against each ε alone")
    ap.add_argument("--adversarial", choices=("", "fgsm", "pgd"), default="",
                    help="also train conv adversarially (adv_eps 0.05)")
    ap.add_argument("--fashion-mnist", type=Path, default=None,
                    help="a Fashion-MNIST folder: dense and conv test accuracy")
    ap.add_argument("--bf16-check", action="store_true",
                    help="repeat each sweep under bf16 autocast, print the largest difference")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads (0: torch's default); on a box other jobs share, 1 "
                         "thread measured ~4x faster than 2 at a load average of 10")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/classifier_robustness"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    runs = [("dense", "dense", ""), ("conv", "conv", ""), ("multihead", "multihead", "")]
    if args.adversarial:
        runs.append((f"conv+{args.adversarial}", "conv", args.adversarial))
    tables, lines, pgd_lines = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        source = args.data
        if args.demo:
            t0 = time.perf_counter()
            source = demo_store(Path(tmp) / "demo.h5", args.demo, args.test_fraction)
            print(f"demo store: {args.demo} products in {time.perf_counter() - t0:.0f} s",
                  flush=True)
        columns = store_columns(source)
        if not columns:
            ap.error(f"{source} has no label column of {', '.join(CATALOGUE_COLUMNS)}")
        data, test = split_store(source, Path(tmp))
        for name, arch, adversarial in runs:
            cfg = ClassifierConfig(arch=arch, label_columns=columns, steps=args.steps,
                                   batch_size=args.batch_size, adversarial=adversarial,
                                   test_data=str(test or ""), sample_every=10 ** 6,
                                   checkpoint_every=10 ** 6, pgd_steps=args.pgd_steps)
            family, summary = trained(cfg, data, Path(tmp) / name)
            images, targets = family.heldout(args.n)
            net = prepared(family.classifier())
            t0 = time.perf_counter()
            table = sweep(net, (images, targets), columns, args.eps, n=args.n,
                          pgd_steps=args.pgd_steps)
            sweep_s = time.perf_counter() - t0
            table.insert(0, "model", name)
            tables.append(table)
            heads = " ".join(f"{c} {a:.2f}" for c, a in summary["heldout_accuracy"].items())
            line = (f"| {name} | {summary['wall_s']:.0f} | {summary['mean_heldout_accuracy']:.3f}"
                    f" | {heads} | {len(images)} | {sweep_s:.1f} |")
            if args.bf16_check:
                t0 = time.perf_counter()
                low = sweep(net, (images, targets), columns, args.eps, n=args.n,
                            pgd_steps=args.pgd_steps, bf16=True)
                diff = (low["accuracy"] - table["accuracy"]).abs().max() * 100
                line += f" {time.perf_counter() - t0:.1f} | {diff:.2f} |"
            lines.append(line)
            print(line, f"(held out: {summary['heldout_from']}, load average "
                        f"{os.getloadavg()[0]:.1f})", flush=True)
            if args.pgd_compare:
                k = min(args.n, 200)
                few, many = (sweep(net, (images[:k], {c: t[:k] for c, t in targets.items()}),
                                   columns, args.eps, ("pgd",), n=k, pgd_steps=s)
                             for s in (args.pgd_steps, args.pgd_compare))
                mean = many["head"] == "mean"
                diff = (few["accuracy"] - many["accuracy"])[mean].abs().max() * 100
                pgd_lines.append(f"{name}: PGD {args.pgd_steps} vs {args.pgd_compare} steps on "
                                 f"{k} images: largest difference of the mean accuracy "
                                 f"{diff:.1f} points")
                print(pgd_lines[-1], flush=True)
            if args.pgd_nesting:
                pgd_lines.append(f"{name}: {pgd_nesting(net, images, targets, columns, args)}")
                print(pgd_lines[-1], flush=True)
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
                     f"{'demo' if args.demo else args.data.name}: accuracy against ε "
                     "(mean over heads)")
    head = "| classifier | train s | test accuracy (mean over heads) | per head | images " \
           "swept | sweep s |"
    if args.bf16_check:
        head += " sweep s (bf16) | largest difference bf16 (points) |"
    print("\n" + head + "\n|" + "---|" * (head.count("|") - 1) + "\n" + "\n".join(lines))
    print(f"\nsweep total {sum(float(x.split('|')[6]) for x in lines):.1f} s "
          f"(load average {os.getloadavg()[0]:.1f})\n")
    print("\n".join(pgd_lines))
    print(wide(table).reset_index().to_markdown(index=False, floatfmt=".3f"))
    print(f"\n{png}")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
