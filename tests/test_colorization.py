"""Colourisation (training/families/colorization.py): grey -> colour packshot and recolouring,
through the CLI, exact resume, its Dagster asset (registered as a translator, on the translator
table), its measures on known outputs, and its bad-input errors."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from pipelines.processing.h5store import write_image_store
from training.classifier import load_classifier, save_classifier, train_classifier
from training.families.colorization import Colorization, ColorizationConfig, to_grey
from training.loop import prepare, train
from training.translation_metrics import evaluate_translator, predict

COLOURS = ["red", "green", "blue", "black"]
# four luminances far apart (81, 131, 49, 20) and a white background (255): the grey image
# tells the colour, so a hand-written colouriser can be exact
PALETTE = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200], [20, 20, 20]], np.uint8)
N = 48


def write_store(path, n: int = N, colour_column: bool = True):
    """n 64 px packshots: a square of the product's colour on white, of random size; labels
    color_* (the first 4 products without a colour) and category_*."""
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 4, n)
    images = np.full((n, 64, 64, 3), 255, np.uint8)
    for i in range(n):
        s = rng.integers(10, 26)
        images[i, 32 - s:32 + s, 32 - s:32 + s] = PALETTE[colour[i]]
    colours = np.eye(4, dtype=np.uint8)[colour]
    colours[:4] = 0
    category = np.eye(2, dtype=np.uint8)[rng.integers(0, 2, n)]
    names = [f"category_{c}" for c in ("top", "dress")]
    labels = category
    if colour_column:
        labels, names = np.concatenate([colours, category], 1), \
            [f"color_{c}" for c in COLOURS] + names
    return write_image_store(path, [f"P{i}" for i in range(n)], images, {"labels": labels},
                             attrs={"label_names": names})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """datasets/packshots.h5 and models/attribute_classifier.pt under one store root (the
    classifier trained on the packshots for a few steps)."""
    root = tmp_path_factory.mktemp("colorization")
    (root / "datasets").mkdir()
    packshots = write_store(root / "datasets" / "packshots.h5")
    classifier = root / "models" / "attribute_classifier.pt"
    save_classifier(train_classifier(packshots, steps=30, batch_size=16, width=4), classifier, 4)
    return {"root": root, "packshots": packshots, "classifier": classifier}


TINY = ["--steps", "2", "--batch-size", "4", "--ngf", "4", "--ndf", "4", "--image-size", "32",
        "--no-progress"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "training", "colorization", *args],
                          capture_output=True, text=True, timeout=300)


def test_cli_colourises_and_reports(store, tmp_path):
    out = cli("--data", str(store["packshots"]), "--out", str(tmp_path / "run"),
              "--classifier-file", str(store["classifier"]), *TINY)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["kind"] == "translator" and summary["domains"] == "grey->color"
    assert summary["conditioning"] == "none"
    assert set(summary["final_losses"]) == {"d_real", "d_fake", "g_gan", "g_l1"}
    # a seeded 20% held out (the classifier's share); of those, the ones with a colour
    assert summary["train_products"] + 10 == N and summary["test_products"] <= 10
    m = summary["measures"]
    assert m["n_test"] == summary["test_products"]
    assert 0 <= m["edit_success_color"] == m["edit_success"] <= 1  # colour accuracy
    assert 0 < m["l1"] < 2 and m["psnr"] > 0 and -1 < m["ssim"] < 1
    assert m["frechet_distance"] >= 0
    for name in ("translation.png", "translator.pt", "samples/step_000002.png"):
        assert (tmp_path / "run" / name).exists()
    assert not (tmp_path / "run" / "recolour.png").exists()


def test_recolour_resumes_exactly(store, tmp_path):
    def cfg(steps: int) -> ColorizationConfig:
        return ColorizationConfig(steps=steps, batch_size=4, ngf=4, ndf=4, image_size=32,
                                  log_every=1, condition_on_color=True)

    train("colorization", cfg(4), store["packshots"], tmp_path / "straight")
    train("colorization", cfg(2), store["packshots"], tmp_path / "resumed")
    summary = train("colorization", cfg(4), store["packshots"], tmp_path / "resumed")
    assert summary["resumed_from"] == 2 and summary["conditioning"] == "labels"
    straight, resumed = (torch.load(tmp_path / k / "translator.pt")
                         for k in ("straight", "resumed"))
    for k in straight:  # dropout, flips and batches continue as if never stopped
        torch.testing.assert_close(straight[k], resumed[k], rtol=0, atol=0)
    assert (tmp_path / "resumed" / "recolour.png").exists()


@pytest.mark.parametrize("condition_on_color", [False, True])
def test_d_judges_both_pairs_in_one_call_as_in_two(store, condition_on_color):
    """D on the (grey, colour) and (grey, output) pairs, with the requested colour's maps when
    recolouring, as one call: the gradients and batch-norm statistics of two calls."""
    from stacked_calls import BUFFER, assert_same_gradients, separate_calls, step_gradients

    cfg = ColorizationConfig(steps=3, batch_size=4, ngf=4, ndf=4, image_size=32, log_every=1,
                             bf16=False, condition_on_color=condition_on_color)
    _, data = prepare("colorization", cfg, store["packshots"])
    ours, reference = (step_gradients(f, cfg, data, 3, ("netG", "netD"))
                       for f in (Colorization, separate_calls(Colorization)))
    assert any(k.startswith(f"{BUFFER}netD.") and k.endswith("running_mean") for k in ours[-1])
    assert_same_gradients(ours, reference)


def test_recolour_asset_registers_a_translator_on_the_table(store, tmp_path):
    """The generated asset on the store's packshots and classifier: measured by
    evaluate_translator with the colour edits, registered as fashion-colorization with the
    conditional translator's tags, both sheets on the asset page; the translator leaderboard
    crowns it by colour accuracy."""
    import mlflow
    from dagster import RunConfig, materialize

    from pipelines.assets.training import ASSETS_BY_NAME, asset_config
    from pipelines.assets.translation import TranslatorBoardConfig, translator_leaderboard
    from pipelines.resources import MLflowResource, StorageResource

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    resources = {"storage": StorageResource(root=str(store["root"])),
                 "mlflow": MLflowResource(tracking_uri=uri,
                                          artifact_root=str(tmp_path / "artifacts"))}
    name = "colorization_recolour"
    result = materialize(
        [ASSETS_BY_NAME[name], translator_leaderboard], resources=resources,
        run_config=RunConfig(ops={
            name: asset_config(name, steps=2, batch_size=4, ngf=4, ndf=4, image_size=32,
                               recolour_to=["red", "black"], eval_samples=10),
            "translator_leaderboard": TranslatorBoardConfig()}))
    assert result.success
    [event] = result.asset_materializations_for_node(name)
    meta = {k: v.value for k, v in event.metadata.items()}
    metrics = meta["metrics"]
    assert {"edit_success", "edit_success_color_kept", "edit_success_color_changed", "l1",
            "psnr", "ssim", "frechet_distance"} <= set(metrics)
    assert metrics["edit_success"] == pytest.approx(
        (metrics["edit_success_color_kept"] + metrics["edit_success_color_changed"]) / 2)
    assert "translation" in meta and "recolour" in meta  # both sheets on the page
    client = mlflow.MlflowClient(tracking_uri=uri)
    [version] = client.search_model_versions("name='fashion-colorization'")
    tags = version.tags
    assert tags["kind"] == "translator" and tags["domains"] == "grey->color"
    assert tags["conditioning"] == "labels" and tags["cond_dim"] == "4"
    assert json.loads(tags["label_values"]) == {"color": COLOURS}
    assert tags["channels"] == "1" and tags["image_size"] == "32"
    assert tags["main_measure"] == "edit_success" and tags["main_goal"] == "max"
    assert tags["data"] == "packshots" and tags["variant"] == "recolour"
    assert client.get_run(version.run_id).data.metrics["edit_success"] == \
        metrics["edit_success"]
    mlflow.set_tracking_uri(uri)
    net = mlflow.pytorch.load_model("models:/fashion-colorization@champion")
    red = torch.eye(4)[[0] * 5]
    assert net(torch.zeros(5, 1, 32, 32), red).shape == (5, 3, 32, 32)
    [board] = result.asset_materializations_for_node("translator_leaderboard")
    assert board.metadata["champions"].value == {"fashion-colorization": int(version.version)}
    table = pd.read_csv(store["root"] / "evaluation" / "translators.csv")
    row = table[table["model"] == "fashion-colorization"].iloc[0]
    assert row["edit_success"] == pytest.approx(metrics["edit_success"])


# ----- the measures on known outputs ----------------------------------------------------------
class Oracle(nn.Module):
    """The exact colouriser of the test store: each pixel takes the palette colour (or the
    white background) whose luminance is nearest its grey; given a colour (one-hots), it paints
    the product in that colour instead."""

    def __init__(self):
        super().__init__()
        colours = torch.from_numpy(np.concatenate([PALETTE, [[255, 255, 255]]])).float()
        self.palette = colours / 127.5 - 1  # (5, 3) in [-1, 1]
        self.luma = to_grey(self.palette[:, :, None, None]).flatten()

    def forward(self, grey: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        nearest = (grey - self.luma.view(1, -1, 1, 1)).abs().argmin(1)  # (N, H, W)
        if c is not None:
            product = nearest < len(PALETTE)
            nearest = torch.where(product, c.argmax(1).view(-1, 1, 1), nearest)
        return self.palette[nearest].permute(0, 3, 1, 2)


class Greyscale(nn.Module):
    """A colouriser that adds no colour: the grey image on all three channels."""

    def forward(self, grey: torch.Tensor) -> torch.Tensor:
        return grey.expand(-1, 3, -1, -1)


class Ignoring(Oracle):
    """The exact colouriser, deaf to the requested colour."""

    def forward(self, grey: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(grey)


def family_on(store, **options) -> Colorization:
    cfg = ColorizationConfig(batch_size=4, ngf=4, ndf=4, image_size=64, **options)
    fam, data = prepare("colorization", cfg, store["packshots"])
    family = fam(cfg, data, torch.device("cpu"))
    family.build()
    return family


def test_measures_on_known_outputs(store):
    classifier, values = load_classifier(store["classifier"])
    family = family_on(store)
    test = family.evaluation_set()
    real = test["targets"]
    truth = torch.tensor([values["color"].index(v) for v in test["edits"][0].value])
    accuracy = float((predict(classifier, real)["color"] == truth).float().mean())
    exact = evaluate_translator(Oracle(), classifier=classifier, values=values, **test)
    assert exact["l1"] < 1e-6 and exact["psnr"] == 100 and exact["ssim"] == pytest.approx(1)
    assert exact["edit_success"] == exact["edit_success_color"] == pytest.approx(accuracy)
    grey = evaluate_translator(Greyscale(), classifier=classifier, values=values, **test)
    assert grey["l1"] > 0.1 and grey["psnr"] < exact["psnr"]

    recolour = family_on(store, condition_on_color=True).evaluation_set(seed=3)
    kept, changed = recolour["edits"]
    assert (kept.name, changed.name) == ("color_kept", "color_changed")
    assert list(kept.value) == list(test["edits"][0].value)
    assert all(a != b for a, b in zip(kept.value, changed.value, strict=True))
    assert set(changed.value) <= set(COLOURS)
    m = evaluate_translator(Oracle(), classifier=classifier, values=values, **recolour)
    assert m["l1"] < 1e-6  # measured against the real image with its true colour
    assert m["edit_success_color_kept"] == pytest.approx(accuracy)
    painted = Oracle()(recolour["inputs"], changed.condition)
    target = torch.tensor([values["color"].index(v) for v in changed.value])
    assert m["edit_success_color_changed"] == pytest.approx(
        float((predict(classifier, painted)["color"] == target).float().mean()))
    # a colouriser that ignores the request: the true colours, whatever was asked
    ignoring = evaluate_translator(Ignoring(), classifier=classifier, values=values,
                                   **recolour)
    assert ignoring["edit_success_color_kept"] == pytest.approx(accuracy)
    assert ignoring["edit_success_color_changed"] == pytest.approx(
        float((predict(classifier, real)["color"] == target).float().mean()))


# ----- bad input ------------------------------------------------------------------------------
def test_a_store_without_a_color_column_is_one_line(tmp_path):
    path = write_store(tmp_path / "no_colour.h5", colour_column=False)
    out = cli("--data", str(path), "--out", str(tmp_path / "run"), *TINY)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].endswith(
        f"{path}: no label column 'color'; the store has: category")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


@pytest.mark.parametrize(("options", "message"), [
    ({"condition_on_color": True, "recolour_to": ["red", "purple"]},
     "recolour_to: no colour 'purple' in the store's color column; it has: red, green, blue, "
     "black"),
    ({"recolour_to": ["red"]}, "recolour_to needs condition_on_color (the recolour variant)"),
    ({"batch_size": 20}, "too few training products for batch_size 20 (2 batches, 40): 38 of "
                         "48 (44 with a colour, holdout 0.2 kept out)"),
    ({"image_size": 48}, "the U-Net takes square images of a power of two >= 32 px, got 48"),
])
def test_bad_options_are_one_line_before_training(store, tmp_path, options, message):
    cfg = ColorizationConfig(steps=1, **{"batch_size": 4, **options})
    with pytest.raises(ValueError) as e:
        train("colorization", cfg, store["packshots"], tmp_path / "run")
    assert str(e.value) == message
    assert not (tmp_path / "run").exists()


def test_a_paired_store_is_refused(tmp_path):
    from training.paired import build_paired_store

    packshots = write_store(tmp_path / "p.h5")
    crops = write_image_store(tmp_path / "c.h5", [f"P{i}" for i in range(N)],
                              np.zeros((N, 64, 64, 3), np.uint8))
    paired = tmp_path / "paired.h5"
    build_paired_store(packshots, crops, paired, min_test=8)
    with pytest.raises(ValueError, match="^colorization trains on an image store with a color "
                                         "column"):
        prepare("colorization", ColorizationConfig(), paired)
