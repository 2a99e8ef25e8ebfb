"""Attribute editing on the packshots: StarGAN and Fader networks through the CLI, their exact
resume, their measures (edit success, preservation, identity L1) on the held-out products, their
Dagster assets registered as translators, and the bad-input errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from pipelines.processing.h5store import write_image_store
from training.classifier import save_classifier, train_classifier
from training.loop import prepare, train
from training.translation_metrics import evaluate_translator

COLOURS = {"black": (20, 20, 20), "white": (235, 235, 235), "blue": (30, 40, 200)}
PATTERNS = ("unicolors", "stripes")
TINY = {"batch_size": 2, "ngf": 4, "ndf": 4, "test_products": 4, "label_values": [],
        "log_every": 1}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A tiny catalogue in the store layout (datasets/packshots.h5, models/
    attribute_classifier.pt): 40 32x32 packshots, a garment square in one of 3 colours, plain
    or striped, labelled color_* and pattern_* (4 products without a pattern: not trained
    on), a classifier trained on them (60 steps: it tells the 3 colours apart)."""
    root = tmp_path_factory.mktemp("attributes")
    n, size = 40, 32
    colour, pattern = np.arange(n) % 3, (np.arange(n) // 3) % 2
    images = np.full((n, size, size, 3), 255, np.uint8)
    images[:, 6:26, 8:24] = np.array(list(COLOURS.values()), np.uint8)[colour][:, None, None]
    images[pattern == 1, 8:26:4, 8:24] = 255
    labels = np.concatenate([np.eye(3, dtype=np.uint8)[colour],
                             np.eye(2, dtype=np.uint8)[pattern]], 1)
    labels[-4:, 3:] = 0  # pattern unknown
    names = [f"color_{c}" for c in COLOURS] + [f"pattern_{p}" for p in PATTERNS]
    path = write_image_store(root / "datasets" / "packshots.h5", [f"P{i}" for i in range(n)],
                             images, {"labels": labels, "split": np.zeros(n, np.uint8)},
                             attrs={"label_names": names,
                                    "split_names": ["train", "val", "test"]})
    classifier = root / "models" / "attribute_classifier.pt"
    save_classifier(train_classifier(path, steps=60, batch_size=8, width=4), classifier, 4)
    return {"root": root, "packshots": path, "classifier": classifier}


def cli(family: str, store, out, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "training", family, "--data", str(store["packshots"]),
         "--out", str(out), "--steps", "2", "--batch-size", "2", "--ngf", "4",
         "--test-products", "4", "--label-values", "", "--no-progress", *flags],
        capture_output=True, text=True, timeout=300)


def test_stargan_cli_trains_and_measures_every_edit(store, tmp_path):
    out = cli("stargan", store, tmp_path / "run", "--ndf", "4", "--label-columns",
              "color,pattern", "--classifier-file", str(store["classifier"]))
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["kind"] == "translator" and summary["domains"] == "packshot->color+pattern"
    assert summary["label_values"] == {"color": list(COLOURS), "pattern": list(PATTERNS)}
    assert summary["images_train"] == 32 and summary["images_test"] == 4  # 36 labelled
    assert set(summary["final_losses"]) == {"d_loss", "d_real", "d_fake", "d_cls",
                                            "gradient_penalty", "cls_accuracy", "g_fake",
                                            "g_cls", "g_rec"}
    m = summary["measures"]
    edits = [f"color_{c}" for c in COLOURS] + [f"pattern_{p}" for p in PATTERNS]
    for name in edits:
        assert 0 <= m[f"edit_success_{name}"] <= 1 and 0 <= m[f"preservation_{name}"] <= 1
    assert m["edit_success"] == pytest.approx(
        np.mean([m[f"edit_success_{e}"] for e in edits]), abs=1e-4)
    assert m["n_test"] == 4 and 0 < m["identity_l1"] < 2
    from PIL import Image

    # one product a row: input, then 3 colours and 2 patterns, 32 px each 2 px apart
    assert Image.open(tmp_path / "run" / "translation.png").size == (6 * 34 - 2, 14 + 4 * 34)
    # the sample grid: 8 held-out slots (4 products), inputs then a row per edit
    assert (tmp_path / "run" / "translator.pt").exists()


@pytest.mark.parametrize("family", ["stargan", "fader"])
def test_help_shows_the_options(family, capsys):
    from training.cli import parser

    with pytest.raises(SystemExit):
        parser().parse_args([family, "--help"])
    text = capsys.readouterr().out
    assert "--label-values" in text and "--test-products" in text and "--classifier-file" in text


def test_fader_cli_trains_with_a_slider(store, tmp_path):
    out = cli("fader", store, tmp_path / "run", "--label-columns", "color", "--slider",
              "white,blue", "--max-fm", "16", "--hid-dim", "8")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["domains"] == "packshot->color" and summary["slider"] == "white->blue"
    assert summary["images_train"] == 36 and summary["measures"]["identity_l1"] > 0
    assert "edit_success" not in summary["measures"]  # no classifier given
    from PIL import Image

    # input, own, white, 0.25, 0.5, 0.75, blue, black
    assert Image.open(tmp_path / "run" / "translation.png").size == (8 * 34 - 2, 14 + 4 * 34)


