"""DCGAN with the symmetry loss: shapes, the six losses, exact resume, and the CLI."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from pipelines.processing.h5store import write_image_store
from training.datasets import H5ImageDataset
from training.families.dcgan import LOSSES, DCGANConfig, symmetry_report
from training.loop import train
from training.models.dcgan import define_D, define_G


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (32, 64, 64, 3), dtype=np.uint8)
    return write_image_store(tmp_path_factory.mktemp("d") / "crops.h5",
                             [f"P{i}" for i in range(32)], images)


def test_shapes():
    g, d = define_G(nz=16, ngf=8), define_D(ndf=8)
    x = g(torch.randn(2, 16, 1, 1))
    assert x.shape == (2, 3, 64, 64) and x.min() >= -1 and x.max() <= 1
    assert d(x).shape == (2,)


def tiny(**kw) -> DCGANConfig:
    return DCGANConfig(**{"steps": 4, "batch_size": 4, "nz": 16, "ngf": 8, "ndf": 8,
                          "log_every": 1, "sample_every": 2, "checkpoint_every": 2, **kw})


@pytest.mark.parametrize("variant", ["baseline", "augment", "symmetric"])
def test_all_six_losses_logged_for_every_variant(variant, data, tmp_path):
    summary = train("dcgan", tiny(variant=variant), data, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    for r in rows:
        assert set(LOSSES) <= set(r) and all(np.isfinite(r[k]) for k in LOSSES)
    assert summary["steps"] == 4 and summary["images_per_s"] > 0 and summary["wall_s"] > 0
    assert (tmp_path / "samples" / "step_000004.png").exists()


def test_symmetry_report_compares_repair_on_the_same_samples(data):
    torch.manual_seed(0)
    netG, netD = define_G(nz=16, ngf=8), define_D(ndf=8)
    report, before, after = symmetry_report(netG, H5ImageDataset(data), nz=16, n=32,
                                            n_repair=8, repair_steps=30, netD=netD)
    assert before.shape == after.shape == (8, 3, 64, 64)
    assert report["symmetry_error_before_repair"] == pytest.approx(
        (before - before.flip(-1)).abs().mean().item(), abs=1e-5)
    assert report["symmetry_error_repaired"] == pytest.approx(
        (after - after.flip(-1)).abs().mean().item(), abs=1e-5)
    # the repair's objective falls, and a random D still has a finite flip gap
    assert report["flip_inversion_objective_end"] < report["flip_inversion_objective_start"]
    assert np.isfinite(report["flip_gap"])


def test_resume_is_exact(data, tmp_path):
    whole = train("dcgan", tiny(steps=4), data, tmp_path / "whole")
    train("dcgan", tiny(steps=2), data, tmp_path / "split")  # stops after 2 with a checkpoint
    resumed = train("dcgan", tiny(steps=4), data, tmp_path / "split")
    assert resumed["resumed_from"] == 2 and resumed["steps_run"] == 2
    a = torch.load(tmp_path / "whole" / "generator.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "generator.pt", weights_only=True)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert whole["final_losses"] == resumed["final_losses"]


def test_seeded_runs_agree_and_fp32_option(data, tmp_path):
    a = train("dcgan", tiny(bf16=False, channels_last=False), data, tmp_path / "a")
    b = train("dcgan", tiny(bf16=False, channels_last=False), data, tmp_path / "b")
    assert a["final_losses"] == b["final_losses"] and a["bf16"] is False


def test_cli_prints_one_json_line(data, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "training", "dcgan", "--profile", "demo", "--steps", "2",
         "--batch-size", "4", "--ngf", "8", "--ndf", "8", "--data", str(data),
         "--out", str(tmp_path / "run"), "--variant", "baseline"],
        check=True, capture_output=True, text=True, timeout=300)
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 2 and {"images_per_s", "wall_s"} <= set(summary)


def test_torchrun_two_cpu_processes(data, tmp_path):
    """DDP over gloo: two processes train a few steps and agree on one result."""
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "training", "dcgan", "--steps", "3", "--batch-size", "4", "--ngf", "8",
         "--ndf", "8", "--data", str(data), "--out", str(tmp_path / "ddp"), "--fp32"],
        check=True, capture_output=True, text=True, timeout=300)
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1  # rank 0 reports for the job
    summary = lines[0]
    assert summary["world_size"] == 2 and summary["steps"] == 3
    assert (tmp_path / "ddp" / "generator.pt").exists()
    assert (tmp_path / "ddp" / "checkpoint.pt").exists()
