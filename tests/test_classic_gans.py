"""The classic collection on its two backbones: GAN, LSGAN, WGAN, WGAN-GP and DRAGAN train
through the one loop with finite losses and grids, export a sampler registry users can drive,
follow their papers' schedules (n_critic, clipping, penalties), resume exactly, and refuse an
unknown backbone or an image size the backbone cannot make before any training."""

import copy
import json

import numpy as np
import pytest
import torch
from stacked_calls import BUFFER, assert_same_gradients, separate_calls, step_gradients

from training.datasets import open_dataset
from training.families.dragan import perturbed
from training.family import get_family
from training.gemm_conv import use_gemm_convs
from training.latent import sampler_inputs
from training.loop import prepare, train
from training.losses import gradient_penalty
from training.models.classic import SUPPORTED_SIZES, define_autoencoder_D, define_D, define_G

FAMILIES = ("gan", "lsgan", "wgan", "wgan_gp", "dragan")
CRITICS = ("wgan", "wgan_gp")  # n_critic families


def tiny(name: str, **kw):
    """A config that trains in about a second: narrow nets, batch 4, every row logged; the
    critic families update G every 2nd step so 3 steps hold both kinds of step."""
    family = get_family(name)
    extra = {"n_critic": 2} if name in CRITICS else {}
    return family.Config(**{"steps": 3, "batch_size": 4, "nz": 8, "ngf": 4, "ndf": 4,
                            "log_every": 1, "sample_every": 100, "checkpoint_every": 100,
                            **extra, **kw})


def rows(out) -> list[dict]:
    return [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("backbone", ["dcgan", "infogan"])
@pytest.mark.parametrize("name", FAMILIES)
def test_family_trains_on_both_backbones_and_exports_a_sampler(name, backbone, colour_store,
                                                               tmp_path):
    cfg = tiny(name, backbone=backbone)
    summary = train(name, cfg, colour_store, tmp_path)
    size = {"dcgan": 64, "infogan": 32}[backbone]  # the 64 px store resized for infogan
    assert (summary["backbone"], summary["image_size"], summary["channels"]) == \
        (backbone, size, 3)
    family = get_family(name)
    logged = rows(tmp_path)
    assert [r["step"] for r in logged] == [0, 1, 2]
    for r in logged:  # a full, finite row on every step, G updated or not
        assert set(family.losses) <= set(r), (r, family.losses)
        assert all(np.isfinite(r[k]) for k in family.losses), r
    assert (tmp_path / "samples" / "step_000003.png").is_file()
    assert (tmp_path / "generator.pt").is_file()

    data = open_dataset(colour_store, **family.data_options(cfg))
    model = family.restore(cfg, data, tmp_path)
    tags = model.registry_tags()
    assert {k: tags[k] for k in ("kind", "latent", "nz", "backbone", "image_size",
                                 "channels")} == {
        "kind": "sampler", "latent": "normal", "nz": "8", "backbone": backbone,
        "image_size": str(size), "channels": "3"}
    inputs, labels = sampler_inputs(5, tags, torch.Generator().manual_seed(0))
    with torch.no_grad():
        images = model.sampler()(inputs)
    assert labels is None and images.shape == (5, 3, size, size)
    assert images.min() >= -1 and images.max() <= 1
    if name == "wgan_gp":  # a penalised critic has no batch norm
        assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                       for m in model.netD.modules())


def test_grey_images_on_the_infogan_backbone(colour_store, tmp_path):
    """channels=1 converts the RGB store to grey once; G makes 1-channel images."""
    cfg = tiny("gan", backbone="infogan", image_size=28, channels=1)
    summary = train("gan", cfg, colour_store, tmp_path)
    assert (summary["image_size"], summary["channels"]) == (28, 1)
    model = get_family("gan").restore(cfg, open_dataset(colour_store, image_size=28,
                                                        channels=1), tmp_path)
    z, _ = sampler_inputs(2, model.registry_tags())
    assert model.sampler()(z).shape == (2, 1, 28, 28)


