"""DCGAN and BiGAN on the training frame give the losses their own loops gave before the move.

tests/fixtures/frame/reference_losses.json was recorded by make_reference.py with the loops as
they were at commit 92c7051 (fp32, so the figures do not depend on bf16 kernels; BiGAN's feature
net is the kept classifier.pt, not a classifier retrained on this CPU); here the same
runs go through training.loop.train. A different draw order of batches or noise, a different
initialisation order or a different update would change the losses far beyond the tolerance
(which only absorbs floating-point differences between CPUs).
"""

import json
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "frame"
sys.path.insert(0, str(FIXTURES))
from make_reference import RUNS, TINY, reference_store  # noqa: E402

from training.families.bigan import BiGANConfig  # noqa: E402
from training.families.dcgan import DCGANConfig  # noqa: E402
from training.loop import train  # noqa: E402

REFERENCE = json.loads((FIXTURES / "reference_losses.json").read_text())


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return reference_store(tmp_path_factory.mktemp("frame"))


def replay(family: str, cfg, data: Path, out: Path) -> list[dict]:
    train(family, cfg, data, out)
    return [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]


def assert_same(rows: list[dict], reference: list[dict]) -> None:
    assert [r["step"] for r in rows] == [r["step"] for r in reference]
    for row, ref in zip(rows, reference, strict=True):
        assert set(row) == set(ref)
        for key, value in ref.items():
            assert row[key] == pytest.approx(value, rel=2e-3, abs=2e-4), (row["step"], key)


@pytest.mark.parametrize("options", RUNS["dcgan"], ids=lambda o: o["variant"])
def test_dcgan_unchanged_by_the_frame(options, store, tmp_path):
    data, _ = store
    rows = replay("dcgan", DCGANConfig(**TINY, **options), data, tmp_path)
    assert_same(rows, REFERENCE[f"dcgan_{options['variant']}"])


@pytest.mark.parametrize("options", RUNS["bigan"], ids=lambda o: o["preset"])
def test_bigan_unchanged_by_the_frame(options, store, tmp_path):
    data, classifier = store
    cfg = BiGANConfig(**TINY, **options, feature_weights=str(classifier))
    assert_same(replay("bigan", cfg, data, tmp_path), REFERENCE[f"bigan_{options['preset']}"])
