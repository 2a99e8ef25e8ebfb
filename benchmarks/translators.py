"""The image-to-image translators (issue 11) at their demo profiles, every seed: each asset of
train_job (pix2pix both ways, colourisation and recolouring, CycleGAN packshot|person and short|
long sleeves, MUNIT, StarGAN, Fader networks) trained by the frame's train() and scored exactly
as its asset scores it (pipelines/assets/training.py train_and_register: the family's report,
then training.translation_metrics.evaluate_translator on the family's evaluation set, 1,000
inputs at most, seed 0, in the attribute classifier's space).

    python benchmarks/translators.py --paired STORE/datasets/paired_images.h5 \
        --packshots STORE/datasets/packshots.h5 --crops STORE/datasets/person_crops.h5 \
        --classifier STORE/models/attribute_classifier.pt --seeds 0 1 2 --out /tmp/i2i_fig

--paired is built from --packshots and --crops (training.paired.build_paired_store, as the
paired_images asset does) when it is missing. Runs already in --out are only read again. Prints
the CPU, one line per setting and seed, then per family a markdown table of its declared
measures (mean over the seeds, ± half the spread; the main measure's cell in bold, arrows for
lower/higher is better) and wall seconds, under each paired setting the mean target image
answered to every input (L1, PSNR, SSIM of a translator that ignores its input), and per edit
(StarGAN, Fader, the colour edits, CycleGAN between sleeve lengths) its success beside chance
(1 / the classifier's values of the column) and beside the unedited inputs' rate (the same
measure on the untouched inputs: what an edit that does nothing scores) and the judge on real
(how often the classifier reads the true value of real held-out images: what a perfect edit
could reach). Writes results.json and the report sheets beside the runs.
"""

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import cpu_model  # noqa: E402
from training.classifier import load_classifier  # noqa: E402
from training.datasets import open_dataset  # noqa: E402
from training.family import Family, get_family  # noqa: E402
from training.loop import train  # noqa: E402
from training.paired import build_paired_store  # noqa: E402
from training.translation_metrics import Edit, evaluate_translator  # noqa: E402

# the asset's evaluation: GANAssetConfig's eval_samples and eval_seed defaults
EVAL_SAMPLES, EVAL_SEED = 1000, 0
TRANSLATORS = ("pix2pix", "colorization", "cyclegan", "munit", "stargan", "fader")


def settings() -> dict[str, tuple[str, str]]:
    """{asset name: (family, variant)}: one per translator asset train_job has (the
    families' variants, as pipelines.assets.training.build_family_assets names them)."""
    out = {}
    for name in TRANSLATORS:
        for variant in get_family(name).variants or {"": {}}:
            out[f"{name}_{variant}" if variant else name] = (name, variant)
    return out


SETTINGS = settings()
TITLES = {"l1": ("L1", 3, "↓"), "psnr": ("PSNR dB", 2, "↑"), "ssim": ("SSIM", 3, "↑"),
          "frechet_distance": ("FD", 1, "↓"), "frechet_distance_b2a": ("FD B→A", 1, "↓"),
          "cycle_l1_a": ("cycle L1 A", 3, "↓"), "cycle_l1_b": ("cycle L1 B", 3, "↓"),
          "edit_success": ("edit success", 2, "↑"), "edit_success_b2a": ("edit success B→A", 2,
                                                                          "↑"),
          "preservation": ("preservation", 2, "↑"), "identity_l1": ("identity L1", 3, "↓"),
          "diversity": ("diversity", 2, "↑")}


class Unchanged(nn.Module):
    """A translator that returns its input (ignoring a condition): evaluate_translator on it
    gives the edit success of the untouched inputs, the rate an edit must beat."""

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        return x


class MeanImage(nn.Module):
    """A translator that answers every input with one image (the mean of the real target-domain
    images): the L1, PSNR and SSIM a paired translator must beat to carry anything of its
    input (the demo's plain backgrounds alone score well on them)."""

    def __init__(self, image: torch.Tensor):
        super().__init__()
        self.register_buffer("image", image)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        return self.image.expand(len(x), -1, -1, -1)



