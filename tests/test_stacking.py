"""training/stacking.py: two batches through one call, batch norm per batch."""

import pytest
import torch
from torch import nn

from training.models.classic import define_D
from training.stacking import batch_norms_per_part, both


def nets(cond_channels: int = 0) -> tuple[nn.Module, nn.Module]:
    """Two copies of a batch-norm D (the 32 px nets with an aux head)."""
    torch.manual_seed(0)
    a = define_D("infogan", 32, 3, 8, cond_channels=cond_channels, aux_outputs=2)
    b = define_D("infogan", 32, 3, 8, cond_channels=cond_channels, aux_outputs=2)
    b.load_state_dict(a.state_dict())
    return a, b


def test_both_is_two_calls_outputs_gradients_and_running_statistics():
    stacked, separate = nets()
    x, y = torch.randn(5, 3, 32, 32), torch.randn(3, 3, 32, 32)
    out_x, out_y = both(stacked, x, y)
    ref_x, ref_y = separate(x), separate(y)
    torch.testing.assert_close(out_x, ref_x, rtol=0, atol=1e-5)
    torch.testing.assert_close(out_y, ref_y, rtol=0, atol=1e-5)
    (out_x.sum() - 2 * out_y.sum()).backward()
    (ref_x.sum() - 2 * ref_y.sum()).backward()
    for (name, p), q in zip(stacked.named_parameters(), separate.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5, msg=name)
    for (name, a), b in zip(stacked.named_buffers(), separate.buffers(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)  # counts: 2 each
    assert int(stacked.trunk[3].num_batches_tracked) == 2


def test_both_takes_a_bound_method_and_stacks_a_condition():
    stacked, separate = nets(cond_channels=2)
    x, y = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)
    cond = torch.eye(2)[torch.tensor([0, 1, 1, 0])]
    (s_x, aux_x, q_x), (s_y, aux_y, q_y) = both(stacked.heads, x, y, cond)
    (r_x, raux_x, _), (r_y, raux_y, _) = separate.heads(x, cond), separate.heads(y, cond)
    assert q_x is None and q_y is None  # the head it does not have
    for got, want in ((s_x, r_x), (aux_x, raux_x), (s_y, r_y), (aux_y, raux_y)):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_a_plain_call_on_the_stack_would_differ():
    """Why the norms are split: one batch norm over both batches gives other outputs."""
    stacked, separate = nets()
    x, y = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32) + 3
    assert not torch.allclose(stacked(torch.cat([x, y]))[:4], separate(x), atol=1e-3)


def test_eval_mode_norms_are_left_alone_and_forward_is_restored():
    net, _ = nets()
    net.eval()
    norm = net.trunk[3]
    with batch_norms_per_part(net, (2, 2)):
        assert "forward" not in vars(norm)  # running statistics: per image already
    net.train()
    with pytest.raises(RuntimeError, match="boom"), batch_norms_per_part(net, (2, 2)):
        assert "forward" in vars(norm)
        raise RuntimeError("boom")
    assert "forward" not in vars(norm)  # restored on the way out of an error too


def test_a_condition_needs_batches_of_its_size():
    net, _ = nets(cond_channels=2)
    with pytest.raises(ValueError, match="both batches must have its size, got 4 and 2"):
        both(net, torch.randn(4, 3, 32, 32), torch.randn(2, 3, 32, 32), torch.zeros(4, 2))