def test_resume_is_exact(colour_store, tmp_path):
    """WGAN-GP (n_critic schedule from current_step, ε drawn from the loop's generator): 4
    steps in one go and 2 + 2 in the same folder give the same generator and losses."""
    whole = train("wgan_gp", tiny("wgan_gp", steps=4), colour_store, tmp_path / "whole")
    train("wgan_gp", tiny("wgan_gp", steps=2, checkpoint_every=2), colour_store,
          tmp_path / "split")
    resumed = train("wgan_gp", tiny("wgan_gp", steps=4, checkpoint_every=2), colour_store,
                    tmp_path / "split")
    assert resumed["resumed_from"] == 2 and resumed["steps_run"] == 2
    a = torch.load(tmp_path / "whole" / "generator.pt")
    b = torch.load(tmp_path / "split" / "generator.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert whole["final_losses"] == resumed["final_losses"]


def trained_nets(name: str, steps: int, store, out, **kw):
    cfg = tiny(name, steps=steps, **kw)
    train(name, cfg, store, out)
    family = get_family(name)
    return family.restore(cfg, open_dataset(store, **family.data_options(cfg)), out)


def fresh_generator(name: str, store, **kw) -> dict:
    """G's initial weights, as the loop builds them (torch seeded with cfg.seed)."""
    cfg = tiny(name, **kw)
    family = get_family(name)
    model = family(cfg, open_dataset(store, **family.data_options(cfg)), torch.device("cpu"))
    torch.manual_seed(cfg.seed)
    model.build()
    return {k: v.detach().clone() for k, v in model.netG.named_parameters()}


def test_wgan_clips_its_critic_and_updates_g_every_n_critic_steps(colour_store, tmp_path):
    start = fresh_generator("wgan", colour_store, backbone="infogan")
    one = trained_nets("wgan", 1, colour_store, tmp_path / "one", backbone="infogan")
    two = trained_nets("wgan", 2, colour_store, tmp_path / "two", backbone="infogan")
    weights = torch.cat([p.detach().flatten() for p in two.netD.parameters()])
    assert weights.abs().max() <= 0.01 + 1e-7
    assert (weights.abs() > 0.01 - 1e-6).any()  # clipping was active, not idle
    assert isinstance(two.optimizers["optD"], torch.optim.RMSprop)
    # n_critic = 2: step 0 updates only the critic, step 1 updates G's weights too
    after_one, after_two = dict(one.netG.named_parameters()), dict(two.netG.named_parameters())
    assert all(torch.equal(after_one[k], v) for k, v in start.items())
    assert not all(torch.equal(after_two[k], v) for k, v in start.items())


def test_gradient_penalty_is_zero_for_a_unit_norm_critic():
    """A linear critic f(x) = <w, x> has gradient w everywhere: penalty (‖w‖ − 1)²."""
    x = torch.randn(6, 3, 8, 8)
    for norm in (1.0, 3.0):
        w = torch.randn(3, 8, 8)
        w = w * norm / w.norm()

        def critic(points, w=w):
            return (points * w).flatten(1).sum(1, keepdim=True)

        assert gradient_penalty(critic, x).item() == pytest.approx((norm - 1) ** 2, abs=1e-5)


def test_gradient_penalty_flows_back_to_the_critic():
    net = define_D("infogan", 28, 1, 4, norm="layer")
    penalty = gradient_penalty(net, torch.randn(4, 1, 28, 28))
    penalty.backward()
    assert penalty.item() > 0 and all(p.grad is not None for p in net.parameters()
                                      if p.requires_grad and p is not net.head.bias)


@pytest.mark.parametrize("backbone,size", [("infogan", 32), ("dcgan", 64)])
def test_bf16_penalty_is_the_fp32_penalty_within_rounding(backbone, size):
    """penalty_bf16: the critic and both backward passes under bf16 autocast (with the small
    convolutions' matrix-product weight gradient the frame gives a bf16 D on the CPU) give the
    fp32 penalty and the fp32 gradient of it on D's weights, to bf16's rounding."""
    torch.manual_seed(0)
    net = define_D(backbone, size, 3, 16, norm="layer")
    swapped = copy.deepcopy(net)
    assert use_gemm_convs(swapped) > 0
    points = torch.randn(8, 3, size, size)
    grads = {}
    for key, critic, bf16 in (("fp32", net, False), ("bf16", swapped, True)):
        critic.zero_grad()
        penalty = gradient_penalty(critic, points, bf16=bf16)
        penalty.backward()
        grads[key] = (penalty.item(), torch.cat([p.grad.flatten() for p in critic.parameters()
                                                 if p.grad is not None]))
    (p32, g32), (p16, g16) = grads["fp32"], grads["bf16"]
    assert p16 != p32 and p16 == pytest.approx(p32, rel=0.02)  # bf16 ran, and agrees
    assert len(g16) == len(g32)
    assert torch.nn.functional.cosine_similarity(g16, g32, dim=0) > 0.99
    assert (g16 - g32).norm() < 0.1 * g32.norm()


def test_penalty_bf16_needs_a_penalty(colour_store, tmp_path):
    """A family without a gradient penalty refuses the option in one line (unless R1 is on)."""
    with pytest.raises(ValueError, match="penalty_bf16: gan runs no gradient penalty; families "
                                         "with one: .*wgan_gp"):
        train("gan", tiny("gan", penalty_bf16=True), colour_store, tmp_path / "gan")
    assert train("gan", tiny("gan", penalty_bf16=True, r1_gamma=1.0), colour_store,
                 tmp_path / "r1")["steps"] == 3


@pytest.mark.parametrize("name", ["wgan_gp", "dragan", "gan", "lsgan", "cgan", "acgan",
                                  "infogan", "wgan"])
def test_stacked_critic_calls_make_the_separate_calls_update(name, colour_store):
    """D(real) and D(fake) as one call: the same gradients as two calls, G's update included,
    and for the papers' batch-norm D (every family here but the penalty critics) the same
    running statistics: each batch normalised on its own."""
    family = get_family(name)
    cfg = tiny(name, bf16=False, **({"label_columns": ["color"]}
                                    if name in ("cgan", "acgan") else {}))
    _, data = prepare(name, cfg, colour_store)
    ours, reference = (step_gradients(f, cfg, data, 3, ("netG", "netD"))
                       for f in (family, separate_calls(family)))
    assert any(k.startswith("netG.") for k in ours[-1])  # a step that updated G
    batch_norm = any(k.startswith(f"{BUFFER}netD.") and "running_mean" in k for k in ours[-1])
    assert batch_norm == (cfg.d_norm == "batch")
    assert_same_gradients(ours, reference)


def test_dragan_points_lie_in_a_noisy_neighbourhood_of_the_data():
    real = torch.rand(16, 3, 8, 8) * 2 - 1
    points = perturbed(real, 0.5, torch.Generator().manual_seed(0))
    step = points - real
    assert (step >= 0).all() and (step <= 0.5 * real.std() + 1e-6).all() and step.std() > 0


def test_backbones_heads_and_autoencoder_shapes():
    for backbone, sizes in SUPPORTED_SIZES.items():
        for size in sizes:
            g = define_G(backbone, 8, size, 1, 4, cond_dim=3)
            x = g(torch.randn(2, 11, 1, 1))
            assert x.shape == (2, 1, size, size)
            d = define_D(backbone, size, 1, 4, cond_channels=3, aux_outputs=5, q_outputs=4)
            logits, aux, q = d.heads(x, torch.eye(3)[:2])
            assert (logits.shape, aux.shape, q.shape) == ((2, 1), (2, 5), (2, 4))
            assert d.features(x, torch.eye(3)[:2]).shape == (2, d.feature_dim)
            ae = define_autoencoder_D(backbone, size, 1, 4, code=16)
            assert ae(x).shape == x.shape and ae.encode(x).shape == (2, 16)


@pytest.mark.parametrize("options, message", [
    ({"backbone": "resnet"}, "backbone must be one of ['infogan', 'dcgan']"),
    ({"backbone": "infogan", "image_size": 64}, "infogan backbone makes 28 or 32 px"),
    ({"backbone": "dcgan", "image_size": 32}, "dcgan backbone makes 64 px"),
    ({"image_size": 48}, "image_size must be one of [28, 32, 64]"),
])
def test_bad_backbone_or_size_is_one_line_before_training(options, message, colour_store,
                                                         tmp_path):
    with pytest.raises(ValueError) as e:
        train("gan", tiny("gan", **options), colour_store, tmp_path)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "losses.jsonl").exists()
    with pytest.raises(ValueError, match="backbone must be one of"):
        define_G("resnet", 8, 64, 3, 4)


