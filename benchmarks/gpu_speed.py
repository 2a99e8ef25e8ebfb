"""Training speed on the GPU present: images/s of DCGAN-64 and of every other family at the
full profile's batch, bf16 and fp32, through the training frame itself (training.loop.train).

Each measurement trains `--warmup` steps, then resumes the same run folder to
warmup + `--steps`, so the figure (the resumed run's images_per_s) leaves out cuDNN's
autotuning and the first allocations. A family whose data the synthetic packshot store cannot
give (paired or segmentation stores, text descriptions) is listed as skipped with the reason;
`--store assets_store` trains every family on a make-run store's data instead.
On a machine without CUDA it exits with status 2 and says so: the figures are GPU figures.

    make bench-gpu    # or: python benchmarks/gpu_speed.py --steps 50 --warmup 10 [--store DIR]
"""

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

NO_GPU = ("benchmarks/gpu_speed.py measures GPU training speed, and this machine has no CUDA "
          "GPU (torch.cuda.is_available() is False). Run it where a GPU is present; CPU "
          "figures are benchmarks/dcgan_speed.py's and classic_speed.py's.")


def measure(family, cfg, data: Path, work: Path, warmup: int, steps: int) -> float:
    """images/s of the steps after the warm-up (the resumed run's own figure)."""
    from training.loop import train

    out = work / f"{family.name}-{'bf16' if cfg.bf16 else 'fp32'}"
    train(family, replace(cfg, steps=warmup), data, out)
    summary = train(family, replace(cfg, steps=warmup + steps), data, out)
    return float(summary["images_per_s"])


def run(steps: int, warmup: int, families: list[str] | None,
        store: Path | None = None) -> list[dict]:
    from benchmarks.classic_speed import synthetic_store
    from training.family import load_families
    from training.paths import StoreLayout

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if store:  # a make-run store: every dataset, the classifier and the catalogue's labels
            layout = StoreLayout(store)
        else:
            layout = StoreLayout(Path(tmp) / "store")
            layout.datasets_dir.mkdir(parents=True)
            synthetic_store(layout.packshots, 2048)
        chosen = {n: f for n, f in load_families().items()
                  if f.kind != "classifier" and (not families or n in families)}
        order = sorted(chosen, key=lambda n: (n != "dcgan", n))  # DCGAN-64 first
        for name in order:
            family = chosen[name]
            row = {"family": name}
            try:
                data = layout.dataset(family.data_store)
                if not data.exists():
                    raise ValueError(f"needs the {family.data_store} store ({data})")
                base = family.Config.profile("full", sample_every=10**9,
                                             checkpoint_every=10**9, log_every=10**9)
                base = family.from_store(base, layout)
                row["batch"] = base.batch_size
                row["image_size"] = getattr(base, "image_size", None) or 64
                for bf16 in (True, False):
                    cfg = replace(base, bf16=bf16)
                    row["bf16" if bf16 else "fp32"] = round(
                        measure(family, cfg, data, Path(tmp) / "runs", warmup, steps), 1)
            except Exception as e:  # noqa: BLE001 - one family's failure is a row, not the end
                row["skipped"] = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def markdown(rows: list[dict], card: str) -> str:
    lines = [f"GPU: {card}, torch {torch.__version__}", "",
             "| family | batch | size | bf16 images/s | fp32 images/s |", "|---|---|---|---|---|"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['family']} | | | skipped: {r['skipped']} | |")
        else:
            lines.append(f"| {r['family']} | {r['batch']} | {r['image_size']} | {r['bf16']} | "
                         f"{r['fp32']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=50, help="measured steps per run")
    ap.add_argument("--warmup", type=int, default=10, help="steps before measuring")
    ap.add_argument("--families", nargs="*", help="only these (default: every family)")
    ap.add_argument("--out", type=Path, help="also write the table (markdown) here")
    ap.add_argument("--store", type=Path, help="a make-run store (assets_store) to train on "
                    "instead of the synthetic packshots: every family then has its data")
    args = ap.parse_args(argv)
    if args.store and not (args.store / "datasets" / "packshots.h5").is_file():
        ap.error(f"--store {args.store}: no datasets/packshots.h5 there (make run writes it)")
    if not torch.cuda.is_available():
        print(NO_GPU, file=sys.stderr)
        return 2
    card = torch.cuda.get_device_name()
    table = markdown(run(args.steps, args.warmup, args.families, args.store), card)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
