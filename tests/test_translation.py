"""Image-to-image: the shared blocks, the translation measures, pix2pix through the CLI and
through its Dagster asset (registered as a translator), and the translator leaderboard."""

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
from training.loop import train
from training.models.translation import (
    AdaIN,
    AdaINResBlock,
    ImagePool,
    define_D,
    define_G,
    init_weights,
    patch_layers,
    receptive_field,
)
from training.paired import build_paired_store
from training.translation_metrics import (
    Edit,
    diversity,
    edit_success,
    evaluate_translator,
    frechet_in_classifier_space,
    l1,
    predict,
    preservation,
    psnr,
    ssim,
    translation_grid,
)
from training.translator_board import best_version, translator_board

PALETTE = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200]], np.uint8)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """A tiny catalogue: 48 packshots (a coloured square on white, labelled by colour) and
    their person crops (a figure in the same colour on grey, stored in another order), joined
    into a 32 px paired store with 16 test pairs; and an attribute classifier trained on the
    packshots for a few steps (its feature space is what FD is measured in)."""
    root = tmp_path_factory.mktemp("translation")
    n, size = 48, 64
    colour = np.random.default_rng(0).integers(0, 3, n)
    a = np.full((n, size, size, 3), 255, np.uint8)
    a[:, 16:48, 16:48] = PALETTE[colour][:, None, None]
    b = np.full((n, size, size, 3), 120, np.uint8)
    b[:, 8:56, 24:40] = PALETTE[colour][:, None, None]
    ids = [f"P{i}" for i in range(n)]
    packshots = write_image_store(
        root / "packshots.h5", ids, a,
        {"labels": np.eye(3, dtype=np.uint8)[colour], "split": np.zeros(n, np.uint8)},
        attrs={"label_names": ["color_red", "color_green", "color_blue"],
               "split_names": ["train", "val", "test"]})
    crops = write_image_store(root / "crops.h5", ids[::-1], b[::-1])
    paired = root / "datasets" / "paired_images.h5"
    paired.parent.mkdir()
    build_paired_store(packshots, crops, paired, min_test=16, size=32)
    classifier = root / "models" / "attribute_classifier.pt"
    save_classifier(train_classifier(packshots, steps=3, batch_size=8, width=4), classifier, 4)
    return {"root": root, "packshots": packshots, "paired": paired, "classifier": classifier}


# ----- the blocks -----------------------------------------------------------------------------
@pytest.mark.parametrize("size", [32, 64, 128])
def test_generators_and_patchgan_keep_the_image_shape(size):
    x = torch.randn(2, 3, size, size)
    for name in ("unet", "resnet_6blocks", "resnet_9blocks"):
        net_g = define_G(3, 3, 4, name, image_size=size)
        out = net_g(x)
        assert out.shape == x.shape and out.abs().max() <= 1
    net_d = define_D(6, 4, "basic", image_size=size)
    # the paper's 30x30 grid of 70x70 patches at 256 px, scaled: 16x16 patches at 32 and 64
    assert net_d.receptive_field == {32: 16, 64: 16, 128: 34}[size]
    assert net_d(torch.cat([x, x], 1)).shape == (2, 1, {32: 14, 64: 30, 128: 30}[size],
                                                {32: 14, 64: 30, 128: 30}[size])
    assert define_D(3, 4, "pixel")(x).shape == (2, 1, size, size)


def test_patchgan_receptive_fields_and_sizes_refused():
    assert [receptive_field(n) for n in (1, 2, 3, 4)] == [16, 34, 70, 142]
    assert [patch_layers(s) for s in (32, 64, 128, 256)] == [1, 1, 2, 3]
    with pytest.raises(ValueError, match="power of two >= 32 px, got 48"):
        define_G(3, 3, 4, "unet", image_size=48)
    with pytest.raises(ValueError, match="netG must be one of"):
        define_G(3, 3, 4, "unet_512")
    with pytest.raises(ValueError, match="norm must be one of"):
        define_D(3, 4, norm="layer")


def test_conditional_generator_tiles_the_labels():
    net_g = define_G(3, 3, 4, "resnet_6blocks", norm="instance", cond_nc=5)
    x = torch.randn(2, 3, 32, 32)
    red, blue = torch.eye(5)[[0, 0]], torch.eye(5)[[4, 4]]
    assert net_g(x, red).shape == x.shape
    assert not torch.allclose(net_g(x, red), net_g(x, blue))
    assert net_g.net.model[1].in_channels == 8  # 3 image channels + 5 label maps


def test_init_weights_is_the_repos():
    net = init_weights(nn.Sequential(nn.Conv2d(64, 64, 3), nn.BatchNorm2d(64)), "normal", 0.02)
    assert abs(float(net[0].weight.std()) - 0.02) < 0.002 and float(net[0].bias.abs().max()) == 0
    assert abs(float(net[1].weight.mean()) - 1) < 0.01


