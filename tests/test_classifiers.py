"""The classifiers (the fashion-MNIST study's dense and conv networks, the attribute classifier)
on the training frame, and their robustness: FGSM, FGSM on the garment only, PGD, the sweep,
adversarial training, the bad inputs. Tiny stores, a few steps."""

import json
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

from pipelines.processing.h5store import write_image_store
from training.datasets import open_dataset
from training.families.classifier import Classifier, ClassifierConfig, load_trained
from training.loop import train
from training.models.classifier import ARCHS, build_classifier, define_classifier
from training.robustness import (
    check_eps,
    correct_counts,
    curves_png,
    fgsm,
    garment_mask,
    head_loss,
    pgd,
    pgd_counts,
    pgd_right,
    sweep,
)

COLOURS = {"black": (20, 20, 20), "red": (200, 30, 30)}


def packshots(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """16x16 packshots: a white background and a garment square, its colour (black/red) and
    its place (top/bottom half: the `category`) the labels; every 7th has no category."""
    rng = np.random.default_rng(seed)
    colour, place = rng.integers(0, 2, n), rng.integers(0, 2, n)
    images = np.full((n, 16, 16, 3), 255, np.uint8)
    for i in range(n):
        rows = slice(1, 7) if place[i] == 0 else slice(9, 15)
        images[i, rows, 4:12] = list(COLOURS.values())[colour[i]]
    labels = np.stack([colour == 0, colour == 1, place == 0, place == 1], 1).astype(np.uint8)
    labels[::7, 2:] = 0
    return images, labels, ["color_black", "color_red", "category_top", "category_bottom"]


@pytest.fixture(scope="module")
def toy_store(tmp_path_factory):
    images, labels, names = packshots(160, 0)
    return write_image_store(tmp_path_factory.mktemp("toy") / "packshots.h5",
                             [f"P{i}" for i in range(len(images))], images,
                             {"labels": labels}, attrs={"label_names": names})


def tiny(**kw) -> ClassifierConfig:
    return ClassifierConfig(**{"arch": "dense", "label_columns": ["color", "category"],
                               "steps": 3, "batch_size": 8, "log_every": 1, "bf16": False,
                               "hidden": 16, "width": 4, "depth": 2, **kw})


@pytest.fixture(scope="module")
def trained(toy_store, tmp_path_factory):
    """A dense classifier that has learnt the toy labels (trained on the frame)."""
    out = tmp_path_factory.mktemp("trained")
    summary = train("classifier", tiny(steps=60, batch_size=16, lr=3e-3, flip=False),
                    toy_store, out)
    model, values = load_trained(out / "classifier.pt")
    return model, values, summary


def one_line(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    return text


# ----- the architectures -----------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_has_the_metrics_interface(arch):
    heads = {"category": 5, "color": 3}
    net = build_classifier(arch, heads, 3, 64, hidden=32, width=8, depth=4, feature_dim=24)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    features = net.features(x)
    assert features.shape == (2, net.feature_dim)
    assert {c: tuple(h(features).shape) for c, h in net.heads.items()} == {
        "category": (2, 5), "color": (2, 3)}
    assert {c: tuple(v.shape) for c, v in net(x).items()} == {"category": (2, 5),
                                                              "color": (2, 3)}


def test_the_study_networks_as_described():
    dense = build_classifier("dense", {"class": 10}, 1, 28)
    assert [type(m).__name__ for m in dense.body] == ["Flatten", "Linear", "ReLU"]
    assert (dense.body[1].in_features, dense.body[1].out_features) == (784, 128)
    conv = build_classifier("conv", {"class": 10}, 1, 28)
    convs = [m for m in conv.body if isinstance(m, torch.nn.Conv2d)]
    assert [(c.kernel_size, c.out_channels) for c in convs] == [((5, 5), 64), ((5, 5), 128)]
    assert conv.heads["class"].out_features == 10
    # a Fashion-MNIST classifier still embeds 64x64 RGB samples (resized, luma)
    assert conv.features(torch.zeros(3, 3, 64, 64)).shape == (3, 128)


def test_define_classifier_keeps_the_metrics_network():
    net = define_classifier({"color": 2}, width=32)
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert shapes["body.0.0.weight"] == (32, 3, 3, 3)
    assert shapes["body.3.3.weight"] == (256, 256, 3, 3)
    assert shapes["body.6.weight"] == (256, 256) and shapes["heads.color.weight"] == (2, 256)


def test_any_arch_is_a_feature_space_of_the_gan_metrics(toy_store, trained):
    from training.evaluation import evaluate_generator
    from training.models.dcgan import define_G

    model, values, _ = trained
    data = open_dataset(toy_store)
    scores = evaluate_generator(define_G(8, 4).eval(), 8, data, model, values, n=20)
    assert {"frechet_distance", "kid", "precision", "recall"} <= scores.keys()


# ----- training on the frame -------------------------------------------------------------------
def test_trained_classifier_reports_heldout_accuracy_per_head(trained):
    model, values, summary = trained
    assert summary["kind"] == "classifier" and summary["arch"] == "dense"
    assert set(summary["heldout_accuracy"]) == {"color", "category"}
    assert summary["heldout_images"] == 32  # 0.2 of the 160 labelled images
    assert summary["heldout_accuracy"]["color"] >= 0.9, summary
    assert values == {"color": ["black", "red"], "category": ["top", "bottom"]}


@pytest.mark.parametrize("arch,adversarial", [("conv", "pgd"), ("multihead", "fgsm")])
def test_adversarial_training_and_the_report_sweep(toy_store, tmp_path, arch, adversarial):
    cfg = tiny(arch=arch, adversarial=adversarial, adv_eps=0.1, pgd_steps=2, sweep_images=12)
    summary = train("classifier", cfg, toy_store, tmp_path)
    assert "adv_loss" in summary["final_losses"]
    rows = [json.loads(line) for line in (tmp_path / "losses.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["adv_loss"]) for r in rows)
    data = open_dataset(toy_store, **Classifier.data_options(cfg))
    family = Classifier.restore(cfg, data, tmp_path)
    metrics, images = family.report(tmp_path, summary)
    assert "pgd_eps_0.3_accuracy" in metrics and "heldout_accuracy_color" in metrics
    assert images["robustness"][0].stat().st_size > 5000
    tags = family.registry_tags()
    assert (tags["kind"], tags["arch"], tags["label_columns"], tags["label_sizes"]) == (
        "classifier", arch, "color,category", "2,2")
    net, _ = load_trained(tmp_path / "classifier.pt")
    assert type(net) is type(family.classifier())


def test_fashion_mnist_test_files_score_the_heldout_accuracy(tmp_path):
    folder = idx_folder(tmp_path / "fm", n_train=30, n_test=20)
    cfg = tiny(arch="conv", label_columns=["class"], test_data=str(folder))
    summary = train("classifier", cfg, folder, tmp_path / "run")
    assert summary["heldout_images"] == 20 and set(summary["heldout_accuracy"]) == {"class"}
    net, values = load_trained(tmp_path / "run" / "classifier.pt")
    assert net.heads["class"].out_features == 10 and len(values["class"]) == 10


# ----- the attacks -----------------------------------------------------------------------------
def toy_batch(n: int = 64, seed: int = 1):
    images, labels, _ = packshots(n, seed)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    t = torch.from_numpy(labels)
    targets = {"color": t[:, :2].argmax(1), "category": t[:, 2:].argmax(1)}
    targets["category"][t[:, 2:].sum(1) == 0] = -1
    return x, targets


def accuracy(model, x, targets) -> float:
    counts = correct_counts(model, x, targets)
    return sum(r for r, _ in counts.values()) / sum(k for _, k in counts.values())


def test_fgsm_at_zero_changes_nothing_and_larger_eps_never_helps(trained):
    model, _, _ = trained
    x, targets = toy_batch()
    assert torch.equal(fgsm(model, x, targets, 0.0), x)
    clean = accuracy(model, x, targets)
    assert clean > 0.9
    accs = [accuracy(model, fgsm(model, x, targets, e), targets) for e in (0.05, 0.1, 0.3)]
    assert all(a <= clean + 0.02 for a in accs), (clean, accs)
    losses = [float(head_loss(model(fgsm(model, x, targets, e)), targets))
              for e in (0, 0.05, 0.3)]
    assert losses == sorted(losses), losses  # the attack climbs the loss
    assert accs[-1] < clean


def test_the_garment_mask_leaves_the_background_untouched(trained):
    model, _, _ = trained
    x, targets = toy_batch(16)
    mask = garment_mask(x)
    assert mask.shape == (16, 1, 16, 16)
    adv = fgsm(model, x, targets, 0.2, mask=mask)
    background = (mask == 0).expand_as(x)
    assert torch.equal(adv[background], x[background])
    assert (adv[~background] != x[~background]).any()
    # Fashion-MNIST's background is black: found by the border, the same rule
    black = -x
    assert torch.equal(garment_mask(black), mask)
    assert torch.equal(pgd(model, x, targets, 0.2, 3, mask=mask)[background], x[background])


def test_pgd_is_at_least_as_strong_as_fgsm(trained):
    model, _, _ = trained
    x, targets = toy_batch(128, seed=2)
    g = torch.Generator().manual_seed(0)
    for eps in (0.05, 0.1, 0.2):
        adv = pgd(model, x, targets, eps, steps=10, generator=g)
        assert (adv - x).abs().max() <= 2 * eps + 1e-6
        assert accuracy(model, adv, targets) <= accuracy(
            model, fgsm(model, x, targets, eps), targets) + 0.02


def test_the_sweep_table_and_curves(trained, toy_store, tmp_path):
    model, _, _ = trained
    data = open_dataset(toy_store, label_columns=("color", "category"))
    table = sweep(model, data, eps_list=(0, 0.05, 0.3), n=50, pgd_steps=3, batch_size=20)
    assert set(table["attack"]) == {"fgsm", "fgsm_garment", "pgd"}
    assert set(table["head"]) == {"color", "category", "mean"}
    assert len(table) == 3 * 3 * 3
    at_zero = table[table["eps"] == 0].groupby("head")["accuracy"].nunique()
    assert (at_zero == 1).all()  # every attack at ε = 0 is the clean accuracy
    color = table[(table["head"] == "color")].set_index(["attack", "eps"])["accuracy"]
    assert color[("pgd", 0.3)] <= color[("fgsm", 0.3)] + 0.02 <= color[("fgsm", 0.0)] + 0.02
    assert table[(table["head"] == "color") & (table["eps"] == 0)]["n"].iloc[0] == 50
    png = curves_png(table, tmp_path / "curves.png")
    assert png.stat().st_size > 5000


def test_the_sweeps_pgd_carries_what_broke_to_the_larger_eps(trained):
    """An image broken inside a smaller ε-ball is broken inside every larger one: the sweep's
    PGD never rises with ε, stays at or below the clean accuracy, and is at least as strong as
    PGD at each ε alone (same noise: the generator draws the whole batch either way)."""
    model, _, _ = trained
    x, targets = toy_batch(96, seed=3)
    eps_list = (0.0, 0.01, 0.02, 0.05, 0.1)
    table = sweep(model, (x, targets), eps_list=eps_list[::-1], attacks=("pgd",), n=96,
                  pgd_steps=3, batch_size=96, seed=5)
    g = torch.Generator().manual_seed(5)
    alone = {eps: pgd_counts(model, x, targets, eps, 3, generator=g)
             for eps in eps_list if eps > 0}
    for head in targets:
        curve = table[table["head"] == head].set_index("eps")["accuracy"]
        assert list(curve.index) == list(eps_list)
        assert (curve.diff().dropna() <= 0).all(), curve
        for eps, counts in alone.items():
            right, known = counts[head]
            assert curve[eps] <= right / known + 1e-9, (head, eps)
    # what broke stays broken, and only images still right on some head are attacked
    sizes = []

    class Counting(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model

        def forward(self, images):
            sizes.append(len(images))
            return self.net(images)

    right = {c: r.clone() for c, r in pgd_right(model, x, targets, 0.0).items()}
    for r in right.values():
        r[10:] = False
    after = pgd_right(Counting(), x, targets, 0.1, 3, right=right)
    assert sizes and max(sizes) <= 10
    assert not any(r[10:].any() for r in after.values())


# ----- bad input -------------------------------------------------------------------------------
def test_bad_eps_and_unknown_heads_are_one_line_errors(trained, toy_store):
    model, _, _ = trained
    x, targets = toy_batch(4)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"eps must be in \[0, 1\]") as e:
            fgsm(model, x, targets, bad)
        one_line(e)
    with pytest.raises(ValueError, match=r"eps must be in \[0, 1\]"):
        check_eps([0.1, 2])
    data = open_dataset(toy_store, label_columns=("color", "category"))
    with pytest.raises(ValueError, match=r"eps must be in \[0, 1\]"):
        sweep(model, data, eps_list=(0, 1.01), n=4)
    with pytest.raises(ValueError, match="no head 'sleeve_length'; .* has: color, category") as e:
        sweep(model, data, columns=["sleeve_length"], n=4)
    one_line(e)


def test_cli_trains_a_conv_classifier_and_ends_with_the_json_line(toy_store, tmp_path):
    ok = subprocess.run([sys.executable, "-m", "training", "classifier", "--no-progress",
                         "--arch", "conv", "--data", str(toy_store), "--out",
                         str(tmp_path / "c"), "--label-columns", "color,category",
                         "--steps", "2", "--batch-size", "4", "--hidden", "8"],
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    summary = json.loads(ok.stdout.strip().splitlines()[-1])
    assert summary["arch"] == "conv" and set(summary["heldout_accuracy"]) == {"color",
                                                                             "category"}
    assert load_trained(tmp_path / "c" / "classifier.pt")[0].heads["color"].out_features == 2


def test_cli_refuses_bad_input_in_one_line(toy_store, tmp_path, capsys):
    from training.__main__ import main

    folder = idx_folder(tmp_path / "train_only", n_train=10, n_test=0)
    for data, args, said in (
            (toy_store, ["--adv-eps", "1.5"], "adv_eps must be <= 1, got 1.5"),
            (toy_store, ["--label-columns", "sleeve"], "no label column 'sleeve'"),
            (folder, ["--label-columns", "class", "--test-data", str(folder)],
             "no t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte")):
        with pytest.raises(SystemExit) as e:
            main(["classifier", "--no-progress", "--data", str(data), "--out",
                  str(tmp_path / "b"), "--steps", "1", *args])
        err = capsys.readouterr().err
        assert e.value.code == 2 and said in err, err
        assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b" / "checkpoint.pt").exists()


def idx_folder(folder, n_train: int, n_test: int):
    """Fashion-MNIST's IDX files (plain): class k's images are a bar at row 2k; no test files
    when n_test is 0."""
    folder.mkdir(parents=True, exist_ok=True)
    for n, names in ((n_train, ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")),
                     (n_test, ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))):
        if not n:
            continue
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = np.zeros((n, 28, 28), np.uint8)
        for i, k in enumerate(labels):
            images[i, 2 * k + 4:2 * k + 6, 4:24] = 255
        for name, array in zip(names, (images, labels), strict=True):
            header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
            (folder / name).write_bytes(header + struct.pack(f">{array.ndim}I", *array.shape)
                                        + array.tobytes())
    return folder


# ----- the registry ----------------------------------------------------------------------------
def test_classifiers_registered_with_a_champion_the_metrics_can_load(trained, toy_store,
                                                                     tmp_path):
    import mlflow

    from training.families.classifier import (
        champion_classifier,
        load_registered_classifier,
        register_classifier,
        save_trained,
        set_classifier_champion,
    )
    from training.tracking import mlflow_run

    model, values, summary = trained
    weak = tmp_path / "weak.pt"
    save_trained(build_classifier("dense", {c: len(v) for c, v in values.items()}, 3, 16,
                                  hidden=16), tiny(), values, {"color": 0.5}, weak)
    uri, root = f"sqlite:///{tmp_path / 'm.db'}", str(tmp_path / "artifacts")
    tags = {"arch": "dense", "kind": "classifier", "label_columns": "color,category"}
    for path, score in ((summary["classifier"], summary["mean_heldout_accuracy"]),
                        (weak, 0.5)):
        with mlflow_run("classifier-dense", uri, root):
            register_classifier(path, {**tags, "mean_heldout_accuracy": str(score)})
    client = mlflow.MlflowClient(uri)
    assert set_classifier_champion(client, "fashion-classifier-dense") == "1"
    name, version = champion_classifier(client)
    assert (name, version) == ("fashion-classifier-dense", "1")
    net, loaded_values = load_registered_classifier(client, name, version)
    x, targets = toy_batch(8)
    assert loaded_values == values
    assert torch.equal(net.features(x), model.features(x))
    served = mlflow.pytorch.load_model(f"models:/{name}@champion")
    assert served(x).shape == (8, 4)
    with pytest.raises(ValueError, match="no champion among fashion-classifier-conv"):
        champion_classifier(client, "conv")


def test_person_crop_masks_are_the_clothing_classes(trained):
    from pipelines.processing.segmentation import CLASS_NAMES
    from training.robustness import clothing_mask

    labels = np.zeros((2, 32, 32), np.uint8)
    labels[:, 4:14, 8:24] = CLASS_NAMES.index("upper_clothes")
    labels[:, 14:28, 8:24] = CLASS_NAMES.index("lower_clothes")
    labels[:, 0:4, 12:20] = CLASS_NAMES.index("face")
    mask = clothing_mask(labels, 16)
    assert mask.shape == (2, 1, 16, 16)
    assert mask[0, 0, 1, 8] == 0 and mask[0, 0, 4, 8] == 1 and mask[0, 0, 10, 8] == 1
    assert mask[0, 0, 10, 2] == 0
    model, _, _ = trained
    x, targets = toy_batch(2)
    adv = fgsm(model, x, targets, 0.2, mask=mask)
    assert torch.equal(adv[(mask == 0).expand_as(x)], x[(mask == 0).expand_as(x)])