def evaluation_sets(model: Family) -> list[tuple[str, dict]]:
    """(metric suffix, evaluate_translator arguments): the asset's set, and CycleGAN's reverse
    direction (its report's _b2a measures) when the family has one."""
    sets = [("", model.evaluation_set(EVAL_SAMPLES, EVAL_SEED))]
    if hasattr(model, "reverse_set"):
        sets.append(("_b2a", model.reverse_set(EVAL_SAMPLES)))
    return sets


def edit_baselines(model: Family, classifier, values: dict[str, list[str]]) -> dict:
    """Per edit (its metric name): the column, chance (1 / the classifier's values of the
    column) and the unedited inputs' edit success (evaluate_translator on Unchanged)."""
    out = {}
    for suffix, ev in evaluation_sets(model):
        edits = list(ev.get("edits") or [])
        if not edits or not len(ev["inputs"]):
            continue
        unedited = evaluate_translator(Unchanged(), ev["inputs"], classifier, values,
                                       edits=edits)
        for edit in edits:
            out[f"{edit.name}{suffix}"] = {
                "column": edit.column, "chance": round(1 / len(values[edit.column]), 5),
                "value": edit.value if isinstance(edit.value, str) else "",
                "unedited": unedited[f"edit_success_{edit.name}"]}
    return out


def mean_image_baseline(model: Family) -> dict[str, float]:
    """evaluate_translator's l1, psnr and ssim of MeanImage (the mean of the evaluation set's
    reference images) against the paired targets; {} for a translator without targets."""
    ev = model.evaluation_set(EVAL_SAMPLES, EVAL_SEED)
    if ev.get("targets") is None:
        return {}
    net = MeanImage(ev["reference"].float().mean(0, keepdim=True))
    return evaluate_translator(net, ev["inputs"], targets=ev["targets"])


def judge_on_real(model: Family, classifier, values: dict[str, list[str]]) -> dict[str, float]:
    """How often the classifier reads the true value on the family's real held-out images (the
    edit success an edit could reach with a perfect result): per column for the attribute
    editors and the colouriser, per `column=value` for CycleGAN between two values."""
    sets = []  # (key, images, column, the images' true values)
    if hasattr(model, "columns") and hasattr(model, "test_set"):  # StarGAN, Fader
        images, labels = model.test_set(EVAL_SAMPLES)
        sets += [(c, images, c, [model.values[c][j] for j in labels[:, i].tolist()])
                 for i, c in enumerate(model.columns)]
    elif hasattr(model, "test_images"):  # colourisation: the real colour packshots
        images, true = model.test_images(EVAL_SAMPLES)
        column = model.conditioning().get("label_columns", "color")
        sets.append((column, images, column, [model.values[j] for j in true.tolist()]))
    elif getattr(model.data, "domains", ("store",))[0] != "store":  # two label values
        column, a, b = model.data.domains
        for value, ev in ((a, model.evaluation_set(EVAL_SAMPLES)),
                          (b, model.reverse_set(EVAL_SAMPLES))):
            sets.append((f"{column}={value}", ev["inputs"], column, [value] * len(ev["inputs"])))
    out = {}
    for key, images, column, names in sets:
        if len(images):
            out[key] = evaluate_translator(Unchanged(), images, classifier, values, edits=[
                Edit("real", None, column, names)])["edit_success_real"]
    return out


def stores(args: argparse.Namespace) -> dict[str, Path]:
    """The data store each family's asset reads (Family.data_store), the paired one built as
    the paired_images asset builds it when missing."""
    if not args.paired.exists():
        if not (args.packshots and args.crops):
            raise SystemExit(f"{args.paired} is missing: give --packshots and --crops to "
                             "build it")
        args.paired.parent.mkdir(parents=True, exist_ok=True)
        counts = build_paired_store(args.packshots, args.crops, args.paired)
        print(f"built {args.paired}: {counts['pairs']} pairs (train {counts['train']}, val "
              f"{counts['val']}, test {counts['test']}, {counts['moved_to_test']} moved to "
              "test)", flush=True)
    return {"paired_images": args.paired, "packshots": args.packshots}