@pytest.mark.parametrize("family", ["stargan", "fader"])
def test_resume_is_exact(store, tmp_path, family):
    """2 + 2 steps == 4 steps (StarGAN's G update on the 2nd and 4th with n_critic 2; Fader's
    dropout, flips and adversarial targets continue), and Fader's λ_dis ramps from 0."""
    from training.family import get_family

    extra = {"n_critic": 2} if family == "stargan" else {"lambda_schedule": 2}

    def cfg(steps):
        return get_family(family).Config(steps=steps, **TINY, **extra)

    train(family, cfg(4), store["packshots"], tmp_path / "straight")
    train(family, cfg(2), store["packshots"], tmp_path / "resumed")
    summary = train(family, cfg(4), store["packshots"], tmp_path / "resumed")
    assert summary["resumed_from"] == 2
    straight, resumed = (torch.load(tmp_path / k / "translator.pt")
                         for k in ("straight", "resumed"))
    for k in straight:
        torch.testing.assert_close(straight[k], resumed[k], rtol=0, atol=0)
    if family == "fader":
        rows = [json.loads(line) for line in (tmp_path / "straight" / "losses.jsonl")
                .read_text().splitlines()]
        assert [r["lambda_dis"] for r in rows] == [0.0, 5e-5, 1e-4, 1e-4]


def test_stargans_generator_sees_its_labels():
    """Tiled labels are constant maps: with the input conv's reflection padding instance norm
    erased them (G(x, c) the same for every c); StarGAN's zero padding lets them through."""
    from training.models.translation import define_G

    torch.manual_seed(0)
    net = define_G(3, 3, 8, "resnet_6blocks", "instance", image_size=32, cond_nc=5).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    black, blue = torch.eye(5)[[0, 0]], torch.eye(5)[[2, 2]]
    assert float((net(x, black) - net(x, blue)).abs().mean()) > 1e-2


class Painter(nn.Module):
    """An oracle colour editor: paints the garment in the requested colour (the first 3
    entries of the label vector), leaves the white background."""

    def forward(self, x, y):
        colour = torch.tensor(list(COLOURS.values()), dtype=x.dtype) / 127.5 - 1
        paint = (y[:, :3] @ colour)[:, :, None, None]
        garment = (x.min(1, keepdim=True).values < 0.9).to(x.dtype)
        return x * (1 - garment) + paint * garment


def test_evaluation_set_edits_each_value_keeping_the_others(store):
    """The held-out products' edits: one per (column, value), each setting that column and
    keeping the other's own value; identity and condition are the own labels; an identity
    translator scores identity L1 0 and keeps every attribute."""
    from training.families.stargan import StarGAN, StarGANConfig

    cfg = StarGANConfig(steps=1, **TINY)
    fam, data = prepare("stargan", cfg, store["packshots"])
    model = fam(cfg, data, torch.device("cpu"))
    test = model.evaluation_set()
    own = test["identity"]
    assert torch.equal(test["condition"], own) and own.shape == (4, 5)
    assert (own[:, :3].sum(1) == 1).all() and (own[:, 3:].sum(1) == 1).all()
    assert [e.name for e in test["edits"]] == ["color_black", "color_white", "color_blue",
                                               "pattern_unicolors", "pattern_stripes"]
    blue = test["edits"][2]
    assert blue.column == "color" and blue.value == "blue"
    assert (blue.condition[:, :3] == torch.tensor([0.0, 0, 1])).all()
    assert torch.equal(blue.condition[:, 3:], own[:, 3:])
    assert not set(model.test_index().tolist()) & set(model.train_index().tolist())
    assert isinstance(model, StarGAN) and model.test_index().tolist() == \
        fam(cfg, data, torch.device("cpu")).test_index().tolist()  # seeded by split_seed

    from training.classifier import load_classifier

    classifier, values = load_classifier(store["classifier"])

    class Keep(nn.Module):
        def forward(self, x, y):
            return x

    same = evaluate_translator(Keep(), classifier=classifier, values=values, **test)
    assert same["identity_l1"] == 0 and same["preservation"] == 1.0
    # a translator that changes nothing succeeds only where the product had the colour
    assert max(same[f"edit_success_color_{c}"] for c in COLOURS) < 1
    painted = evaluate_translator(Painter(), classifier=classifier, values=values, **test)
    assert painted["identity_l1"] < 1e-6  # its own colour: the input back
    assert all(painted[f"edit_success_color_{c}"] == 1.0 for c in COLOURS)
    tags = model.conditioning()
    assert tags["label_sizes"] == "3,2" and json.loads(tags["label_values"])["pattern"] == \
        list(PATTERNS)


