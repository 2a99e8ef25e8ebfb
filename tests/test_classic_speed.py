"""benchmarks/classic_speed.py's two plain loops: the collection's step (D's update on G(z)
undetached, G run again for G's update, losses read back) makes the same update as the tuned
one, so its figures differ from the tuned loop's only in what the step costs."""

import importlib.util

import pytest
import torch

from training.family import get_family
from training.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "benchmarks" / "classic_speed.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("classic_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def trained(bench, name: str, style: str, steps: int) -> list[torch.Tensor]:
    """The networks' parameters after `steps` plain steps from seed 0 (28 px, width 8)."""
    cfg = get_family(name).Config(backbone="infogan", ngf=8, ndf=8, batch_size=4)
    sizes = [3, 2] if name in bench.CONDITIONAL else []
    torch.manual_seed(0)
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    y = torch.tensor([[0, 1], [1, 0], [2, 1], [0, 0]])
    params: dict[int, torch.Tensor] = {}

    def capture(module, *_):  # every parameter the step's networks hold
        params.update((id(p), p) for p in module.parameters())

    hook = torch.nn.modules.module.register_module_forward_hook(capture)
    try:
        step = bench.plain_family(name, cfg, 28, 1, sizes, torch.device("cpu"), style)
        torch.manual_seed(1)
        for it in range(steps):
            step(x, y, it)
    finally:
        hook.remove()
    return [p.detach().clone() for p in params.values()]


@pytest.mark.parametrize("name", ["gan", "cgan", "acgan", "infogan", "ebgan", "began",
                                  "wgan_gp", "dragan", "lsgan", "wgan"])
def test_the_collections_step_makes_the_tuned_steps_update(bench, name):
    steps = 5 if name in ("wgan", "wgan_gp") else 2  # one G update after 4 critic steps
    tuned = trained(bench, name, "tuned", steps)
    collection = trained(bench, name, "collection", steps)
    assert len(tuned) == len(collection) > 0
    for a, b in zip(tuned, collection, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_an_unknown_plain_style_is_refused(bench):
    cfg = get_family("gan").Config(backbone="infogan", ngf=8, ndf=8)
    with pytest.raises(ValueError, match="tuned"):
        bench.plain_family("gan", cfg, 28, 1, [], torch.device("cpu"), "fast")
