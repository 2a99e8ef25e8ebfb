"""CGAN, ACGAN, infoGAN, EBGAN and BEGAN on both backbones: finite losses through the one loop,
samplers that registry users drive with training.latent.sampler_inputs alone, conditional
families trained on labelled images only and refusing data without the labels they need
before any training, infoGAN supervised by a label column as a conditional sampler, and BEGAN
resuming exactly with its k_t."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from pipelines.processing.h5store import write_image_store
from training.classic import Augmented
from training.datasets import open_dataset
from training.families.ebgan import pull_away
from training.family import get_family
from training.latent import sampler_inputs
from training.loop import train

FAMILIES = ("cgan", "acgan", "infogan", "ebgan", "began")
CONDITIONAL = ("cgan", "acgan")
SIZE = {"dcgan": 64, "infogan": 32}  # the 64 px store is resized for the infogan backbone


def tiny(name: str, **kw):
    """About a second of training: narrow nets, batch 4, every row logged."""
    extra = {"label_columns": ["color"]} if name in CONDITIONAL else {}
    return get_family(name).Config(**{"steps": 3, "batch_size": 4, "nz": 8, "ngf": 4,
                                       "ndf": 4, "log_every": 1, "sample_every": 100,
                                       "checkpoint_every": 100, **extra, **kw})


def rows(out) -> list[dict]:
    return [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]


def restored(name: str, cfg, store, out):
    family = get_family(name)
    return family.restore(cfg, open_dataset(store, **family.data_options(cfg)), out)


def sample(model, n: int = 5) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    tags = model.registry_tags()
    inputs, labels = sampler_inputs(n, tags, torch.Generator().manual_seed(0))
    with torch.no_grad():
        return model.sampler()(inputs), labels, tags


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These nets are tiny: on a busy 2-core box torch's intra-op threads only wait on each
    other (a 3-step run: 0.6 s on one thread, 3-7 s on the default)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def partly_labelled(tmp_path_factory):
    """40 images, the last 10 with no colour: conditional families must leave them out."""
    rng = np.random.default_rng(1)
    colour = rng.integers(0, 2, 40)
    images = np.repeat(np.where(colour == 1, 230, 20).astype(np.uint8), 64 * 64 * 3)
    labels = np.stack([colour == 0, colour == 1], 1).astype(np.uint8)
    labels[30:] = 0
    return write_image_store(tmp_path_factory.mktemp("partly") / "p.h5",
                             [f"P{i}" for i in range(40)], images.reshape(40, 64, 64, 3),
                             {"labels": labels},
                             attrs={"label_names": ["color_black", "color_white"]})


@pytest.fixture(scope="module")
def unlabelled_store(tmp_path_factory):
    return write_image_store(tmp_path_factory.mktemp("bare") / "u.h5",
                             [f"U{i}" for i in range(8)], np.zeros((8, 64, 64, 3), np.uint8))


@pytest.mark.parametrize("backbone", ["dcgan", "infogan"])
@pytest.mark.parametrize("name", FAMILIES)
def test_family_trains_on_both_backbones_and_exports_a_sampler(name, backbone, colour_store,
                                                               tmp_path):
    cfg = tiny(name, backbone=backbone)
    summary = train(name, cfg, colour_store, tmp_path)
    size = SIZE[backbone]
    assert (summary["backbone"], summary["image_size"], summary["channels"]) == \
        (backbone, size, 3)
    family = get_family(name)
    logged = rows(tmp_path)
    assert [r["step"] for r in logged] == [0, 1, 2]
    for r in logged:
        assert set(family.losses) <= set(r), (r, family.losses)
        assert all(np.isfinite(r[k]) for k in family.losses), r
    assert (tmp_path / "samples" / "step_000003.png").is_file()

    model = restored(name, cfg, colour_store, tmp_path)
    images, labels, tags = sample(model)
    assert images.shape == (5, 3, size, size)
    assert images.min() >= -1 and images.max() <= 1
    assert (tags["backbone"], tags["image_size"], tags["channels"]) == (backbone, str(size), "3")
    if name in CONDITIONAL:
        assert tags["kind"] == "conditional" and summary["kind"] == "conditional"
        assert (tags["label_columns"], tags["label_sizes"]) == ("color", "2")
        assert json.loads(tags["label_values"]) == {"color": ["black", "white"]}
        assert labels.shape == (5, 1) and summary["images_dropped_unlabelled"] == 0
        assert summary["images_labelled"] == 120
    else:
        assert tags["kind"] == "sampler" and labels is None
        assert "label_columns" not in tags
    expected_latent = {"infogan": "infogan:8:10:2", "ebgan": "uniform", "began": "uniform"}
    assert tags["latent"] == expected_latent.get(name, "normal")
    assert int(tags["nz"]) == {"infogan": 20}.get(name, 8)


@pytest.mark.parametrize("name", CONDITIONAL)
def test_conditional_families_train_only_on_labelled_images(name, partly_labelled, tmp_path):
    cfg = tiny(name, backbone="infogan", image_size=28)
    summary = train(name, cfg, partly_labelled, tmp_path)
    assert summary["images_labelled"] == 30 and summary["images_dropped_unlabelled"] == 10
    model = restored(name, cfg, partly_labelled, tmp_path)
    assert model.train_index().tolist() == list(range(30))


def test_infogan_supervised_by_a_label_column_is_a_conditional_sampler(partly_labelled,
                                                                       tmp_path):
    """The categorical code becomes the colour: z = noise + continuous codes from the latent
    `infogan:8:0:2`, then the colour's one-hot, exactly what sampler_inputs builds."""
    cfg = tiny("infogan", backbone="infogan", label_column="color")
    summary = train("infogan", cfg, partly_labelled, tmp_path)
    assert summary["kind"] == "conditional" and summary["images_dropped_unlabelled"] == 10
    assert all(np.isfinite(r["class_loss_real"]) for r in rows(tmp_path))
    model = restored("infogan", cfg, partly_labelled, tmp_path)
    images, labels, tags = sample(model, 4)
    assert (tags["kind"], tags["latent"], tags["nz"]) == ("conditional", "infogan:8:0:2", "10")
    assert (tags["label_columns"], tags["label_sizes"]) == ("color", "2")
    assert model.sampler_dim == 12 and images.shape == (4, 3, 32, 32) and labels.shape == (4, 1)
    assert model.netD.q.out_features == 2 + 2  # colour logits + continuous means


