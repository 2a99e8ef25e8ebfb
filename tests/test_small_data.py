"""Small-data GAN tools: DiffAugment, the generator's moving average, the R1 penalty and D's
normalisation, hinge loss, spectral norm, the minibatch standard deviation."""

import json

import pytest
import torch
from torch import nn

from training.augment import POLICIES, diff_augment
from training.checkpoint import load_modules
from training.ema import EMA
from training.families.dcgan import DCGAN, DCGANConfig
from training.family import get_family
from training.loop import prepare, train
from training.losses import r1_loss, r1_penalty
from training.models.dcgan import MinibatchStd, define_D, define_G


def tiny(**kw) -> DCGANConfig:
    return DCGANConfig(**{"steps": 4, "batch_size": 4, "nz": 16, "ngf": 8, "ndf": 8,
                          "log_every": 1, "sample_every": 2, "checkpoint_every": 2,
                          "repair_steps": 2, "bf16": False, **kw})


# ----- diff_augment -------------------------------------------------------------------------
@pytest.mark.parametrize("policy", [p for p in POLICIES if p])
def test_augment_keeps_shape_is_seeded_and_differentiable(policy):
    x = torch.rand(6, 3, 64, 64).mul(2).sub(1).requires_grad_(True)
    a = diff_augment(x, policy, torch.Generator().manual_seed(5))
    b = diff_augment(x, policy, torch.Generator().manual_seed(5))
    c = diff_augment(x, policy, torch.Generator().manual_seed(6))
    assert a.shape == x.shape
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, x)
    a.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_no_policy_is_the_identity_and_draws_nothing():
    x, gen = torch.rand(2, 3, 8, 8), torch.Generator().manual_seed(0)
    state = gen.get_state()
    assert diff_augment(x, "", gen) is x
    assert torch.equal(gen.get_state(), state)


def test_augment_probability_leaves_some_images_alone():
    x = torch.rand(64, 3, 16, 16)
    out = diff_augment(x, "cutout", torch.Generator().manual_seed(0), p=0.5)
    untouched = (out == x).flatten(1).all(1)
    assert 10 < int(untouched.sum()) < 54


def test_unknown_augmentation_refused():
    with pytest.raises(ValueError, match="unknown augmentation rotate"):
        diff_augment(torch.zeros(1, 3, 8, 8), "rotate")
    with pytest.raises(ValueError, match="augment must be one of"):
        train("dcgan", tiny(augment="rotate"), "unused.h5", "unused")


# ----- EMA ----------------------------------------------------------------------------------
def nudge(net: nn.Module) -> None:
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)


def test_ema_without_decay_or_during_warmup_copies_the_weights():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    for decay, warmup in ((0.0, 0), (0.9, 2)):
        ema = EMA(net, decay, warmup)
        for _ in range(2):
            nudge(net)
            ema.update(net)
            for s, w in zip(ema.shadow.state_dict().values(), net.state_dict().values(),
                            strict=True):
                assert torch.equal(s, w)


def test_ema_moves_toward_the_weights_after_warmup():
    net = nn.Linear(3, 4)
    ema = EMA(net, 0.9, 0)
    before = net.weight.detach().clone()
    nudge(net)
    ema.update(net)
    assert torch.allclose(ema.shadow.weight, before + 0.1)  # 0.9 old + 0.1 new
    assert not ema.shadow.weight.requires_grad