def test_adain_sets_each_channels_statistics():
    x = torch.randn(3, 4, 16, 16) * 5 + 2
    gamma, beta = torch.rand(3, 4) + 0.5, torch.randn(3, 4)
    y = AdaIN(4)(x, gamma, beta)
    torch.testing.assert_close(y.mean((2, 3)), beta, atol=1e-4, rtol=0)
    torch.testing.assert_close(y.std((2, 3), unbiased=False), gamma, atol=1e-3, rtol=0)
    block = AdaINResBlock(4)
    assert block(x, torch.randn(3, block.n_params)).shape == x.shape


def test_image_pool_fills_then_swaps_half_seeded_and_checkpointed():
    pool = ImagePool(4, (1, 2, 2))
    images = [torch.full((2, 1, 2, 2), float(i)) for i in range(20)]
    first = pool.query(images[0], torch.Generator().manual_seed(0))
    assert torch.equal(first, images[0]) and int(pool.count) == 2  # filling: returned as is
    gen = torch.Generator().manual_seed(1)
    pool.query(images[1], gen)
    state, gen_state = {k: v.clone() for k, v in pool.state_dict().items()}, gen.get_state()
    out = torch.cat([pool.query(x, gen) for x in images[2:]])
    old = out.flatten(1)[:, 0] < torch.arange(2, 20).repeat_interleave(2)
    assert 0.25 < float(old.float().mean()) < 0.75  # about half come from the history
    resumed = ImagePool(4, (1, 2, 2))
    resumed.load_state_dict(state)
    gen.set_state(gen_state)
    assert torch.equal(torch.cat([resumed.query(x, gen) for x in images[2:]]), out)
    assert torch.equal(ImagePool(0, (1, 2, 2)).query(images[3]), images[3])


# ----- the measures ---------------------------------------------------------------------------
def smooth_images(n: int = 4, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 8, 8, generator=g) * 2 - 1
    return nn.functional.interpolate(coarse, size=size, mode="bilinear", align_corners=False)


def test_l1_psnr_ssim_against_known_values():
    x = smooth_images()
    assert l1(x, x) == 0 and psnr(x, x) == pytest.approx(100.0)  # identical: capped
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-5)
    assert l1(x, x + 0.2) == pytest.approx(0.2, abs=1e-6)
    zero = torch.zeros(2, 3, 32, 32)
    # 0.2 in [-1, 1] is 0.1 on [0, 1]: MSE 0.01, 20 dB
    assert psnr(zero, zero + 0.2) == pytest.approx(20.0, abs=1e-4)
    # flat images: SSIM is the luminance term (2ab + C1) / (a² + b² + C1), a = 0.5, b = 0.75
    c1 = 0.01 ** 2
    assert ssim(zero, zero + 0.5) == pytest.approx((2 * 0.5 * 0.75 + c1)
                                                   / (0.25 + 0.5625 + c1), abs=1e-5)


def test_ssim_and_psnr_fall_as_noise_grows():
    x = smooth_images()
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(x.shape, generator=g)
    scores = [(ssim(x, (x + s * noise).clamp(-1, 1)), psnr(x, (x + s * noise).clamp(-1, 1)))
              for s in (0.05, 0.2, 0.5)]
    assert scores[0][0] > scores[1][0] > scores[2][0] and scores[0][0] < 1
    assert scores[0][1] > scores[1][1] > scores[2][1]


def test_diversity_is_the_mean_pairwise_distance():
    assert diversity(np.array([[0.0, 0.0], [3.0, 4.0]])) == pytest.approx(5.0)
    assert diversity(np.ones((2, 3, 5))) == 0.0
    with pytest.raises(ValueError, match="at least 2 outputs"):
        diversity(np.ones((1, 5)))


def test_classifier_measures(stores):
    classifier, _ = load_classifier(stores["classifier"])
    x = smooth_images(8, 64)
    assert frechet_in_classifier_space(x, x, classifier) < 1e-3
    assert frechet_in_classifier_space(-x, x, classifier) > frechet_in_classifier_space(
        x + 0.01, x, classifier)
    seen = predict(classifier, x)["color"]
    assert edit_success(classifier, x, "color", seen) == 1.0
    assert edit_success(classifier, x, "color", (seen + 1) % 3) == 0.0
    assert edit_success(classifier, x, "color", -1) == 0.0  # a value it has no class for
    assert preservation(classifier, x, x) == {"preservation_color": 1.0, "preservation": 1.0}


class Shift(nn.Module):
    """A toy conditional translator: adds the mean of its second input to the image."""

    def forward(self, x, c):
        return (x + c.mean(1).view(-1, 1, 1, 1)).clamp(-1, 1)


