"""Small convolutions as matrix products: each part (forward, input gradient, weight gradient)
the same as autograd's, the policy choosing the parts, the stock path wherever no product is
used."""

import copy
import io

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from training import gemm_conv as gw
from training.models import translation

SHAPES = [(4, 2, 1, 4), (4, 2, 1, 2), (3, 1, 1, 3), (4, 1, 0, 4), (3, 2, 1, 5), (4, 2, 1, 1)]


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("k,s,p,size", SHAPES)
def test_every_part_is_autograds_in_fp32(transposed, k, s, p, size):
    if not transposed and size + 2 * p < k:
        pytest.skip("no output")
    torch.manual_seed(0)
    cin, cout = 6, 5
    x = torch.randn(3, cin, size, size + 1, requires_grad=True)  # not square: h, w kept apart
    w = torch.randn(*((cin, cout) if transposed else (cout, cin)), k, k, requires_grad=True)
    b = torch.randn(cout)
    conv = F.conv_transpose2d if transposed else F.conv2d
    y = conv(x, w, b, s, p)
    g = torch.randn_like(y)
    grad_x, grad_w = torch.autograd.grad(y, (x, w), g)
    x, w = x.detach(), w.detach()
    got = gw.forward(x, w, b, (s, s), (p, p), transposed)
    assert got.shape == y.shape and torch.allclose(got, y, rtol=1e-4, atol=1e-5)
    got = gw.input_grad(g, x.shape, w, (s, s), (p, p), transposed)
    assert torch.allclose(got, grad_x, rtol=1e-4, atol=1e-5)
    got = gw.weight_grad(x, g, w.shape, (s, s), (p, p), transposed)
    assert torch.allclose(got, grad_w, rtol=1e-4, atol=1e-5)


def unet() -> nn.Module:
    torch.manual_seed(0)
    net = translation.define_G(3, 3, 8, "unet", "batch", False, image_size=64)
    return net.to(memory_format=torch.channels_last)


def run(net: nn.Module, x: torch.Tensor, bf16: bool):
    net.zero_grad()
    with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        y = net(x)
    y.float().square().mean().backward()
    return y.detach().float(), {n: p.grad.clone() for n, p in net.named_parameters()}


