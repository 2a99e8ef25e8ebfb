"""The training frame itself: the registry, the generated CLI and Dagster config, progress,
loss curves, and resume refusing a changed config."""

import dataclasses
import io
import subprocess
import sys

import numpy as np
import pytest
from pydantic import ValidationError

from pipelines.processing.h5store import write_image_store
from training.cli import Progress, config_fields, parser
from training.config import check_config
from training.families.dcgan import DCGANConfig
from training.family import load_families
from training.loop import train

FAMILIES = ("acgan", "began", "bigan", "cgan", "classifier", "colorization", "cyclegan", "dcgan",
            "dragan", "ebgan", "fader", "fashiongan", "fashiongan_single", "gan", "infogan",
            "lsgan", "munit", "pix2pix", "stargan", "wgan", "wgan_gp")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rng = np.random.default_rng(0)
    return write_image_store(tmp_path_factory.mktemp("frame") / "s.h5",
                             [f"P{i}" for i in range(16)],
                             rng.integers(0, 255, (16, 64, 64, 3), dtype=np.uint8))


def tiny(**kw) -> DCGANConfig:
    return DCGANConfig(**{"steps": 2, "batch_size": 4, "nz": 16, "ngf": 8, "ndf": 8,
                          "log_every": 1, **kw})


def test_every_family_is_registered_and_listed():
    assert tuple(load_families()) == FAMILIES
    out = subprocess.run([sys.executable, "-m", "training", "--list"], check=True,
                         capture_output=True, text=True, timeout=120).stdout.splitlines()
    assert [line.split()[0] for line in out] == list(FAMILIES)
    assert all(line.split()[1] in ("sampler", "conditional", "translator", "classifier")
               for line in out)


@pytest.mark.parametrize("name", FAMILIES)
def test_cli_flags_and_dagster_config_come_from_the_config_dataclass(name):
    from pipelines.assets.training import ASSETS_BY_NAME

    family = load_families()[name]
    sub = parser()._subparsers._group_actions[0].choices[name]
    flags = {a.dest for a in sub._actions}
    fields = {f.name for f, _ in config_fields(family.Config)}
    assert fields - {"bf16"} <= flags and {"data", "out", "profile", "fp32"} <= flags
    for f in dataclasses.fields(family.Config):
        assert f.metadata.get("help"), f"{name}.{f.name} has no help text"
    asset = next(a for key, a in ASSETS_BY_NAME.items() if key.startswith(name))
    assert (fields - set(family.variants and next(iter(family.variants.values())) or {})
            <= set(asset.config_class.model_fields))


def test_choices_with_commas_are_named_one_by_one_in_the_help():
    """argparse would print --augment's choices as {,color,translation,cutout,...}."""
    sub = parser()._subparsers._group_actions[0].choices["dcgan"]
    text = sub.format_help()
    assert "--augment AUGMENT" in text and "'color,translation'" in text
    assert "--variant {baseline,augment,symmetric}" in text  # plain choices stay as they were
    assert sub.parse_args(["--data", "d", "--out", "o", "--augment", "color,cutout"]).augment \
        == "color,cutout"


def test_bounds_checked_before_any_work():
    from pipelines.assets.training import asset_config

    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        check_config(tiny(steps=0))
    with pytest.raises(ValueError, match="variant must be one of"):
        check_config(tiny(variant="mirror"))
    with pytest.raises(ValidationError, match="steps"):
        asset_config("wgan_gp", steps=0)


def test_resume_with_other_options_is_refused(store, tmp_path):
    train("dcgan", tiny(variant="baseline"), store, tmp_path)
    with pytest.raises(ValueError, match=r"batch_size: 4 in the checkpoint, 8 now"):
        train("dcgan", tiny(variant="baseline", batch_size=8, steps=4), store, tmp_path)
    # more steps and another logging cadence are a plain continuation
    summary = train("dcgan", tiny(variant="baseline", steps=3, log_every=2), store, tmp_path)
    assert summary["resumed_from"] == 2 and summary["steps_run"] == 1


def test_loss_curves_and_grids_written(store, tmp_path):
    train("dcgan", tiny(variant="augment", sample_every=1), store, tmp_path)
    assert (tmp_path / "loss_curves.png").stat().st_size > 1000
    assert sorted(p.name for p in (tmp_path / "samples").glob("*.png")) == [
        "step_000001.png", "step_000002.png"]


def test_progress_is_plain_lines_without_a_terminal():
    stream = io.StringIO()
    progress = Progress(10, stream)
    progress(5, 10, 123.4, {"d_loss": 0.5, "g_loss": 1.25})
    progress(10, 10, 120.0, {"d_loss": 0.4, "g_loss": 1.0})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in stream.getvalue()
    assert lines[0].startswith("step 5/10 123.4 img/s d_loss=0.500 g_loss=1.250 left")


def test_unknown_family_and_bad_data_are_one_line_errors(store, tmp_path):
    run = [sys.executable, "-m", "training"]
    bad = subprocess.run([*run, "cgan", "--data", str(store), "--out", str(tmp_path / "c")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no `labels`" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    bad = subprocess.run([*run, "gan", "--data", str(tmp_path / "none.h5"), "--out",
                          str(tmp_path / "g")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no such file" in bad.stderr


def test_a_checkpoint_that_predates_an_option_resumes_with_its_default():
    from training.loop import config_differences

    saved = {k: v for k, v in dataclasses.asdict(tiny()).items() if k != "ema_decay"}
    assert config_differences(saved, tiny(steps=5)) == {}
    assert config_differences(saved, tiny(ema_decay=0.9)) == {"ema_decay": (0.0, 0.9)}


def test_an_update_computes_only_its_optimisers_gradients():
    """Family.update backpropagates into the optimiser's own parameters: G's step through D
    leaves D's gradients as they were (not computed), and G's equal a plain backward()'s."""
    import torch

    from training.families.dcgan import DCGAN

    family = DCGAN(tiny(bf16=False), None, torch.device("cpu"))
    torch.manual_seed(0)
    family.build()
    g_net, d_net = family.netG, family.netD
    z = torch.randn(4, 16, 1, 1)

    d_net(g_net(z)).mean().backward()  # what a plain backward() computes
    plain_g = [p.grad.clone() for p in g_net.parameters()]
    assert all(p.grad is not None for p in d_net.parameters())
    for p in [*g_net.parameters(), *d_net.parameters()]:
        p.grad = None

    opt = family.optimizers["optG"]
    opt.step = lambda: None  # keep the weights: compare the gradients alone
    family.update("optG", d_net(g_net(z)).mean())
    assert all(torch.equal(p.grad, g) for p, g in zip(g_net.parameters(), plain_g, strict=True))
    assert all(p.grad is None for p in d_net.parameters())