def test_evaluate_translator_reports_what_its_set_allows(stores):
    classifier, values = load_classifier(stores["classifier"])
    x = smooth_images(6, 64)
    same = evaluate_translator(nn.Identity(), x, classifier, values, targets=x, reference=x)
    assert same["l1"] == 0 and same["psnr"] == 100 and same["ssim"] == pytest.approx(1)
    assert same["frechet_distance"] < 1e-3 and same["n_test"] == 6
    assert "diversity" not in same and "edit_success" not in same
    zeros = torch.zeros(6, 2)
    edited = evaluate_translator(
        Shift(), x, classifier, values, condition=zeros, identity=zeros,
        edits=[Edit("color=red", zeros, "color", "red"), Edit("color=none", zeros, "color",
                                                             "purple")])
    assert edited["identity_l1"] == 0 and edited["edit_success_color=none"] == 0
    assert edited["preservation"] == 1.0  # no other column than the edited one
    assert edited["edit_success"] == pytest.approx(edited["edit_success_color=red"] / 2)
    multimodal = evaluate_translator(Shift(), x, classifier, values,
                                     style=lambda n, g: torch.randn(n, 2, generator=g))
    assert multimodal["diversity"] > 0


def test_translation_grid_groups_input_output_target(tmp_path):
    from PIL import Image

    x = smooth_images(16, 64)
    path = translation_grid([("input", x), ("output", -x), ("target", x)], tmp_path / "g.png")
    # 4 products a row, 3 images each (2 px apart), 8 px between products, 14 px of titles
    assert Image.open(path).size == (4 * (3 * 66 - 2) + 3 * 8, 14 + 4 * 66)


# ----- pix2pix --------------------------------------------------------------------------------
TINY = ["--steps", "2", "--batch-size", "4", "--ngf", "4", "--ndf", "4", "--no-progress"]


def test_pix2pix_cli_trains_and_reports(stores, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "training", "pix2pix", "--data", str(stores["paired"]),
         "--out", str(tmp_path / "run"), "--fd-classifier", str(stores["classifier"]), *TINY],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["kind"] == "translator" and summary["domains"] == "packshot->person"
    assert set(summary["final_losses"]) == {"d_real", "d_fake", "g_gan", "g_l1"}
    measures = summary["measures"]
    assert measures["n_test"] == 16 and 0 < measures["l1"] < 2 and -1 < measures["ssim"] < 1
    assert measures["psnr"] > 0 and measures["frechet_distance"] >= 0
    for name in ("translation.png", "translator.pt", "samples/step_000002.png"):
        assert (tmp_path / "run" / name).exists()


def test_pix2pix_refuses_an_image_store_in_one_line(stores, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "training", "pix2pix", "--data", str(stores["packshots"]),
         "--out", str(tmp_path / "run"), *TINY], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].endswith(
        "pix2pix trains on a paired store (datasets/paired_images.h5, the paired_images asset), "
        "not an image store")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_pix2pix_resumes_exactly_and_trains_either_direction(stores, tmp_path):
    from training.families.pix2pix import Pix2PixConfig

    def cfg(steps: int, direction: str = "a2b") -> Pix2PixConfig:
        return Pix2PixConfig(steps=steps, batch_size=4, ngf=4, ndf=4, log_every=1,
                             direction=direction)

    train("pix2pix", cfg(3), stores["paired"], tmp_path / "straight")
    train("pix2pix", cfg(2), stores["paired"], tmp_path / "resumed")
    summary = train("pix2pix", cfg(3), stores["paired"], tmp_path / "resumed")
    assert summary["resumed_from"] == 2 and summary["domains"] == "packshot->person"
    straight, resumed = (torch.load(tmp_path / k / "translator.pt")
                         for k in ("straight", "resumed"))
    for k in straight:  # dropout, flips and batches continue as if never stopped
        torch.testing.assert_close(straight[k], resumed[k], rtol=0, atol=0)
    back = train("pix2pix", cfg(1, "b2a"), stores["paired"], tmp_path / "b2a")
    assert back["domains"] == "person->packshot"


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_pix2pix_judges_both_pairs_in_one_call_as_in_two(stores, norm):
    """D on the (input, target) and (input, output) pairs as one call, each batch norm on
    its own pair batch: the gradients and running statistics of two calls, three steps."""
    from stacked_calls import assert_same_gradients, separate_calls, step_gradients

    from training.families.pix2pix import Pix2Pix, Pix2PixConfig
    from training.loop import prepare

    cfg = Pix2PixConfig(steps=3, batch_size=4, ngf=4, ndf=4, log_every=1, bf16=False, norm=norm)
    _, data = prepare("pix2pix", cfg, stores["paired"])
    ours, reference = (step_gradients(f, cfg, data, 3, ("netG", "netD"))
                       for f in (Pix2Pix, separate_calls(Pix2Pix)))
    assert_same_gradients(ours, reference)


