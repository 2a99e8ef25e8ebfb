"""Losses shared by the families."""

from collections.abc import Callable

import torch
import torch.nn.functional as F


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    """BCE-with-logits against a constant label (1.0 real, 0.0 fake, 0.9 smoothed). Numerically
    the official example's Sigmoid + BCELoss, and safe under bf16 autocast (computed in fp32)."""
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def pseudo_huber(diff: torch.Tensor, gamma: float = 0.05) -> torch.Tensor:
    """Mean pseudo-Huber penalty γ²(√(1 + (d/γ)²) − 1): quadratic for |d| ≪ γ, linear (≈ γ|d|)
    beyond, so a few badly reconstructed pixels or latents do not dominate the loss."""
    diff = diff.float()
    return (gamma ** 2 * (torch.sqrt(1 + (diff / gamma) ** 2) - 1)).mean()


def critic_input_gradient(critic: Callable[..., torch.Tensor], points: torch.Tensor,
                          *args, bf16: bool = False) -> torch.Tensor:
    """∇ₓ Σ critic(x) at `points` (N, ...), with the graph kept, so a penalty on it trains the
    critic (a double backward). In fp32 (autocast off) unless bf16: then the critic and both
    backward passes run under bf16 autocast like the rest of the step, which on the CPU makes
    WGAN-GP's and DRAGAN's step 1.1-1.4x faster (benchmarks/README.md, "The gradient penalty in
    bf16"); the gradient comes back in fp32 either way. Extra args (e.g. a condition) are
    passed to the critic."""
    with torch.autocast(points.device.type, dtype=torch.bfloat16, enabled=bf16):
        x = points.detach().float().requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x, *args).float().sum(), x, create_graph=True)
    return grad.flatten(1)


def gradient_penalty(critic: Callable[..., torch.Tensor], points: torch.Tensor,
                     *args, bf16: bool = False) -> torch.Tensor:
    """E[(‖∇ₓ critic(x)‖₂ − 1)²] at `points` (WGAN-GP's interpolates, DRAGAN's perturbed
    data, StarGAN)."""
    grad = critic_input_gradient(critic, points, *args, bf16=bf16)
    return ((grad.norm(2, dim=1) - 1) ** 2).mean()


def r1_penalty(critic: Callable[..., torch.Tensor], real: torch.Tensor, *args,
               bf16: bool = False) -> torch.Tensor:
    """E[‖∇ₓ D(x)‖₂²] at the real images (Mescheder et al., 2018, "Which Training Methods for
    GANs do actually Converge?"): a D that is flat around the data cannot single out the few
    hundred images it has seen, so it cannot win within a few hundred steps."""
    return critic_input_gradient(critic, real, *args, bf16=bf16).pow(2).sum(1).mean()


def r1_loss(gamma: float, critic: Callable[..., torch.Tensor], real: torch.Tensor,
            *args, every: int = 1, step: int = 0, bf16: bool = False) -> torch.Tensor:
    """R1's term of D's loss, γ/2·E‖∇ₓD(x)‖² at the real batch; 0 when γ is 0 (no extra
    pass). Lazy with every = k > 1 (Karras et al., 2020, StyleGAN2): k·γ/2·E‖∇ₓD(x)‖² on the
    steps that are multiples of k and 0 (no extra pass) between, because the penalty's double
    backward in fp32 costs a third of a small GAN's step and its expected gradient is the same."""
    if not gamma or step % every:
        return real.new_zeros((), dtype=torch.float32)
    return every * gamma / 2 * r1_penalty(critic, real, *args, bf16=bf16)
