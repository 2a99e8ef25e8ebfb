"""BiGAN's paper options: L′_AD, unrolled D, batch-norm decay, normalised L_H features."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from pipelines.processing.h5store import write_image_store
from training.classifier import save_classifier, train_classifier
from training.cli import config_from_args, parser
from training.config import check_config
from training.datasets import open_dataset
from training.families.bigan import BiGAN, BiGANConfig, feature_penalty, load_networks
from training.features import feature_net
from training.loop import train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Flat colour cards with a darker band, as in test_bigan.py."""
    rng = np.random.default_rng(0)
    images = np.empty((40, 64, 64, 3), np.uint8)
    for i in range(40):
        images[i] = rng.integers(30, 225, 3)
        images[i, 20 + i % 20:30 + i % 20] //= 2
    return write_image_store(tmp_path_factory.mktemp("d") / "cards.h5",
                             [f"P{i}" for i in range(40)], images)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, colour_store):
    return save_classifier(train_classifier(colour_store, steps=2, width=4),
                           tmp_path_factory.mktemp("m") / "classifier.pt", 4)


def tiny(**kw) -> BiGANConfig:
    return BiGANConfig(**{"steps": 3, "batch_size": 4, "nz": 16, "ngf": 8, "nef": 8, "ndf": 8,
                          "log_every": 1, "sample_every": 100, "checkpoint_every": 100,
                          "holdout": 0.2, "preset": "EX4", "bf16": False, **kw})


def rows_of(out) -> list[dict]:
    return [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]


def built(cfg: BiGANConfig, path) -> BiGAN:
    """The family as the loop builds it (seeded), on the CPU, without training."""
    family = BiGAN(cfg, open_dataset(path), torch.device("cpu"))
    torch.manual_seed(cfg.seed)
    family.build()
    return family


def one_step(family: BiGAN) -> None:
    x = family.data.batch(family.train_idx[:4])
    torch.manual_seed(5)  # D's dropout draws from the global generator
    family.step(x, None, torch.Generator().manual_seed(1), measure=True)


def test_options_are_validated_flags():
    for bad, match in (({"latent_loss": "l_x"}, "latent_loss must be one of"),
                       ({"unroll_steps": -1}, "unroll_steps must be >= 0"),
                       ({"bn_momentum": 0.0}, "bn_momentum must be > 0"),
                       ({"bn_momentum": 1.5}, "bn_momentum must be <= 1")):
        with pytest.raises(ValueError, match=match):
            check_config(BiGANConfig(**bad))
    args = parser().parse_args(
        ["bigan", "--data", "d.h5", "--out", "o", "--latent-loss", "l_ad_prime",
         "--unroll-steps", "2", "--bn-momentum", "0.03", "--normalize-features"])
    cfg = config_from_args(BiGAN, args)
    assert (cfg.latent_loss, cfg.unroll_steps, cfg.bn_momentum, cfg.normalize_features) == (
        "l_ad_prime", 2, 0.03, True)
    default = BiGANConfig()
    assert (default.latent_loss, default.unroll_steps, default.bn_momentum,
            default.normalize_features) == ("l_ad", 0, 0.1, False)


def test_l_ad_prime_is_optimised_and_logged(data, tmp_path):
    """λ1 weighs L′_AD instead of L_AD; both are logged and they differ."""
    train("bigan", tiny(latent_loss="l_ad_prime"), data, tmp_path / "prime")
    train("bigan", tiny(), data, tmp_path / "plain")
    prime, plain = rows_of(tmp_path / "prime"), rows_of(tmp_path / "plain")
    for r in prime:
        assert np.isfinite(r["l_ad_prime"]) and np.isfinite(r["l_ad"])
        assert r["l_ad_prime"] != r["l_ad"]
        # EX4: λ1 = 1 and no other penalty, so loss_ge = g_adv + L′_AD
        assert r["loss_ge"] == pytest.approx(r["g_loss_adv"] + r["l_ad_prime"], abs=2e-5)
    assert all("l_ad_prime" not in r for r in plain)  # the default row is unchanged
    assert prime[0]["loss_ge"] != plain[0]["loss_ge"]
    assert prime[-1]["l_ad"] != plain[-1]["l_ad"]  # a different update