def test_pix2pix_asset_registers_a_translator_with_a_champion(stores, tmp_path):
    """The generated asset on a tiny store (its paired_images and attribute classifier):
    evaluated by evaluate_translator, registered as fashion-pix2pix with the translator tags,
    its sheet on the asset page; the translator leaderboard then crowns it."""
    import mlflow
    from dagster import RunConfig, materialize

    from pipelines.assets.training import ASSETS_BY_NAME, asset_config
    from pipelines.assets.translation import TranslatorBoardConfig, translator_leaderboard
    from pipelines.resources import MLflowResource, StorageResource

    store = stores["root"]
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    resources = {"storage": StorageResource(root=str(store)),
                 "mlflow": MLflowResource(tracking_uri=uri,
                                          artifact_root=str(tmp_path / "artifacts"))}
    name = "pix2pix_packshot_to_person"
    result = materialize(
        [ASSETS_BY_NAME[name], translator_leaderboard], resources=resources,
        run_config=RunConfig(ops={
            name: asset_config(name, steps=2, batch_size=4, ngf=4, ndf=4, eval_samples=10),
            "translator_leaderboard": TranslatorBoardConfig()}))
    assert result.success
    [event] = result.asset_materializations_for_node(name)
    meta = {k: v.value for k, v in event.metadata.items()}
    assert {"l1", "psnr", "ssim", "frechet_distance"} <= set(meta["metrics"])
    assert "translation" in meta  # the input | output | target sheet
    assert meta["classifier"] == "file attribute_classifier.pt"  # none registered: the file
    client = mlflow.MlflowClient(tracking_uri=uri)
    [version] = client.search_model_versions("name='fashion-pix2pix'")
    tags = version.tags
    assert tags["kind"] == "translator" and tags["domains"] == "packshot->person"
    assert tags["image_size"] == "32" and tags["conditioning"] == "none"
    assert tags["main_measure"] == "l1" and tags["main_goal"] == "min"
    assert tags["data"] == "paired_images" and tags["variant"] == "packshot_to_person"
    run = client.get_run(version.run_id)
    assert run.data.metrics["l1"] == meta["metrics"]["l1"]
    mlflow.set_tracking_uri(uri)
    net = mlflow.pytorch.load_model("models:/fashion-pix2pix@champion")
    assert net(torch.zeros(5, 3, 32, 32)).shape == (5, 3, 32, 32)
    [board] = result.asset_materializations_for_node("translator_leaderboard")
    assert board.metadata["champions"].value == {"fashion-pix2pix": int(version.version)}
    table = pd.read_csv(store / "evaluation" / "translators.csv")
    assert table.loc[0, "l1"] == pytest.approx(meta["metrics"]["l1"])
    assert "pix2pix" in (store / "evaluation" / "translators.md").read_text()


def test_champion_is_chosen_by_each_models_main_measure():
    table = pd.DataFrame({"model": ["m"] * 3, "version": [1, 2, 3], "l1": [0.3, 0.1, 0.1],
                          "psnr": [20.0, 25.0, 18.0], "main_measure": ["l1"] * 3,
                          "main_goal": ["min"] * 3})
    assert best_version(table) == 2  # lowest L1; a tie goes to the older version
    table["main_measure"], table["main_goal"] = "psnr", "max"
    assert best_version(table) == 2
    table["main_measure"] = "frechet_distance"  # a measure none recorded: no champion
    assert best_version(table) is None


def test_a_model_with_several_variants_gets_a_champion_per_variant(tmp_path):
    """CycleGAN's two variants are two tasks under one registered model: `champion` still
    follows the newest version's main measure, and each variant's best version also gets
    `champion-<variant>` (on a real sqlite registry)."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.create_experiment("t", artifact_location=str(tmp_path / "artifacts"))
    client.create_registered_model("fashion-cyclegan")
    versions = [("packshot_person", "frechet_distance", "min", 900.0),
                ("packshot_person", "frechet_distance", "min", 700.0),
                ("sleeve_short_long", "edit_success", "max", 0.2),
                ("sleeve_short_long", "edit_success", "max", 0.1)]
    for variant, measure, goal, value in versions:
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, measure, value)
        client.set_terminated(run.info.run_id)
        client.create_model_version(
            "fashion-cyclegan", str(tmp_path / "model"), run.info.run_id,
            tags={"kind": "translator", "variant": variant, "main_measure": measure,
                  "main_goal": goal})
    _, champions, text = translator_board(client, tmp_path / "evaluation")
    aliases = client.get_registered_model("fashion-cyclegan").aliases
    assert champions == {"fashion-cyclegan": 3}  # the newest's measure: edit success
    assert aliases == {"champion": 3, "champion-packshot_person": 2,
                       "champion-sleeve_short_long": 3}
    assert "champion-<variant>" in text