def test_recalibrated_shadow_holds_its_own_statistics_and_leaves_the_average_alone():
    """The copy users sample: batch-norm statistics of the averaged weights' activations on
    the given inputs (not the average of the running statistics); the shadow unchanged."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU())
    ema = EMA(net, 0.9, 0)
    for _ in range(3):
        nudge(net)
        net(torch.randn(8, 3))  # the running statistics move
        ema.update(net)
    ema.eval()
    averaged = {k: v.clone() for k, v in ema.shadow.state_dict().items()}
    inputs = torch.randn(200, 3)
    copy = ema.recalibrated(inputs, batch_size=200)  # one batch: its mean and variance
    assert copy is not ema.shadow and not copy.training  # the shadow's mode
    h = ema.shadow[0](inputs)
    torch.testing.assert_close(copy[1].running_mean, h.mean(0))
    torch.testing.assert_close(copy[1].running_var, h.var(0), rtol=1e-4, atol=1e-5)
    assert copy[1].momentum == ema.shadow[1].momentum
    assert not torch.allclose(copy[1].running_mean, averaged["1.running_mean"])
    for k, v in ema.shadow.state_dict().items():  # what checkpoints save: untouched
        assert torch.equal(v, averaged[k])
    assert torch.equal(copy[0].weight, ema.shadow[0].weight)
    without_norm = EMA(nn.Linear(3, 4), 0.9, 0)
    assert without_norm.recalibrated(inputs) is without_norm.shadow


def test_ema_run_resumes_exactly_and_exports_the_average(colour_store, tmp_path):
    cfg = tiny(ema_decay=0.5, ema_warmup=1, augment="translation,cutout")
    train("dcgan", cfg, colour_store, tmp_path / "straight")
    train("dcgan", tiny(**{**cfg.__dict__, "steps": 2}), colour_store, tmp_path / "resumed")
    train("dcgan", cfg, colour_store, tmp_path / "resumed")
    states = []
    for run in ("straight", "resumed"):
        modules = {"netG": define_G(16, 8), "netG_ema": EMA(define_G(16, 8), 0.5, 1)}
        load_modules(tmp_path / run / "checkpoint.pt", modules)
        states.append(modules)
    for a, b in zip(states[0]["netG_ema"].state_dict().values(),
                    states[1]["netG_ema"].state_dict().values(), strict=True):
        assert torch.equal(a, b)
    ema = states[0]["netG_ema"]
    assert int(ema.updates) == 4
    assert not torch.equal(ema.shadow.main[0].weight, states[0]["netG"].main[0].weight)
    exported = torch.load(tmp_path / "straight" / "generator.pt", weights_only=True)
    z = torch.randn(1024, 16, 1, 1, generator=torch.Generator().manual_seed(2))
    users = ema.recalibrated(z).state_dict()  # the average, its statistics recomputed
    for k, v in users.items():  # (here in the default layout, in training channels_last)
        torch.testing.assert_close(exported[k], v, rtol=1e-4, atol=1e-5, msg=k)
    assert all(torch.equal(exported[k], v) for k, v in ema.shadow.named_parameters())
    assert not torch.equal(exported["main.1.running_mean"],
                           ema.shadow.state_dict()["main.1.running_mean"])


def test_a_family_without_the_tools_refuses_them(tmp_path):
    with pytest.raises(ValueError, match="ebgan does not implement augment; families that do: "
                                         ".*dcgan"):
        train("ebgan", get_family("ebgan").Config(augment="cutout"), "unused.h5", tmp_path)
    with pytest.raises(ValueError, match="bigan does not implement ema_decay"):
        train("bigan", get_family("bigan").Config(ema_decay=0.9), "unused.h5", tmp_path)


def classic(name: str, **kw):
    return get_family(name).Config(**{
        "steps": 4, "batch_size": 4, "nz": 8, "ngf": 4, "ndf": 4, "log_every": 1,
        "sample_every": 100, "checkpoint_every": 100, "backbone": "infogan", "bf16": False,
        **({"n_critic": 2} if name in ("wgan", "wgan_gp") else {}), **kw})


@pytest.mark.parametrize("name", ["gan", "wgan_gp", "acgan", "began"])
def test_classic_families_take_the_tools_and_resume_exactly(name, colour_store, tmp_path):
    """The collection's families judge through D behind the augmentation and keep G's moving
    average (EBGAN: the average only); a run split by a checkpoint equals a straight
    one, the average included, and the average is what the family exports."""
    tools = {"ema_decay": 0.5, "ema_warmup": 1}
    if "augment" in get_family(name).small_data:
        tools["augment"] = "color,translation,cutout"
    if name == "acgan":
        tools["label_columns"] = ["color"]
    cfg = classic(name, **tools)
    straight = train(name, cfg, colour_store, tmp_path / "straight")
    train(name, classic(name, **{**tools, "steps": 2}), colour_store, tmp_path / "resumed")
    resumed = train(name, cfg, colour_store, tmp_path / "resumed")
    assert resumed["final_losses"] == straight["final_losses"]
    a, b = (torch.load(tmp_path / run / "checkpoint.pt", weights_only=True)["modules"]
            for run in ("straight", "resumed"))
    for key in ("netG_ema", "netD"):
        for k, v in a[key].items():
            assert torch.equal(v, b[key][k]), (key, k)
    g_updates = 4 // cfg.n_critic if hasattr(cfg, "n_critic") else 4
    assert int(a["netG_ema"]["updates"]) == g_updates
    exported = torch.load(tmp_path / "straight" / "generator.pt", weights_only=True)
    statistics = ("running_mean", "running_var", "num_batches_tracked")
    assert all(torch.equal(exported[k], v.to(exported[k].dtype))  # the average's weights
               for k, v in ((k.removeprefix("shadow."), v) for k, v in a["netG_ema"].items()
                            if k != "updates" and not k.endswith(statistics)))
    trained = get_family(name).restore(cfg, prepare(name, cfg, colour_store)[1],
                                       tmp_path / "straight")
    assert all(torch.equal(exported[k], v)  # its statistics recomputed, as restore() gives
               for k, v in trained.sampler().state_dict().items())
    assert any(not torch.equal(v, a["netG"][k.removeprefix("shadow.")])
               for k, v in a["netG_ema"].items()
               if k.startswith("shadow.") and v.is_floating_point())
    if "augment" in tools:  # D saw other images than without the policy
        plain = train(name, classic(name, **({"label_columns": ["color"]}
                                             if name == "acgan" else {})),
                      colour_store, tmp_path / "plain")
        assert plain["final_losses"] != straight["final_losses"]


# ----- R1 and D's normalisation --------------------------------------------------------------
def test_r1_penalty_is_the_squared_gradient_norm_and_trains_the_critic():
    """D(x) = Σ w·x has ∇ₓD = w for every image: the penalty is ‖w‖², and its gradient
    reaches w (2w), so the penalty flattens D."""
    w = nn.Parameter(torch.randn(1, 3, 4, 4))
    critic = lambda x: (x * w).flatten(1).sum(1)  # noqa: E731
    penalty = r1_penalty(critic, torch.randn(5, 3, 4, 4))
    assert penalty.item() == pytest.approx(w.pow(2).sum().item(), rel=1e-5)
    penalty.backward()
    assert torch.allclose(w.grad, 2 * w.detach())


@pytest.mark.parametrize("name", ["gan", "cgan", "lsgan", "acgan", "infogan", "dcgan"])
def test_r1_changes_d_and_resumes_exactly(name, colour_store, tmp_path):
    """Every family that declares R1 adds it to D's loss (the run differs from one without),
    with D's normalisation off where the family has the option, and a run split by a
    checkpoint equals a straight one."""
    def cfg(**kw):
        if name == "dcgan":
            return tiny(d_norm="none", **kw)
        extra = {"label_columns": ["color"]} if name in ("cgan", "acgan") else {}
        return classic(name, d_norm="none", **extra, **kw)

    straight = train(name, cfg(r1_gamma=5.0), colour_store, tmp_path / "straight")
    train(name, cfg(r1_gamma=5.0, steps=2), colour_store, tmp_path / "resumed")
    assert train(name, cfg(r1_gamma=5.0), colour_store,
                 tmp_path / "resumed")["final_losses"] == straight["final_losses"]
    train(name, cfg(), colour_store, tmp_path / "plain")
    d_r1, d_plain = (torch.load(tmp_path / run / "checkpoint.pt",
                                weights_only=True)["modules"]["netD"]
                     for run in ("straight", "plain"))
    assert any(not torch.equal(v, d_plain[k]) for k, v in d_r1.items())
    assert not any("running_mean" in k for k in d_r1)  # d_norm none: no batch norm


def test_lazy_r1_is_k_times_the_penalty_on_every_kth_step_and_nothing_between():
    """r1_every = k: k·γ/2·penalty on the steps 0, k, 2k, … (so its mean over k steps is the
    eager term), and a zero that runs no pass through the critic on the others."""
    w = nn.Parameter(torch.randn(1, 3, 4, 4))
    calls = []

    def critic(x):
        calls.append(len(x))
        return (x * w).flatten(1).sum(1)

    real = torch.randn(5, 3, 4, 4)
    eager = r1_loss(2.0, critic, real).item()
    assert eager == pytest.approx(w.pow(2).sum().item(), rel=1e-5)  # γ/2 = 1
    calls.clear()
    terms = [r1_loss(2.0, critic, real, every=4, step=s).item() for s in range(8)]
    assert terms[0] == terms[4] == pytest.approx(4 * eager, rel=1e-5)
    assert all(t == 0.0 for i, t in enumerate(terms) if i % 4)
    assert sum(terms) / 8 == pytest.approx(eager, rel=1e-5)
    assert calls == [5, 5]  # the critic ran on steps 0 and 4 only


def test_lazy_r1_trains_differently_and_resumes_exactly(colour_store, tmp_path):
    """gan with r1_every 2: a run split by a checkpoint at an odd step equals a straight one,
    and it is not the eager run."""
    cfg = lambda **kw: classic("gan", d_norm="none", r1_gamma=5.0, **kw)  # noqa: E731
    straight = train("gan", cfg(r1_every=2), colour_store, tmp_path / "straight")
    train("gan", cfg(r1_every=2, steps=3), colour_store,
          tmp_path / "resumed")
    assert train("gan", cfg(r1_every=2), colour_store,
                 tmp_path / "resumed")["final_losses"] == straight["final_losses"]
    train("gan", cfg(), colour_store, tmp_path / "eager")
    d_lazy, d_eager = (torch.load(tmp_path / run / "checkpoint.pt",
                                  weights_only=True)["modules"]["netD"]
                       for run in ("straight", "eager"))
    assert any(not torch.equal(v, d_eager[k]) for k, v in d_lazy.items())


def test_r1_every_without_r1_gamma_is_refused(tmp_path):
    with pytest.raises(ValueError, match="r1_every=4 spaces out an R1 penalty that is off"):
        train("gan", classic("gan", r1_every=4), "unused.h5", tmp_path)


def test_dcgan_d_without_batch_norm_has_zero_biases_instead():
    """d_norm none: the batch norms go, every trunk convolution gets a bias starting at 0;
    the paper's D (the default) keeps its batch norms and has no biases."""
    plain = define_D(3, 8, batch_norm=False)
    convs = [m for m in plain.modules() if isinstance(m, nn.Conv2d)]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in convs[:-1])
    assert convs[-1].bias is None  # the logit layer, as the paper's
    paper = define_D(3, 8)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in paper.modules()) == 3
    assert all(m.bias is None for m in paper.modules() if isinstance(m, nn.Conv2d))
    assert plain(torch.randn(2, 3, 64, 64)).shape == (2,)