def test_the_architecture_documents_example_family_trains_as_written(colour_store, tmp_path):
    """docs/ARCHITECTURE.md, "Adding a family": its hinge GAN, one file as printed there,
    registers itself and trains through the frame (then leaves the registry as it was)."""
    import re
    import sys
    import types
    from pathlib import Path

    from training.family import FAMILIES

    text = (Path(__file__).parents[1] / "docs" / "ARCHITECTURE.md").read_text()
    section = text[text.index("## Adding a family"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    module = types.ModuleType("training.families.hinge")
    sys.modules[module.__name__] = module
    try:
        exec(compile(code, "training/families/hinge.py", "exec"), module.__dict__)
        assert get_family("hinge") is module.HingeGAN
        cfg = module.HingeConfig(backbone="infogan", steps=3, batch_size=4, nz=8, ngf=4, ndf=4,
                                 log_every=1, margin=0.5)
        summary = train("hinge", cfg, colour_store, tmp_path)
        assert summary["steps"] == 3 and summary["kind"] == "sampler"
        assert [set(r) for r in rows(tmp_path)] == [{"step", "d_loss", "g_loss"}] * 3
        assert (tmp_path / "generator.pt").exists()
    finally:
        FAMILIES.pop("hinge", None)
        sys.modules.pop(module.__name__, None)