# avx512: the layers with at most 16 positions (down, the convolutions from 8, 4 and 2 px; up,
# the transposed ones from 1, 2 and 4 px), weight gradients only; amx: those with at most 64
# as well, each part as the policy says
@pytest.mark.parametrize("policy", ["avx512", "amx"])
def test_unet_under_bf16_takes_the_products_the_policy_names_with_the_same_results(
        monkeypatch, policy):
    monkeypatch.setattr(gw, "POLICY", gw.POLICIES[policy])
    stock, fast = unet(), unet()
    assert gw.use_gemm_convs(fast) == 12
    assert list(fast.state_dict()) == list(stock.state_dict())
    calls = []
    real = gw._SmallConv.apply
    monkeypatch.setattr(gw._SmallConv, "apply",
                        lambda *a: calls.append((a[0].shape[-1], a[-2], a[-1])) or real(*a))
    x = torch.randn(4, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    y_stock, g_stock = run(stock, x, bf16=True)
    y_fast, g_fast = run(fast, x, bf16=True)
    if policy == "avx512":  # the forward is oneDNN's on every layer
        assert torch.equal(y_stock, y_fast)
        assert sorted(size for size, *_ in calls) == [1, 2, 2, 4, 4, 8]
        assert all(parts == gw.Parts(False, False, True) for *_, parts in calls)
    else:
        assert (y_fast - y_stock).abs().max() <= 2e-2 * y_stock.abs().max()
        # down: 16, 8, 4, 2 px in; up (transposed): 1, 2, 4, 8 px in
        by = {(size, transposed): parts for size, transposed, parts in calls}
        assert sorted(by) == sorted([(16, False), (8, False), (4, False), (2, False),
                                     (1, True), (2, True), (4, True), (8, True)])
        assert by[16, False] == gw.Parts(True, False, True)  # to 8x8: no fold
        assert by[8, True] == gw.Parts(False, True, True)    # from 8x8: no fold
        for key in ((8, False), (4, False), (2, False), (1, True), (2, True), (4, True)):
            assert by[key] == gw.Parts(True, True, True), key
    # bf16 moves this net's gradients 1-20% from fp32's either way (batch 4, batch norm over
    # eight levels): the products' must be as near fp32's as oneDNN's bf16 ones are
    _, g_fp32 = run(stock, x, bf16=False)

    def off(g: torch.Tensor, name: str) -> float:
        return float((g - g_fp32[name]).norm() / g_fp32[name].norm())

    for name, g in g_stock.items():
        assert off(g_fast[name], name) <= 1.25 * off(g, name) + 0.01, name


def test_policy_by_name_and_the_old_switch(monkeypatch):
    monkeypatch.setenv("FASHION_GAN_GEMM", "off")
    assert gw.choose_policy() == gw.POLICIES["off"]
    monkeypatch.setenv("FASHION_GAN_GEMM", "amx")
    assert gw.choose_policy() == gw.POLICIES["amx"]
    monkeypatch.setenv("FASHION_GAN_GEMM_POSITIONS", "0")
    assert gw.choose_policy() == gw.POLICIES["off"]
    monkeypatch.setenv("FASHION_GAN_GEMM", "fast")
    monkeypatch.delenv("FASHION_GAN_GEMM_POSITIONS")
    with pytest.raises(ValueError, match="amx"):
        gw.choose_policy()


def test_without_bf16_autocast_the_stock_path_runs_and_double_backward_works():
    stock, fast = unet(), unet()
    gw.use_gemm_convs(fast)
    x = torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    y_stock, g_stock = run(stock, x, bf16=False)
    y_fast, g_fast = run(fast, x, bf16=False)
    assert torch.equal(y_stock, y_fast)
    assert all(torch.equal(g_fast[n], g) for n, g in g_stock.items())
    # a gradient penalty's double backward (fp32, autocast off) through a swapped D
    d = nn.Sequential(nn.Conv2d(3, 4, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 4, 1, 0))
    gw.use_gemm_convs(d)
    pts = torch.randn(2, 3, 8, 8, requires_grad=True)
    (grad,) = torch.autograd.grad(d(pts).sum(), pts, create_graph=True)
    grad.square().sum().backward()
    assert d[0].weight.grad is not None and d[2].weight.grad is not None


def test_swapped_network_pickles_and_leaves_other_layers_alone():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding="same"), nn.Conv2d(4, 4, 3, groups=2),
                        nn.ConvTranspose2d(4, 2, 4, 2, 1, output_padding=1),
                        nn.ConvTranspose2d(2, 2, 4, 2, 1))
    assert gw.use_gemm_convs(net) == 1
    assert [type(m).__name__ for m in net] == ["Conv2d", "Conv2d", "ConvTranspose2d",
                                               "GemmConvTranspose2d"]
    buf = io.BytesIO()
    torch.save(copy.deepcopy(net), buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    x = torch.randn(1, 3, 5, 5)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


@pytest.mark.parametrize("k,s,p,size", [(4, 2, 1, 5), (3, 1, 1, 4)])
def test_patches_and_fold_are_adjoint_and_twice_differentiable(k, s, p, size):
    """fold is patches' gradient and the other way round, each an autograd Function: checked
    numerically to the second order in float64 (a gradient penalty's double backward)."""
    torch.manual_seed(0)
    kernel, stride, padding = (k, k), (s, s), (p, p)
    x = torch.randn(2, 3, size, size + 1, dtype=torch.float64, requires_grad=True)
    cols = gw.patches(x, kernel, stride, padding).detach().normal_().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: gw.patches(t, kernel, stride, padding), x)
    assert torch.autograd.gradgradcheck(lambda t: gw.patches(t, kernel, stride, padding), x)
    fold = lambda c: gw.fold(c, tuple(x.shape), kernel, stride, padding)  # noqa: E731
    assert torch.autograd.gradcheck(fold, cols)
    assert torch.autograd.gradgradcheck(fold, cols)
    # adjoint: <patches(x), c> = <x, fold(c)>
    lhs = (gw.patches(x, kernel, stride, padding) * cols).sum()
    assert torch.allclose(lhs, (x * fold(cols)).sum())


@pytest.mark.parametrize("transposed", [False, True])
def test_a_gradient_penalty_through_the_products_is_autograds(transposed):
    """The double backward of a layer whose every part is a product (the bf16 path, here in
    float64): the penalty's gradients for the weight equal the stock convolution's."""
    torch.manual_seed(0)
    cin, cout, k, s, p = 4, 3, 4, 2, 1
    x = torch.randn(2, cin, 5, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(*((cin, cout) if transposed else (cout, cin)), k, k, dtype=torch.float64,
                    requires_grad=True)
    conv = F.conv_transpose2d if transposed else F.conv2d
    every = gw.Parts(True, True, True)

    def penalty(f) -> torch.Tensor:
        y = f(x, w)
        (grad,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
        return grad.square().sum()

    def products(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return gw._SmallConv.apply(a, b, None, (s, s), (p, p), transposed, every)

    (want,) = torch.autograd.grad(penalty(lambda a, b: conv(a, b, None, s, p)), w)
    (got,) = torch.autograd.grad(penalty(products), w)
    assert torch.allclose(got, want, rtol=1e-8, atol=1e-10)
    # and the first order, where the patches made once serve two parts
    g = torch.randn_like(conv(x, w, None, s, p))
    want = torch.autograd.grad(conv(x, w, None, s, p), (x, w), g)
    got = torch.autograd.grad(products(x, w), (x, w), g)
    assert all(torch.allclose(a, b, rtol=1e-8, atol=1e-10) for a, b in zip(got, want,
                                                                            strict=True))