def test_assets_register_translators_on_the_table(store, tmp_path):
    """Both generated assets on the tiny store (its packshots and attribute classifier),
    measured with edits, registered as fashion-stargan / fashion-fader with the label tags;
    the translator leaderboard ranks them by edit success."""
    import mlflow
    from dagster import RunConfig, materialize

    from pipelines.assets.training import ASSETS_BY_NAME, asset_config
    from pipelines.assets.translation import TranslatorBoardConfig, translator_leaderboard
    from pipelines.resources import MLflowResource, StorageResource

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    resources = {"storage": StorageResource(root=str(store["root"])),
                 "mlflow": MLflowResource(tracking_uri=uri,
                                          artifact_root=str(tmp_path / "artifacts"))}
    common = {"steps": 2, "batch_size": 2, "ngf": 4, "test_products": 4, "label_values": []}
    result = materialize(
        [ASSETS_BY_NAME["stargan"], ASSETS_BY_NAME["fader"], translator_leaderboard],
        resources=resources, run_config=RunConfig(ops={
            "stargan": asset_config("stargan", ndf=4, **common),
            "fader": asset_config("fader", max_fm=16, hid_dim=8, **common),
            "translator_leaderboard": TranslatorBoardConfig()}))
    assert result.success
    client = mlflow.MlflowClient(tracking_uri=uri)
    for name, columns in (("stargan", "color,pattern"), ("fader", "color")):
        [event] = result.asset_materializations_for_node(name)
        meta = {k: v.value for k, v in event.metadata.items()}
        assert {"edit_success", "preservation", "identity_l1",
                "edit_success_color_blue"} <= set(meta["metrics"])
        assert "translation" in meta
        [version] = client.search_model_versions(f"name='fashion-{name}'")
        tags = version.tags
        assert tags["kind"] == "translator" and tags["conditioning"] == "labels"
        assert tags["label_columns"] == columns and tags["domains"] == f"packshot->" \
            f"{columns.replace(',', '+')}"
        assert tags["main_measure"] == "edit_success" and tags["main_goal"] == "max"
        mlflow.set_tracking_uri(uri)
        net = mlflow.pytorch.load_model(f"models:/fashion-{name}@champion")
        cond = int(tags["cond_dim"])
        assert net(torch.zeros(3, 3, 32, 32), torch.eye(cond)[:3]).shape == (3, 3, 32, 32)
    [board] = result.asset_materializations_for_node("translator_leaderboard")
    assert set(board.metadata["champions"].value) == {"fashion-stargan", "fashion-fader"}


# ----- bad input, before training -------------------------------------------------------------
def refused(family: str, store, **options) -> str:
    from training.family import get_family

    cfg = get_family(family).Config(steps=1, **{**TINY, **options})
    with pytest.raises(ValueError) as e:
        prepare(family, cfg, store["packshots"])
    message = str(e.value)
    assert "\n" not in message
    return message


def test_unknown_column_or_value_is_one_line_naming_the_counts(store):
    assert "no label column 'sleeve_length'; the store has: color, pattern" in refused(
        "stargan", store, label_columns=["color", "sleeve_length"])
    assert refused("stargan", store, label_values=["color=purple"]) == (
        "stargan: label column 'color' has no value 'purple'; it has (images): black (14), "
        "white (13), blue (13)")
    assert "names column 'fit', which is not in label_columns" in refused(
        "fader", store, label_values=["fit=loose"])
    assert "keeps one value (black)" in refused("stargan", store,
                                                label_values=["color=black"])
    assert refused("fader", store, label_columns=["color"], slider=["black", "red"]) == (
        "fader: slider ['black', 'red'] must be two kept values of 'color': black, white, blue")


def test_too_few_images_per_value_is_one_line_naming_the_counts(store):
    message = refused("stargan", store, batch_size=8)
    assert message.startswith("stargan: too few training images per value for batch_size 8 "
                              "(each needs 2 batches, 16): color=black: ")
    assert "pattern=stripes: " in message and message.endswith(
        "keep fewer values (label_values) or lower batch_size")
    assert refused("fader", store, label_columns=["color"], test_products=40).startswith(
        "fader: 40 images have a kept value in every column ['color'], too few to hold out "
        "test_products 40")


def test_a_paired_store_is_refused(tmp_path):
    from training.paired import build_paired_store

    shots = write_image_store(tmp_path / "p.h5", ["A", "B"], np.zeros((2, 32, 32, 3)),
                              {"labels": np.eye(2, dtype=np.uint8)},
                              attrs={"label_names": ["color_black", "color_white"]})
    paired = tmp_path / "paired.h5"
    build_paired_store(shots, shots, paired, min_test=0)
    from training.families.stargan import StarGANConfig

    with pytest.raises(ValueError, match="stargan edits the attributes of an image store"):
        prepare("stargan", StarGANConfig(label_columns=["color"], label_values=[]), paired)
