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
(batch counts) copied, so the shadow's eval mode matches its averaged weights.
"""

import copy

import torch
from torch import nn


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

    def forward(self, *args, **kwargs):
        return self.shadow(*args, **kwargs)