def test_infogan_gaussian_continuous_codes(colour_store, tmp_path):
    cfg = tiny("infogan", backbone="infogan", image_size=28, n_categorical=4,
               continuous_loss="gaussian")
    train("infogan", cfg, colour_store, tmp_path)
    assert all(np.isfinite(r["info_cont"]) for r in rows(tmp_path))
    model = restored("infogan", cfg, colour_store, tmp_path)
    assert model.netD.q.out_features == 4 + 2 * 2  # logits, means, log-variances
    assert model.registry_tags()["latent"] == "infogan:8:4:2"


@pytest.mark.parametrize("name, options, message", [
    ("cgan", {}, "has no `labels`"),
    ("acgan", {}, "has no `labels`"),
    ("infogan", {"label_column": "color"}, "has no `labels`"),
])
def test_conditional_family_refuses_a_store_without_labels(name, options, message,
                                                           unlabelled_store, tmp_path):
    with pytest.raises(ValueError) as e:
        train(name, tiny(name, **options), unlabelled_store, tmp_path)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "losses.jsonl").exists()


@pytest.mark.parametrize("name, options", [
    ("cgan", {"label_columns": ["color", "sleeve"]}),
    ("acgan", {"label_columns": ["sleeve"]}),
    ("infogan", {"label_column": "sleeve"}),
])
def test_conditional_family_refuses_an_unknown_column(name, options, colour_store, tmp_path):
    with pytest.raises(ValueError) as e:
        train(name, tiny(name, **options), colour_store, tmp_path)
    message = str(e.value)
    assert "no label column 'sleeve'; the store has: color" in message and "\n" not in message
    assert not (tmp_path / "losses.jsonl").exists()


def test_conditional_family_refuses_columns_nobody_has_and_duplicates(colour_store, tmp_path):
    with pytest.raises(ValueError, match="names a column twice"):
        train("cgan", tiny("cgan", label_columns="color,color"), colour_store, tmp_path)
    with pytest.raises(ValueError, match="infogan needs a code"):
        train("infogan", tiny("infogan", n_categorical=0, n_continuous=0), colour_store,
              tmp_path)


def test_default_label_columns_and_the_cli_list(colour_store, tmp_path):
    """Default category + color (the store has only color: one line naming it); the CLI takes
    the columns comma-separated."""
    from training.__main__ import main

    assert get_family("cgan").Config().label_columns == ["category", "color"]
    with pytest.raises(ValueError, match="no label column 'category'; the store has: color"):
        train("cgan", get_family("cgan").Config(steps=1, batch_size=4), colour_store, tmp_path)
    summary = main(["cgan", "--data", str(colour_store), "--out", str(tmp_path / "cli"),
                    "--label-columns", "color", "--steps", "2", "--batch-size", "4",
                    "--ngf", "4", "--ndf", "4", "--backbone", "infogan", "--no-progress"])
    assert summary["label_columns"] == ["color"] and summary["steps"] == 2