def test_r1_is_refused_where_the_critic_has_its_own_penalty_or_clipping(tmp_path):
    for name in ("wgan", "wgan_gp", "dragan", "ebgan", "bigan"):
        with pytest.raises(ValueError, match=f"{name} does not implement r1_gamma; families "
                                             "that do: .*gan"):
            train(name, get_family(name).Config(r1_gamma=1.0), "unused.h5", tmp_path)


# ----- hinge loss and spectral norm ---------------------------------------------------------
def test_hinge_loss_values():
    family = DCGAN(tiny(loss="hinge"), None, torch.device("cpu"))
    logits = torch.tensor([-2.0, 0.0, 0.5, 3.0])
    assert family.d_term(logits, True).item() == pytest.approx((3 + 1 + 0.5 + 0) / 4)
    assert family.d_term(logits, False).item() == pytest.approx((0 + 1 + 1.5 + 4) / 4)
    assert family.g_term(logits).item() == pytest.approx(-1.5 / 4)
    bce = DCGAN(tiny(), None, torch.device("cpu"))
    assert bce.g_term(logits).item() == pytest.approx(
        nn.functional.softplus(-logits).mean().item())


def test_spectral_norm_on_every_convolution_of_d():
    net = define_D(3, 8, spectral_norm=True)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 5
    assert all(nn.utils.parametrize.is_parametrized(m, "weight") for m in convs)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    for _ in range(20):  # power iterations (training mode) converge to σ_max = 1
        net(torch.randn(2, 3, 64, 64))
    w = convs[1].weight.flatten(1)
    assert torch.linalg.matrix_norm(w, 2).item() == pytest.approx(1.0, rel=0.05)
    plain = define_D(3, 8)
    assert not any(nn.utils.parametrize.is_parametrized(m) for m in plain.modules())


