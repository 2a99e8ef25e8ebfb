"""Small convolutions' bf16 weight gradient as one matrix product: the same gradient as
autograd's, the stock path wherever the product is not used."""

import copy
import io

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from training import gemm_weight_grad as gw
from training.models import translation


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("k,s,p,size", [(4, 2, 1, 4), (4, 2, 1, 2), (3, 1, 1, 3), (4, 1, 0, 4)])
def test_weight_grad_is_autograds_in_fp32(transposed, k, s, p, size):
    torch.manual_seed(0)
    cin, cout = 6, 5
    x = torch.randn(3, cin, size, size)
    w = torch.randn(*((cin, cout) if transposed else (cout, cin)), k, k, requires_grad=True)
    conv = F.conv_transpose2d if transposed else F.conv2d
    y = conv(x, w, None, s, p)
    g = torch.randn_like(y)
    (expected,) = torch.autograd.grad(y, w, g)
    got = gw.weight_grad(x, g, w.shape, (k, k), (s, s), (p, p), transposed)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5)


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


def test_unet_under_bf16_takes_the_product_on_small_layers_with_the_same_gradients(
        monkeypatch):
    stock, fast = unet(), unet()
    assert gw.use_gemm_weight_grads(fast) == 12
    assert list(fast.state_dict()) == list(stock.state_dict())
    calls = []
    real = gw._SmallConv.apply
    monkeypatch.setattr(gw._SmallConv, "apply", lambda *a: calls.append(a[0].shape) or real(*a))
    x = torch.randn(4, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    y_stock, g_stock = run(stock, x, bf16=True)
    y_fast, g_fast = run(fast, x, bf16=True)
    assert torch.equal(y_stock, y_fast)  # the forward is oneDNN's either way
    # the layers with at most 16 positions: down, the convolutions from 8, 4 and 2 px (to
    # 4x4, 2x2, 1x1 outputs); up, the transposed ones from 1, 2 and 4 px
    assert sorted(s[-1] for s in calls) == [1, 2, 2, 4, 4, 8]
    for name, g in g_stock.items():
        assert (g_fast[name] - g).abs().max() <= 2e-2 * g.abs().max() + 1e-6, name


def test_without_bf16_autocast_the_stock_path_runs_and_double_backward_works():
    stock, fast = unet(), unet()
    gw.use_gemm_weight_grads(fast)
    x = torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    y_stock, g_stock = run(stock, x, bf16=False)
    y_fast, g_fast = run(fast, x, bf16=False)
    assert torch.equal(y_stock, y_fast)
    assert all(torch.equal(g_fast[n], g) for n, g in g_stock.items())
    # a gradient penalty's double backward (fp32, autocast off) through a swapped D
    d = nn.Sequential(nn.Conv2d(3, 4, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 4, 1, 0))
    gw.use_gemm_weight_grads(d)
    pts = torch.randn(2, 3, 8, 8, requires_grad=True)
    (grad,) = torch.autograd.grad(d(pts).sum(), pts, create_graph=True)
    grad.square().sum().backward()
    assert d[0].weight.grad is not None and d[2].weight.grad is not None


def test_swapped_network_pickles_and_leaves_other_layers_alone():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding="same"), nn.Conv2d(4, 4, 3, groups=2),
                        nn.ConvTranspose2d(4, 2, 4, 2, 1, output_padding=1),
                        nn.ConvTranspose2d(2, 2, 4, 2, 1))
    assert gw.use_gemm_weight_grads(net) == 1
    assert [type(m).__name__ for m in net] == ["Conv2d", "Conv2d", "ConvTranspose2d",
                                               "GemmGradConvTranspose2d"]
    buf = io.BytesIO()
    torch.save(copy.deepcopy(net), buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    x = torch.randn(1, 3, 5, 5)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
