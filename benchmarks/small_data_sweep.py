"""Small-data settings of any generator family, several at a time, scored as the leaderboard
scores them: where a family's demo profile is searched for before it is confirmed.

    python benchmarks/small_data_sweep.py --data STORE/datasets/packshots.h5 \
        --classifier STORE/models/attribute_classifier.pt --jobs 4 --out /tmp/sweep \
        --run "wgan backbone=infogan steps=10000 d_norm=batch" \
        --run "dcgan steps=1200 ngf=16 ndf=16 spectral_norm=true r1_gamma=1" [--seeds 0 1]
        [--runs-file benchmarks/sweeps/small_data_gpu.txt]

Each --run is a family name and OPTION=VALUE pairs over that family's `demo` profile (a
`seed=` among them replaces --seeds for that run). Every
(run, seed) trains in its own process (`--jobs` at a time, each with its share of the cores, one
thread at least; on a GPU they share it), is restored from its run folder and scored by
training.evaluation.evaluate_generator on 1,000 samples drawn with seed 0 (`--score-seed`), as
the leaderboard draws them. Prints one JSON row per run as it finishes and a markdown table at
the end (rows in the order given); `--out` keeps the rows (rows.jsonl) and each run's last
sample grid (grids/). The quality figures do not depend on the machine's load; wall times do.
"""

import argparse
import dataclasses
import json
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.collection_replication import parse_options, train_and_score  # noqa: E402

METRICS = ("frechet_distance", "kid", "precision", "recall", "mode_coverage",
           "mode_coverage_real", "conditional_accuracy", "wall_s")


def parse_run(text: str) -> tuple[str, dict]:
    """"wgan steps=10000 d_norm=batch" -> ("wgan", {"steps": 10000, "d_norm": "batch"})."""
    family, *pairs = text.split()
    return family, parse_options(pairs)


def run_one(family_name: str, options: dict, seed: int, data_path: str,
            classifier_path: str, out: str, samples: int, score_seed: int,
            threads: int) -> dict:
    """One run in a fresh process: the demo profile + options, trained and scored by
    collection_replication.train_and_score; the wall time is the training's. `threads` is
    the process's share of the cores, on a GPU too: 15 runs of 16 threads each on a 16-core
    GPU host finished none of 30 runs in 400 s (load average 210), each run's Python thread
    starved of the core that launches its kernels."""
    import torch

    torch.set_num_threads(threads)
    from training.classifier import load_classifier
    from training.datasets import H5ImageDataset
    from training.family import get_family

    seed = int(options.pop("seed", seed))  # a run's own seed= wins over --seeds
    cfg = get_family(family_name).Config.profile("demo", **{**options, "seed": seed,
                                                            "checkpoint_every": 10**9})
    cfg = dataclasses.replace(cfg, sample_every=cfg.steps)  # one grid, at the end
    run_dir = Path(out) / "runs" / f"{label(family_name, options)}_s{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)
    classifier, values = load_classifier(Path(classifier_path))
    summary, scores = train_and_score(family_name, cfg, Path(data_path), run_dir,
                                      H5ImageDataset(Path(data_path)), classifier, values,
                                      samples, score_seed)
    grids = Path(out) / "grids"
    grids.mkdir(parents=True, exist_ok=True)
    last = sorted((run_dir / "samples").glob("*.png"))
    if last:
        shutil.copy(last[-1], grids / f"{label(family_name, options)}_s{seed}.png")
    return {"family": family_name, "options": options, "seed": seed, **scores,
            "images_per_s": summary["images_per_s"], "device": summary.get("device"),
            "wall_s": round(summary["wall_s"], 1)}


def label(family: str, options: dict) -> str:
    """A file-name-safe name of a run: family and its options."""
    parts = [family] + [f"{k}-{v}" for k, v in options.items()]
    return "_".join(parts).replace(",", "+").replace("/", "-")


def table(rows: list[dict], order: list[str]) -> str:
    """Mean (± sd over seeds) per run, in the order the runs were given."""
    import statistics

    lines = ["| run | seeds | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 2) + "|"]
    for name in order:
        group = [r for r in rows if r["label"] == name]
        if not group:
            continue
        cells = []
        for m in METRICS:
            vals = [r[m] for r in group if r.get(m) is not None]
            if not vals:
                cells.append("–")
                continue
            digits = 1 if m in ("frechet_distance", "wall_s") else 3
            spread = f" ± {statistics.stdev(vals):.{digits}f}" if len(vals) > 1 else ""
            cells.append(f"{statistics.fmean(vals):.{digits}f}{spread}")
        lines.append(f"| {name} | {len(group)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--classifier", type=Path, required=True)
    ap.add_argument("--run", action="append", default=[], metavar="'FAMILY OPTION=VALUE ...'")
    ap.add_argument("--runs-file", type=Path,
                    help="more runs, one per line as --run takes them (# starts a comment)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--score-seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("/tmp/small_data_sweep"))
    args = ap.parse_args()
    lines = args.run + ([line.split("#")[0].strip() for line in
                         args.runs_file.read_text().splitlines()] if args.runs_file else [])
    runs = [parse_run(line) for line in lines if line]
    if not runs:
        raise SystemExit("nothing to run: give --run or --runs-file")
    args.out.mkdir(parents=True, exist_ok=True)
    order = [label(f, o) for f, o in runs]
    rows = []
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(run_one, f, o, s, str(args.data), str(args.classifier),
                               str(args.out), args.samples, args.score_seed,
                               max(1, (os.cpu_count() or 1) // args.jobs)): label(f, o)
                   for f, o in runs for s in args.seeds}
        with open(args.out / "rows.jsonl", "a") as log:
            for future in as_completed(futures):
                try:
                    row = {"label": futures[future], **future.result()}
                except Exception as exc:  # one bad setting must not lose the others' rows
                    row = {"label": futures[future], "error": repr(exc)}
                rows.append(row)
                print(json.dumps(row), flush=True)
                log.write(json.dumps(row) + "\n")
                log.flush()  # a sweep cut short keeps the rows it finished
    print()
    print(table([r for r in rows if "error" not in r], order))


if __name__ == "__main__":
    main()