def test_began_resumes_exactly_with_its_k_t(colour_store, tmp_path):
    kw = {"backbone": "infogan", "image_size": 28, "lambda_k": 0.05}
    whole = train("began", tiny("began", steps=4, **kw), colour_store, tmp_path / "whole")
    train("began", tiny("began", steps=2, checkpoint_every=2, **kw), colour_store,
          tmp_path / "split")
    resumed = train("began", tiny("began", steps=4, checkpoint_every=2, **kw), colour_store,
                    tmp_path / "split")
    assert resumed["resumed_from"] == 2 and resumed["steps_run"] == 2
    assert rows(tmp_path / "whole") == rows(tmp_path / "split")  # k_t and M row by row
    assert whole["k_t"] == resumed["k_t"] > 0
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)["modules"]
    b = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)["modules"]
    assert float(a["balance"]["k"]) == pytest.approx(whole["k_t"], abs=1e-6)
    for module in a:
        assert all(torch.equal(a[module][k], b[module][k]) for k in a[module]), module


def test_began_controller_follows_its_equation_with_gamma_above_one(colour_store, tmp_path):
    """The demo profile's γ is 1.5: k_{t+1} = clip(k_t + λ_k (γ L(x) − L(G(z))), 0, 1) row by
    row, and γ beyond the allowed range is a one-line error before any training."""
    gamma, lambda_k = 1.5, 0.05
    cfg = tiny("began", steps=6, backbone="infogan", gamma=gamma, lambda_k=lambda_k)
    summary = train("began", cfg, colour_store, tmp_path)
    log = rows(tmp_path)
    assert len(log) == 6
    k = 0.0
    for row in log:
        assert row["k_t"] == pytest.approx(k, abs=5e-5)  # rows hold 5 decimals
        k = min(max(k + lambda_k * (gamma * row["l_real"] - row["l_fake"]), 0.0), 1.0)
        assert row["convergence"] == pytest.approx(
            row["l_real"] + abs(gamma * row["l_real"] - row["l_fake"]), abs=5e-5)
    assert summary["k_t"] == pytest.approx(k, abs=5e-5) and k > 0
    with pytest.raises(ValueError, match="gamma must be <= 4"):
        train("began", tiny("began", gamma=5.0), colour_store, tmp_path / "refused")
    assert not (tmp_path / "refused" / "losses.jsonl").exists()


def test_began_with_augment_reconstructs_the_augmented_image():
    """With `augment`, L(v) is taken at v = the augmented image, input and target alike: an
    autoencoder that reproduces its input perfectly loses nothing, although the policy moved
    the image (compared with the unaugmented image it would lose)."""
    began = get_family("began")
    model = began(tiny("began", backbone="infogan", augment="translation"), None,
                  torch.device("cpu"))
    model.netD = nn.Identity()
    model.D = Augmented(model.netD, "translation", 1.0)
    x = torch.rand(8, 3, 32, 32).mul(2).sub(1)
    torch.manual_seed(0)
    assert model.reconstruction(x).item() == 0.0
    torch.manual_seed(0)
    assert (model.D.augment(x) - x).abs().mean().item() > 0.01
    plain = began(tiny("began", backbone="infogan"), None, torch.device("cpu"))
    plain.netD = nn.Tanh()  # without augment: L(x) = mean |D(x) − x|
    assert plain.reconstruction(x).item() == pytest.approx((x.tanh() - x).abs().mean().item())


def test_pull_away_term():
    same = torch.ones(4, 8)
    assert pull_away(same).item() == pytest.approx(1.0)
    assert pull_away(torch.eye(4)).item() == pytest.approx(0.0)
    assert pull_away(torch.randn(1, 8)).item() == 0.0


@pytest.mark.parametrize("lambda_cls", [1.0, 0.25])
def test_acgan_weighs_the_classes_of_its_fakes_by_lambda_cls(lambda_cls, colour_store,
                                                            tmp_path):
    """D's loss is real/fake + the real classes + λ_cls x the fakes' classes (fp32, so the
    logged parts add up to the logged total); the same seed gives D the same first batch
    whatever λ_cls, and G a different loss."""
    cfg = tiny("acgan", backbone="infogan", image_size=28, bf16=False, lambda_cls=lambda_cls)
    train("acgan", cfg, colour_store, tmp_path / "run")
    first = rows(tmp_path / "run")[0]
    parts = (first["d_loss_real"] + first["d_loss_fake"] + first["class_loss_real"]
             + lambda_cls * first["class_loss_fake"])
    assert first["d_loss"] == pytest.approx(parts, rel=1e-5)
    paper = tiny("acgan", backbone="infogan", image_size=28, bf16=False)
    assert paper.lambda_cls == 1.0
    if lambda_cls != 1.0:
        train("acgan", paper, colour_store, tmp_path / "paper")
        base = rows(tmp_path / "paper")[0]
        assert base["d_loss_real"] == first["d_loss_real"]
        assert base["g_loss"] != first["g_loss"]