def run(name: str, seed: int, args: argparse.Namespace, data_files: dict[str, Path],
        judge: tuple) -> dict:
    """Train (unless already trained) one asset's setting at one seed and score it as its
    asset does; the summary with `scores`, `baselines`, the declared measures, wall times."""
    family_name, variant = SETTINGS[name]
    family = get_family(family_name)
    fixed = family.variants.get(variant, {}) if variant else {}
    cfg = family.Config.profile("demo", **{**fixed, "seed": seed, "steps": args.steps})
    # Family.from_store as the asset calls it: translators read the store's classifier there
    cfg = family.from_store(cfg, SimpleNamespace(attribute_classifier=args.classifier))
    source = data_files[family.data_store]
    if source is None:
        raise SystemExit(f"{name} trains on {family.data_store}.h5: give --{family.data_store}")
    out = args.out / f"{name}_s{seed}"
    summary_file = out / "summary.json"
    if not summary_file.exists():
        classifier, values = judge
        t0 = time.perf_counter()
        summary = train(family, cfg, source, out)
        # the asset's scoring: restore from the checkpoint, the family's report, then the
        # shared measures on its evaluation set
        data = open_dataset(source, **family.data_options(cfg))
        model = family.restore(cfg, data, out)
        family_metrics, _ = model.report(out, summary)
        scores = evaluate_translator(model.translator(), classifier=classifier, values=values,
                                     **model.evaluation_set(EVAL_SAMPLES, EVAL_SEED))
        summary["scores"] = {**family_metrics, **scores}
        summary["baselines"] = edit_baselines(model, classifier, values)
        summary["declared"] = {"measures": list(model.measures),
                               "main_measure": list(model.main_measure)}
        summary["train_s"] = summary["wall_s"]
        summary["wall_s"] = round(time.perf_counter() - t0, 1)  # training and scoring
        summary["config"] = asdict(cfg)
        summary_file.write_text(json.dumps(summary))
    summary = json.loads(summary_file.read_text())
    if "mean_image" not in summary:  # also for runs scored before the baseline was added
        data = open_dataset(source, **family.data_options(cfg))
        summary["mean_image"] = mean_image_baseline(family.restore(cfg, data, out))
        summary_file.write_text(json.dumps(summary))
    if "judge_on_real" not in summary:  # with the edits' values, for runs scored before
        model = family.restore(cfg, open_dataset(source, **family.data_options(cfg)), out)
        summary["judge_on_real"] = judge_on_real(model, *judge)
        summary["baselines"] = edit_baselines(model, *judge)
        summary_file.write_text(json.dumps(summary))
    images = args.out / "images"
    images.mkdir(parents=True, exist_ok=True)
    for png in ("translation.png", "recolour.png"):
        if (out / png).exists():
            shutil.copy(out / png, images / f"{name}_s{seed}_{png}")
    scores = summary["scores"]
    shown = [*summary["declared"]["measures"], "n_test"]
    print(f"{name} seed {seed}: " + ", ".join(f"{k} {scores.get(k)}" for k in shown)
          + f", wall {summary['wall_s']} s", flush=True)
    return {"scores": scores, "baselines": summary["baselines"],
            "declared": summary["declared"], "wall_s": summary["wall_s"],
            "train_s": summary["train_s"], "mean_image": summary["mean_image"],
            "judge_on_real": summary["judge_on_real"]}


def cell(values: list[float], digits: int) -> str:
    values = [v for v in values if v is not None and v == v]
    if not values:
        return "–"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {(max(values) - min(values)) / 2:.{digits}f}"


