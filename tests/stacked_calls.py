"""Family.both against separate calls: the gradients of a family's step taken both ways (the
CycleGAN and WGAN-GP/DRAGAN tests)."""

import torch

BUFFER = "buffer:"  # the key prefix of a recorded buffer


def separate_calls(family: type) -> type:
    """The family with every network call on its own batch (the reference's step)."""

    class SeparateCalls(family):
        @staticmethod
        def both(net, x, y, *args):
            return net(x, *args), net(y, *args)

    return SeparateCalls


def step_gradients(family: type, cfg, data, steps: int, nets: tuple[str, ...]) -> list[dict]:
    """The gradients of `nets` (names in model.modules) after each of `steps` fp32 steps from
    seed 0, the same flips and batches either way. Gradients, not weights: a bias before an
    instance norm has a true gradient of 0, so its gradient is rounding noise, which Adam's
    first steps blow up to ±lr whatever its size."""
    data.reseed(0)
    torch.manual_seed(0)
    model = family(cfg, data, torch.device("cpu"))
    model.build()
    gen, grads = torch.Generator().manual_seed(1), []
    for step in range(steps):
        idx = model.train_index()[torch.randint(0, len(model.train_index()), (cfg.batch_size,),
                                                generator=gen)]
        labels = data.labels_of(idx) if data.label_columns else None
        model.current_step = step
        model.step(data.batch(idx), labels, gen, True)
        grads.append({f"{k}.{n}": p.grad.clone() for k in nets
                      for n, p in model.modules[k].named_parameters() if p.grad is not None})
        grads[-1].update({f"{BUFFER}{k}.{n}": b.clone() for k in nets
                          for n, b in model.modules[k].named_buffers()})
    return grads


def assert_same_gradients(ours: list[dict], reference: list[dict]) -> None:
    """Step by step, the same gradients, to 0.1% of each network's largest, and the same
    buffers (batch norms' running statistics and counts)."""
    for step, (mine, theirs) in enumerate(zip(ours, reference, strict=True)):
        assert mine.keys() == theirs.keys()
        for name, ref in theirs.items():
            if name.startswith(BUFFER):
                torch.testing.assert_close(mine[name], ref, rtol=1e-4, atol=1e-4,
                                           msg=lambda m, s=step, n=name: f"step {s}, {n}: {m}")
                continue
            net = name.split(".")[0]
            scale = max(float(g.abs().max()) for k, g in theirs.items()
                        if k.startswith(f"{net}."))
            torch.testing.assert_close(mine[name], ref, rtol=0, atol=1e-3 * scale,
                                       msg=lambda m, s=step, n=name: f"step {s}, {n}: {m}")
