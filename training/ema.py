"""An exponential moving average of a network's weights (Karras et al. 2018; Yazici et al.
2019, "The Unusual Effectiveness of Averaging in GAN Training").

A GAN's generator oscillates around the equilibrium from step to step; the average of its
recent weights draws cleaner, more varied images than the last iterate. `EMA` is an nn.Module
holding the shadow copy, so a family puts it in `self.modules` and the checkpoint saves it (and
its update count) with the rest: a resumed run continues the same average exactly. The shadow
is what gets sampled for the grids and exported when the option is on.

    shadow <- weights                                  for the first `warmup` updates
    shadow <- decay * shadow + (1 - decay) * weights   after

Floating-point buffers (batch-norm running statistics) are averaged the same way, integer ones
(batch counts) copied. An average of running statistics is not the statistics of the averaged
weights' activations, though: on CGAN's demo profile recomputing them took 21 and 58 off the
FD of the average (decay 0.99 and 0.995; benchmarks/README.md, "Real and generated batches in
one call", its part on G's moving average). So what users sample is `recalibrated(inputs)`:
a copy of the shadow whose batch norms hold the statistics of its own activations on a fixed
set of inputs (SWA's update_bn), while the shadow itself, what checkpoints save and resumed
runs continue, is left as it is.
"""

import copy

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def running_norms(net: nn.Module) -> list[_BatchNorm]:
    """The batch norms of net that keep running statistics."""
    return [m for m in net.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


class EMA(nn.Module):
    """The moving average of `net` (a deep copy, frozen); call update(net) after each step of
    net's optimiser."""

    def __init__(self, net: nn.Module, decay: float, warmup: int = 0):
        super().__init__()
        if not 0 <= decay < 1:
            raise ValueError(f"ema decay must be in [0, 1), got {decay}")
        self.decay, self.warmup = decay, warmup
        self.shadow = copy.deepcopy(net)
        for p in self.shadow.parameters():
            p.requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        self.updates += 1
        decay = 0.0 if int(self.updates) <= self.warmup else self.decay
        for s, w in zip(self.shadow.parameters(), net.parameters(), strict=True):
            s.lerp_(w.detach(), 1 - decay)
        for s, w in zip(self.shadow.buffers(), net.buffers(), strict=True):
            if s.is_floating_point():
                s.lerp_(w, 1 - decay)
            else:
                s.copy_(w)

    @torch.no_grad()
    def recalibrated(self, inputs: torch.Tensor, batch_size: int = 64) -> nn.Module:
        """The shadow with its batch norms' statistics recomputed on `inputs` (the generator's
        own inputs, e.g. 1,024 draws of z from a fixed seed): a copy, in the shadow's mode; the
        shadow itself where it has no batch norm with running statistics."""
        if not running_norms(self.shadow):
            return self.shadow
        net = copy.deepcopy(self.shadow)
        norms = running_norms(net)
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the batches
        mode = net.training
        net.train()
        for batch in inputs.split(batch_size):
            net(batch)
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        return net.train(mode)

    def forward(self, *args, **kwargs):
        return self.shadow(*args, **kwargs)
