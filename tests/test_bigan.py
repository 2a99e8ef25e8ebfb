"""BiGAN with latent reconstruction: networks, presets, losses, reconstruction, resume, CLI."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.processing.h5store import write_image_store
from training.classifier import save_classifier, train_classifier
from training.config import check_config
from training.families.bigan import LOSSES, PRESETS, BiGANConfig, load_networks
from training.loop import train
from training.losses import pseudo_huber
from training.models.bigan import define_D, define_E, define_G


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Flat colour cards with a darker band: structure an encoder can learn in a few steps."""
    rng = np.random.default_rng(0)
    images = np.empty((40, 64, 64, 3), np.uint8)
    for i in range(40):
        images[i] = rng.integers(30, 225, 3)
        images[i, 20 + i % 20:30 + i % 20] //= 2
    return write_image_store(tmp_path_factory.mktemp("d") / "cards.h5",
                             [f"P{i}" for i in range(40)], images)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, colour_store):
    """A tiny attribute classifier: L_H's offline feature network."""
    return save_classifier(train_classifier(colour_store, steps=2, width=4),
                           tmp_path_factory.mktemp("m") / "classifier.pt", 4)


def tiny(**kw) -> BiGANConfig:
    return BiGANConfig(**{"steps": 4, "batch_size": 4, "nz": 16, "ngf": 8, "nef": 8, "ndf": 8,
                          "log_every": 1, "sample_every": 2, "checkpoint_every": 2,
                          "holdout": 0.2, "preset": "EX4", **kw})


def test_networks():
    g, e, d = define_G(nz=16, ngf=8), define_E(nz=16, nef=8), define_D(nz=16, ndf=8)
    z = torch.rand(3, 16, 1, 1) * 2 - 1
    x = g(z)
    assert x.shape == (3, 3, 64, 64) and e(x).shape == (3, 16, 1, 1)
    assert d(x, z).shape == (3,)


def test_presets_are_the_papers_grid():
    assert PRESETS["EX1"] == (0.05, 0.0, 0.0) and PRESETS["EX4"] == (1.0, 0.0, 0.0)
    assert PRESETS["EX7"] == (2.5, 0.0, 0.0) and PRESETS["EX5"] == (1.0, 1.0, 0.0)
    assert PRESETS["EX9"] == (2.5, 0.0, 1.0) and len(PRESETS) == 9
    assert BiGANConfig(preset="EX2", lambda_h=0.5).lambdas == (0.05, 1.0, 0.5)
    with pytest.raises(ValueError, match="preset must be one of .*EX1"):
        check_config(BiGANConfig(preset="EX10"))
    full = BiGANConfig.profile("full", preset="EX4")
    assert (full.ngf, full.batch_size, full.preset) == (64, 64, "EX4")


def test_pseudo_huber():
    small, large = torch.full((10,), 1e-3), torch.full((10,), 10.0)
    assert pseudo_huber(torch.zeros(5)).item() == 0.0
    assert pseudo_huber(small).item() == pytest.approx(1e-6 / 2, rel=1e-3)  # ≈ d²/2
    assert pseudo_huber(large).item() == pytest.approx(0.05 * 10, rel=0.01)  # ≈ γ|d|


@pytest.mark.parametrize("preset", ["EX1", "EX5", "EX6"])
def test_every_term_logged_and_grids_written(preset, data, classifier, tmp_path):
    summary = train("bigan", tiny(preset=preset, feature_weights=str(classifier)), data, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    for r in rows:
        assert set(LOSSES) <= set(r) and all(np.isfinite(r[k]) for k in LOSSES)
    assert summary["lambdas"] == dict(zip(("ad", "ae", "h"), PRESETS[preset], strict=True))
    assert summary["held_out_images"] == 8  # 20% of 40, never trained on
    for key in ("reconstruction_error_pixel", "reconstruction_error_latent", "flip_gap"):
        assert np.isfinite(summary[key])
    # 8 held-out originals over their 8 reconstructions: 2 rows of 8 cells of 64 + padding
    grid = Image.open(tmp_path / "reconstruction.png")
    assert grid.size == (8 * 66 + 2, 2 * 66 + 2)
    assert (tmp_path / "reconstructions" / "step_000004.png").exists()
    assert (tmp_path / "samples" / "step_000002.png").exists()


def test_pixel_term_trains_the_encoder(data, tmp_path):
    """The same run with and without a (dominant) L_AE: with it, held-out images come back
    through E and G clearly closer to themselves. 200 steps: at 100 the AMX Xeon's fp32
    kernels gave 0.341 against 0.400 (0.85x); at 200, 0.348 against 0.452 (0.77x)."""
    common = dict(steps=200, batch_size=8, preset="EX5", lambda_ad=0.0, lr=2e-3, bf16=False,
                  log_every=50, sample_every=1000, checkpoint_every=1000)
    without = train("bigan", tiny(**common, lambda_ae=0.0), data, tmp_path / "without")
    with_ae = train("bigan", tiny(**common, lambda_ae=1000.0), data, tmp_path / "with")
    assert with_ae["reconstruction_error_pixel"] < 0.85 * without["reconstruction_error_pixel"]


def test_lambda_changes_training(data, tmp_path):
    a = train("bigan", tiny(preset="EX1", steps=2, bf16=False), data, tmp_path / "a")
    b = train("bigan", tiny(preset="EX7", steps=2, bf16=False), data, tmp_path / "b")
    c = train("bigan", tiny(preset="EX1", steps=2, bf16=False), data, tmp_path / "c")
    assert a["final_losses"] == c["final_losses"]  # seeded
    assert a["final_losses"]["loss_ge"] != b["final_losses"]["loss_ge"]


def test_resume_is_exact(data, tmp_path):
    whole = train("bigan", tiny(), data, tmp_path / "whole")
    train("bigan", tiny(steps=2), data, tmp_path / "split")
    resumed = train("bigan", tiny(), data, tmp_path / "split")
    assert resumed["resumed_from"] == 2 and resumed["steps_run"] == 2
    for name in ("generator.pt", "encoder.pt"):
        a = torch.load(tmp_path / "whole" / name, weights_only=True)
        b = torch.load(tmp_path / "split" / name, weights_only=True)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert whole["final_losses"] == resumed["final_losses"]
    netG, netE = load_networks(tmp_path / "whole", tiny())
    assert netE(netG(torch.zeros(1, 16, 1, 1))).shape == (1, 16, 1, 1)


def test_l_h_needs_its_feature_network(data, tmp_path):
    with pytest.raises(FileNotFoundError, match="attribute_classifier"):
        train("bigan", tiny(preset="EX6", feature_weights=str(tmp_path / "missing.pt")), data,
                    tmp_path / "run")


def test_cli_and_torchrun(data, classifier, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "training", "bigan", "--preset", "EX4", "--steps", "2",
         "--batch-size", "4", "--ngf", "8", "--ndf", "8", "--nef", "8", "--data", str(data),
         "--out", str(tmp_path / "run")], check=True, capture_output=True, text=True,
        timeout=300)
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["family"] == "bigan" and summary["preset"] == "EX4"
    assert summary["steps"] == 2 and {"images_per_s", "wall_s"} <= set(summary)
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "training", "bigan", "--preset", "EX6", "--feature-weights", str(classifier),
         "--steps", "3", "--batch-size", "4", "--ngf", "8", "--ndf", "8", "--nef", "8",
         "--data", str(data), "--out", str(tmp_path / "ddp"), "--fp32"],
        check=True, capture_output=True, text=True, timeout=300)
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1 and lines[0]["world_size"] == 2
    assert (tmp_path / "ddp" / "reconstruction.png").exists()
