"""The translator leaderboard: the second table, beside the samplers' (training/leaderboard.py).

Every registered version tagged kind=translator (Family.translator_tags) is listed with the
measures its training run recorded: training.translation_metrics.evaluate_translator on its
family's test split, with the attribute classifier, when the asset registered it. Nothing is
re-sampled: a translator's evaluation set (pairs, edits, styles) is its family's, so the figures
of the run are the figures of the version. Each model's version with the best main measure
(tags `main_measure`, `main_goal` min or max: a family declares them as `main_measure`) gets
the alias `champion`.
"""

import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from pipelines.processing.atomic import write_atomically

# the measures of evaluate_translator, in the table's order, with short headers and formats
MEASURES = ["l1", "psnr", "ssim", "frechet_distance", "identity_l1", "edit_success",
            "preservation", "diversity"]
HIGHER_IS_BETTER = {"psnr", "ssim", "edit_success", "preservation", "diversity"}
SHORT = {"l1": "L1", "psnr": "PSNR", "ssim": "SSIM", "frechet_distance": "FD",
         "identity_l1": "id_L1", "edit_success": "edit", "preservation": "keep",
         "diversity": "div"}
FORMATS = {"l1": "{:.3f}", "psnr": "{:.1f}", "ssim": "{:.3f}", "frechet_distance": "{:.1f}",
           "identity_l1": "{:.3f}", "edit_success": "{:.2f}", "preservation": "{:.2f}",
           "diversity": "{:.2f}"}
COLUMNS = ["model", "version", "variant", "domains", "conditioning", "main_measure",
           "main_goal", *MEASURES, "run_id"]
MISSING = "–"


def translator_rows(client, max_versions: int = 20,
                    log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """One row per translator version (the newest max_versions of each fashion-* model): its
    tags and the measures its run recorded (NaN where a family does not report one); the
    measures a family names in its `measures` tag beyond MEASURES become extra columns."""
    rows = []
    for model in client.search_registered_models("name LIKE 'fashion-%'"):
        versions = sorted(client.search_model_versions(f"name='{model.name}'"),
                          key=lambda v: int(v.version), reverse=True)[:max_versions]
        for v in versions:
            tags = dict(v.tags or {})
            if tags.get("kind") != "translator":
                continue
            metrics = client.get_run(v.run_id).data.metrics if v.run_id else {}
            named = [m for m in tags.get("measures", "").split(",") if m]
            main = tags.get("main_measure", "frechet_distance")
            if log and main not in metrics:
                log(f"{model.name} version {v.version}: no {main} recorded (not ranked)")
            rows.append({"model": model.name, "version": int(v.version),
                         "variant": tags.get("variant", ""), "domains": tags.get("domains", ""),
                         "conditioning": tags.get("conditioning", "none"),
                         "main_measure": main, "main_goal": tags.get("main_goal", "min"),
                         **{m: metrics.get(m) for m in dict.fromkeys([*MEASURES, *named])},
                         "run_id": v.run_id or ""})
    table = pd.DataFrame(rows, columns=None if rows else COLUMNS)
    extra = sorted(c for c in table.columns if c not in COLUMNS)
    return table.reindex(columns=[*COLUMNS[:-1], *extra, "run_id"])


def best_version(group: pd.DataFrame) -> int | None:
    """The version with the best main measure (the newest version's choice of measure and
    goal); ties go to the older version; None when no version recorded it."""
    newest = group.sort_values("version").iloc[-1]
    measure, goal = newest["main_measure"], newest["main_goal"]
    if measure not in group or group[measure].isna().all():
        return None
    ranked = group.dropna(subset=[measure]).sort_values(
        [measure, "version"], ascending=[goal != "max", True])
    return int(ranked.iloc[0]["version"])


def variant_alias(variant: str) -> str:
    """`champion-<variant>`, in the characters an MLflow alias may hold."""
    return "champion-" + re.sub(r"[^\w-]", "-", variant)


def set_translator_champions(client, table: pd.DataFrame) -> dict[str, int]:
    """Alias `champion` on each translator model's best version (best_version). A model whose
    versions come from several variants (CycleGAN's packshot <-> person and sleeve short ->
    long) solves different tasks under one name, whose measures do not compare: each variant's
    best version also gets `champion-<variant>`, the handle to load one task's best."""
    champions = {}
    if table.empty:
        return champions
    for model, group in table.groupby("model"):
        best = best_version(group)
        if best is not None:
            client.set_registered_model_alias(model, "champion", str(best))
            champions[model] = best
        variants = group[group["variant"].astype(bool)].groupby("variant")
        if variants.ngroups > 1:
            for variant, versions in variants:
                best = best_version(versions)
                if best is not None:
                    client.set_registered_model_alias(model, variant_alias(variant), str(best))
    return champions


def translator_markdown(table: pd.DataFrame, champions: dict[str, int]) -> str:
    """The translators' table (short headers, `–` where a measure does not apply, columns no
    version has left out, the main measure of each row in bold) and its legend."""
    if table.empty:
        return "**Translators (image -> image)**\n\nno translator is registered yet"
    shown = table.sort_values(["model", "version"]).reset_index(drop=True)
    cells: dict[str, list[str]] = {
        "model": [m.removeprefix("fashion-") for m in shown["model"]],
        "ver": [str(v) for v in shown["version"]], "domains": list(shown["domains"])}
    for m in [*MEASURES, *(c for c in shown.columns if c not in COLUMNS)]:
        if shown[m].isna().all():
            continue
        fmt = FORMATS.get(m, "{:.3f}")
        cells[SHORT.get(m, m)] = [
            MISSING if pd.isna(x) else (f"**{fmt.format(x)}**" if main == m
                                        else fmt.format(x))
            for x, main in zip(shown[m], shown["main_measure"], strict=True)]
    cells["champ"] = ["✔" if champions.get(m) == v else ""
                      for m, v in zip(shown["model"], shown["version"], strict=True)]
    align = ["left" if h in ("model", "domains") else "right" for h in cells]
    text = pd.DataFrame(cells).to_markdown(index=False, disable_numparse=True, colalign=align)
    legend = ["L1 (in [-1, 1] units), PSNR (dB, capped at 100), SSIM: translations of the test "
              "split against their real targets",
              "FD: Fréchet distance to the real target-domain images in the attribute "
              "classifier's feature space",
              "edit / keep: the classifier recognises the requested value / keeps the other "
              "attributes; id_L1: L1 of a translation to the input's own labels",
              "div: mean pairwise distance of several outputs for one input (classifier space)",
              "bold: the measure each model's champion is chosen by (✔: alias `champion`); a "
              "model with several variants also has `champion-<variant>` on each variant's "
              "best version"]
    return ("**Translators (image -> image)**\n\n" + text + "\n\n"
            + "\n".join(f"- {line}" for line in legend))


def translator_board(client, out_dir: Path | str, max_versions: int = 20,
                     log: Callable[[str], None] | None = None
                     ) -> tuple[pd.DataFrame, dict[str, int], str]:
    """The table, the champions (aliases set) and the markdown, written as
    out_dir/translators.md and translators.csv (atomically: another run may be reading them)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = translator_rows(client, max_versions, log)
    champions = set_translator_champions(client, table)
    text = translator_markdown(table, champions)
    # both renamed into place once both are written: a reader never sees half a table
    write_atomically({
        out_dir / "translators.md": lambda p: p.write_text(text + "\n", encoding="utf-8"),
        out_dir / "translators.csv": lambda p: table.to_csv(p, index=False)})
    return table, champions, text