def test_unrolled_d_is_restored_and_changes_g(data):
    plain, unrolled = built(tiny(lr=2e-3), data), built(tiny(lr=2e-3, unroll_steps=2), data)
    one_step(plain)
    one_step(unrolled)
    # D's weights and Adam state where its own update left them (its batch-norm running
    # statistics go back to before the unrolled steps, so they differ by G's D passes)
    d0, d1 = dict(plain.netD.named_parameters()), dict(unrolled.netD.named_parameters())
    assert all(torch.equal(d0[k], d1[k]) for k in d0)
    s0, s1 = (f.optimizers["optD"].state_dict()["state"] for f in (plain, unrolled))
    assert all(torch.equal(s0[i][k], s1[i][k]) for i in s0 for k in s0[i])
    g0, g1 = plain.netG.state_dict(), unrolled.netG.state_dict()
    assert any(not torch.equal(g0[k], g1[k]) for k in g0 if g0[k].is_floating_point())


def test_unrolled_training_runs_and_resumes(data, tmp_path):
    whole = train("bigan", tiny(steps=4, unroll_steps=1, checkpoint_every=2), data,
                  tmp_path / "whole")
    train("bigan", tiny(steps=2, unroll_steps=1, checkpoint_every=2), data, tmp_path / "split")
    resumed = train("bigan", tiny(steps=4, unroll_steps=1, checkpoint_every=2), data,
                    tmp_path / "split")
    assert whole["final_losses"] == resumed["final_losses"]


def test_bn_momentum_reaches_every_batchnorm(data, tmp_path):
    family = built(tiny(bn_momentum=0.03), data)
    for name in ("netG", "netE", "netD"):
        norms = [m for m in family.modules[name].modules() if isinstance(m, nn.BatchNorm2d)]
        assert norms and all(m.momentum == 0.03 for m in norms), name
    assert all(m.momentum == 0.1 for m in built(tiny(), data).netD.modules()
               if isinstance(m, nn.BatchNorm2d))
    train("bigan", tiny(bn_momentum=0.03, steps=1), data, tmp_path)
    net_g, net_e = load_networks(tmp_path, tiny(bn_momentum=0.03))
    assert all(m.momentum == 0.03 for net in (net_g, net_e) for m in net.modules()
               if isinstance(m, nn.BatchNorm2d))


class Scaled(nn.Module):
    def __init__(self, net: nn.Module, scale: float):
        super().__init__()
        self.net, self.scale = net, scale

    def forward(self, x):
        return self.scale * self.net(x)


def test_normalized_features_are_scale_invariant(classifier, data, tmp_path):
    feats = feature_net("classifier", classifier)
    ds = open_dataset(data)
    x, y = ds.batch(torch.arange(4)), ds.batch(torch.arange(4, 8))
    raw = [feature_penalty(Scaled(feats, s), x, y, 0.05) for s in (1.0, 10.0)]
    unit = [feature_penalty(Scaled(feats, s), x, y, 0.05, normalize=True) for s in (1.0, 10.0)]
    assert raw[1] > 2 * raw[0]
    assert unit[1].item() == pytest.approx(unit[0].item(), rel=1e-5)
    assert unit[0] != raw[0]
    base = tiny(preset="EX6", steps=2, feature_weights=str(classifier))
    train("bigan", base, data, tmp_path / "raw")
    train("bigan", tiny(preset="EX6", steps=2, feature_weights=str(classifier),
                        normalize_features=True), data, tmp_path / "unit")
    assert all(np.isfinite(r["l_h"]) for r in rows_of(tmp_path / "unit"))
    # the tiny classifier's L_H is below the log's rounding: compare what G learnt instead
    a, b = (torch.load(tmp_path / run / "generator.pt", weights_only=True)
            for run in ("raw", "unit"))
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())