def family_table(family: str, results: list[dict]) -> list[str]:
    """The family's settings as rows, the union of their declared measures as columns."""
    mine = [r for r in results if SETTINGS[r["setting"]][0] == family]
    columns = list(dict.fromkeys(m for r in mine for m in r["rows"][0]["declared"]["measures"]))
    titles = [f"{TITLES.get(m, (m, 3, ''))[0]} {TITLES.get(m, (m, 3, ''))[2]}".strip()
              for m in columns]
    lines = [f"| {family} | seeds | n test | {' | '.join(titles)} | train s | wall s |",
             f"|---|---|---|{'---|' * (len(columns) + 2)}"]
    for r in mine:
        rows, main = r["rows"], r["rows"][0]["declared"]["main_measure"][0]
        cells = []
        for m in columns:
            text = cell([row["scores"].get(m) for row in rows], TITLES.get(m, (m, 3, ""))[1])
            cells.append(f"**{text}**" if m == main and text != "–" else text)
        n_test = "/".join(dict.fromkeys(f"{row['scores'].get('n_test', 0):.0f}"
                                        for row in rows))
        lines.append(f"| {r['setting']} | {len(rows)} | {n_test} | {' | '.join(cells)} | "
                     f"{cell([row['train_s'] for row in rows], 0)} | "
                     f"{cell([row['wall_s'] for row in rows], 0)} |")
        if rows[0].get("mean_image"):  # the constant answer a paired translator must beat
            base = [cell([row["mean_image"].get(m) for row in rows],
                         TITLES.get(m, (m, 3, ""))[1]) for m in columns]
            lines.append(f"| {r['setting']}: mean image | {len(rows)} | {n_test} | "
                         f"{' | '.join(base)} | – | – |")
    return lines


def edit_table(result: dict) -> list[str]:
    """Per edit of one setting: success (mean ± half spread) beside chance and the unedited
    inputs' rate, and the preservation of the other attributes."""
    rows = result["rows"]
    names = list(rows[0]["baselines"])
    if not names:
        return []
    lines = [f"| {result['setting']}: edit | column | success ↑ | chance | unedited | "
             "judge on real | preservation ↑ |", "|---|---|---|---|---|---|---|"]
    for name in names:
        base = rows[0]["baselines"][name]
        keys = (f"edit_success_{name}", f"preservation_{name}")
        if keys[0] not in rows[0]["scores"] and name.endswith("_b2a"):
            # CycleGAN's report keeps the reverse direction's one edit as its mean only
            keys = ("edit_success_b2a", "preservation_b2a")
        # the judge on real images of the requested value (CycleGAN), else of the column
        real = [r.get("judge_on_real", {}) for r in rows]
        real = [j.get(f"{base['column']}={base.get('value', '')}", j.get(base["column"]))
                for j in real]
        lines.append(
            f"| {name} | {base['column']} | {cell([r['scores'].get(keys[0]) for r in rows], 2)} "
            f"| {base['chance']:.2f} | {cell([r['baselines'][name]['unedited'] for r in rows], 2)}"
            f" | {cell(real, 2)} | {cell([r['scores'].get(keys[1]) for r in rows], 2)} |")
    return lines


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--paired", type=Path, required=True,
                    help="datasets/paired_images.h5 (built from --packshots and --crops when "
                         "missing)")
    ap.add_argument("--packshots", type=Path, help="datasets/packshots.h5 (colourisation, "
                                                   "StarGAN, Fader; the paired store)")
    ap.add_argument("--crops", type=Path, help="datasets/person_crops.h5 (the paired store)")
    ap.add_argument("--classifier", type=Path, required=True,
                    help="models/attribute_classifier.pt (the measures' classifier)")
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--steps", type=int, help="override the demo profiles' steps (smoke tests "
                                              "only)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    print(f"CPU: {cpu_model()}, torch {torch.__version__}, {torch.get_num_threads()} threads",
          flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    data_files = stores(args)
    judge = load_classifier(args.classifier)
    results = []
    for name in args.settings:
        rows = [run(name, seed, args, data_files, judge) for seed in args.seeds]
        results.append({"setting": name, "family": SETTINGS[name][0], "seeds": args.seeds,
                        "rows": rows})
    (args.out / "results.json").write_text(json.dumps(
        {"cpu": cpu_model(), "args": {k: str(v) for k, v in vars(args).items()},
         "results": results}, indent=1))
    for family in dict.fromkeys(r["family"] for r in results):
        print("\n" + "\n".join(family_table(family, results)))
    for r in results:
        lines = edit_table(r)
        if lines:
            print("\n" + "\n".join(lines))
    return results


if __name__ == "__main__":
    main()
