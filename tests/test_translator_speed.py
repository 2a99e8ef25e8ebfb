"""benchmarks/translator_speed.py on tiny stores: the paired store built from the packshots and
crops when missing, ours and the plain loop timed for pix2pix and CycleGAN, the JSON written,
and the plain loop's JPEG files holding the store's pairs."""

import importlib.util
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.processing.h5store import write_image_store
from training.datasets import open_dataset, to_unit_range
from training.paths import REPO_ROOT
from training.runtime import bf16_native

SCRIPT = REPO_ROOT / "benchmarks" / "translator_speed.py"
N, SIZE = 48, 32  # 32 training pairs once build_paired_store has moved 16 to test: 2
# batches of the demo profile's 16, which the bf16 check trains where bf16 is native


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, Path]:
    """Packshots (a coloured square on white) and person crops (a figure on grey) of N
    products, every one in the train split."""
    root = tmp_path_factory.mktemp("translator_speed")
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (N, 3)).astype(np.uint8)
    a = np.full((N, SIZE, SIZE, 3), 255, np.uint8)
    a[:, 8:24, 8:24] = colours[:, None, None]
    b = np.full((N, SIZE, SIZE, 3), 120, np.uint8)
    b[:, 4:28, 12:20] = colours[:, None, None]
    ids = [f"P{i}" for i in range(N)]
    packshots = write_image_store(root / "packshots.h5", ids, a,
                                  {"split": np.zeros(N, np.uint8)},
                                  attrs={"split_names": ["train", "val", "test"]})
    crops = write_image_store(root / "person_crops.h5", ids, b)
    return {"root": root, "packshots": packshots, "crops": crops}


def test_both_loops_are_timed_for_pix2pix_and_cyclegan(stores, tmp_path):
    paired, out = tmp_path / "datasets" / "paired_images.h5", tmp_path / "speed.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--steps", "1", "--warmup", "1", "--repeats", "2", "--rows",
         "pix2pix-issue", "cyclegan-reference", "--width", "4", "--pix2pix-batch", "4",
         "--data", str(paired), "--packshots", str(stores["packshots"]), "--crops",
         str(stores["crops"]), "--bf16-check", "--check-steps", "1", "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    assert paired.is_file() and f"built {paired}: {N} pairs" in done.stdout
    result = json.loads(out.read_text())
    assert result["machine"]["cpu_capability"] and result["peak"]["fp32"]["gflops"] > 0
    rows = {r["row"]: r for r in result["rows"]}
    assert list(rows) == ["pix2pix-issue", "cyclegan-reference"]
    assert (rows["pix2pix-issue"]["batch"], rows["pix2pix-issue"]["ngf"]) == (4, 4)
    assert (rows["cyclegan-reference"]["batch"], rows["cyclegan-reference"]["ndf"]) == (1, 4)
    for row in rows.values():
        assert row["image_size"] == SIZE and row["repeats"] == 2
        for loop in ("ours", "plain"):  # two readings, alternating; two runs each: 1, 2 steps
            walls = row[f"{loop}_wall_s"]
            assert len(walls) == 2 and all(len(w) == 2 and min(w) > 0 for w in walls)
        assert len(row["ratios"]) == 2 and "target_met" in row
        known = [r for r in row["ratios"] if r is not None]  # 1 step may drown in the noise
        if known:
            assert row["ratio"] == pytest.approx(statistics.median(known), abs=1e-3)
    assert "| pix2pix-issue | 4 | 4/4 | 32 |" in done.stdout
    if bf16_native(torch.device("cpu")):
        assert [c["family"] for c in result["bf16_check"]] == ["pix2pix", "cyclegan"]
        assert {"l1", "psnr", "ssim"} <= set(result["bf16_check"][0]["difference"])
    else:  # said, not faked
        assert "no native bf16" in result["bf16_check"]["skipped"]
        assert "bf16 check skipped: no native bf16" in done.stdout


def test_the_plain_loop_reads_the_store_pairs_from_jpeg_files(stores, tmp_path):
    spec = importlib.util.spec_from_file_location("translator_speed", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    paired = bench.paired_store(tmp_path / "paired.h5", stores["packshots"], stores["crops"])
    data = open_dataset(paired)
    train = data.train_index()
    aligned = bench.plain_data("pix2pix", paired, {"direction": "a2b"}, tmp_path / "p")(
        SIZE, False)
    assert len(aligned) == len(train)
    a, b = aligned[3]  # A | B split back into the packshot and its crop (JPEG, quality 95)
    assert (a - to_unit_range(data.images[train[3]])).abs().mean() < 0.05
    assert (b - to_unit_range(data.targets[train[3]])).abs().mean() < 0.05
    unaligned = bench.plain_data("cyclegan", paired, {"domains": "packshot|person"},
                                 tmp_path / "c")(SIZE, False)
    a, b = unaligned[0]
    assert (a - to_unit_range(data.images[train[0]])).abs().mean() < 0.05
    grey = 120 / 127.5 - 1  # B is a person crop (a figure on grey), A a packshot (white)
    assert (b[:, 0, 0] - grey).abs().max() < 0.05 and (a[:, 0, 0] - 1).abs().max() < 0.05
