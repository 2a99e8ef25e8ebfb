"""Two batches through one network call, as if each had its own.

A GAN step runs D on the real batch and on the generated one. Two calls of batch N cost more
than one of 2N on the CPU: each layer's weight gradient is a product over the batch, and two
calls write two weight-sized gradients and add them (for the 32 px nets' 1024 x 8192 layer,
32 MiB each time, memory-bound), where one call writes one; and the small convolutions use
the cores better on twice the batch (benchmarks/README.md, "Real and generated batches in
one call"). Everything per image gives the same outputs stacked; only batch norm couples the
images of a call, so while the stacked call runs each batch norm in training mode normalises
each part with that part's own statistics and updates its running statistics part by part,
in order: what the separate calls computed, with the same buffers after.
"""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def _per_part(norm: _BatchNorm, sizes: Sequence[int], x: torch.Tensor) -> torch.Tensor:
    """The norm's own forward on each part of the batch, the parts stacked again."""
    forward = type(norm).forward
    return torch.cat([forward(norm, part) for part in x.split(list(sizes))])


@contextmanager
def batch_norms_per_part(net: nn.Module, sizes: Sequence[int]) -> Iterator[None]:
    """Within the block, every batch norm of `net` in training mode (or without running
    statistics) normalises the parts of sizes `sizes` of its input separately. Batch norms in
    eval mode use their running statistics, per image already, and are left alone."""
    norms = [m for m in net.modules() if isinstance(m, _BatchNorm)
             and (m.training or not m.track_running_stats)]
    for m in norms:  # an instance attribute shadows the class's forward for nn.Module.__call__
        m.forward = lambda x, m=m: _per_part(m, sizes, x)
    try:
        yield
    finally:
        for m in norms:
            del m.forward


def _split(out: Any, n: int) -> tuple[Any, Any]:
    """A stacked call's output (a tensor, or a tuple of tensors or None) cut at image n."""
    if torch.is_tensor(out):
        return out[:n], out[n:]
    parts = [_split(o, n) if o is not None else (None, None) for o in out]
    return tuple(p[0] for p in parts), tuple(p[1] for p in parts)


def both(net: Callable, x: torch.Tensor, y: torch.Tensor, *args: Any) -> tuple[Any, Any]:
    """net(x, *args), net(y, *args) as one call on the two batches stacked.

    `net` is a module or a module's bound method (e.g. `netD.heads`); tensor args (a
    condition per image) are stacked with themselves, others passed as they are. Outputs may
    be a tensor or a tuple of tensors (None kept). Batch norms see each batch on its own
    (`batch_norms_per_part`), so the outputs, gradients and running statistics are those of
    the two calls, up to the order of float sums."""
    owner = getattr(net, "__self__", net)
    if args and len(x) != len(y):
        raise ValueError(f"a condition is stacked with itself: both batches must have its "
                         f"size, got {len(x)} and {len(y)} images")
    stacked = [torch.cat([a, a]) if torch.is_tensor(a) else a for a in args]
    with batch_norms_per_part(owner, (len(x), len(y))):
        out = net(torch.cat([x, y]), *stacked)
    return _split(out, len(x))