def test_minibatch_std_tells_a_collapsed_batch_from_a_varied_one():
    x = torch.randn(4, 8, 4, 4)
    out = MinibatchStd()(x)
    assert out.shape == (4, 9, 4, 4) and torch.equal(out[:, :8], x)
    assert out[:, 8].unique().numel() == 1 and out[0, 8, 0, 0] > 0.5
    collapsed = MinibatchStd()(x[:1].expand(4, -1, -1, -1))
    assert collapsed[:, 8].abs().max() == 0
    net = define_D(3, 8, minibatch_std=True)
    assert net(torch.randn(5, 3, 64, 64)).shape == (5,)
    # off, D keeps the plain DCGAN layout, so checkpoints written before the option still load
    assert [k for k in define_D(3, 8).state_dict() if k.endswith("weight")] == [
        "main.0.weight", "main.2.weight", "main.3.weight", "main.5.weight", "main.6.weight",
        "main.8.weight", "main.9.weight", "main.11.weight"]
    assert not any(isinstance(m, MinibatchStd) for m in define_D(3, 8).modules())


@pytest.mark.parametrize("variant", ["baseline", "symmetric"])
def test_augmented_hinge_sn_ema_run_trains(variant, colour_store, tmp_path):
    cfg = tiny(variant=variant, augment="color,translation,cutout", augment_p=0.8,
               loss="hinge", spectral_norm=True, ema_decay=0.9, ema_warmup=2, bf16=True,
               minibatch_std=True)
    summary = train("dcgan", cfg, colour_store, tmp_path)
    rows = [json.loads(x) for x in (tmp_path / "losses.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and summary["steps_run"] == 4
    assert all(torch.isfinite(torch.tensor(v)) for r in rows for k, v in r.items())
    assert (tmp_path / "samples" / "step_000004.png").exists()
