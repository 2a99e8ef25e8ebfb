"""The frame's arithmetic: bf16 only where native kernels exist and run faster than fp32.

An Intel Xeon whose AMX the hypervisor hides has native AVX-512 BF16 kernels that run matrix
products at half its fp32 speed; the AMX Xeon runs them 3-7x faster and the AVX-512 BF16 EPYC
2.2x. So the choice is measured, and the run's summary says what ran and why."""

import math
import os
from dataclasses import replace

import pytest
import torch

import training.runtime as runtime
from benchmarks.machine import cpu_bf16_mode
from training.families.dcgan import DCGANConfig
from training.loop import train

CPU = torch.device("cpu")


@pytest.fixture
def native(monkeypatch):
    """A CPU with native bf16 kernels, whatever this one has; the measurement set per test."""
    monkeypatch.setattr(runtime, "bf16_native", lambda device: True)
    monkeypatch.delenv("FASHION_GAN_CPU_BF16", raising=False)

    def measured(speedup: float) -> None:
        monkeypatch.setattr(runtime, "cpu_bf16_speedup", lambda: speedup)
    return measured


@pytest.mark.parametrize("speedup, bf16", [(0.5, False), (1.29, False), (1.3, True),
                                            (2.2, True), (6.4, True)])
def test_auto_takes_bf16_only_where_its_products_run_faster(native, speedup, bf16):
    native(speedup)
    chosen, why = runtime.bf16_choice(CPU)
    assert chosen is bf16
    assert why.startswith("bf16" if bf16 else "fp32")
    assert (f"ran {speedup:.1f}x" if bf16 else f"only {speedup:.2f}x") in why


def test_the_environment_overrides_the_measurement_but_not_the_kernels(native, monkeypatch):
    native(0.5)
    monkeypatch.setenv("FASHION_GAN_CPU_BF16", "on")
    assert runtime.bf16_choice(CPU) == (True, "bf16: FASHION_GAN_CPU_BF16=on")
    native(6.4)
    monkeypatch.setenv("FASHION_GAN_CPU_BF16", "off")
    assert runtime.bf16_choice(CPU) == (False, "fp32: FASHION_GAN_CPU_BF16=off")
    monkeypatch.setattr(runtime, "bf16_native", lambda device: False)
    monkeypatch.setenv("FASHION_GAN_CPU_BF16", "on")  # no kernels: emulated bf16 is never taken
    assert runtime.bf16_choice(CPU) == (False, "fp32: no native bf16 kernels here")
    for native_kernels in (True, False):  # a bad value is refused wherever it is set
        monkeypatch.setattr(runtime, "bf16_native", lambda device, k=native_kernels: k)
        monkeypatch.setenv("FASHION_GAN_CPU_BF16", "yes")
        with pytest.raises(ValueError, match="FASHION_GAN_CPU_BF16 must be one of auto, on, "
                                             "off, got 'yes'"):
            runtime.bf16_choice(CPU)


def test_the_mode_is_set_inside_the_block_and_restored_after(monkeypatch):
    monkeypatch.setenv("FASHION_GAN_CPU_BF16", "off")
    with cpu_bf16_mode("on"):
        assert os.environ["FASHION_GAN_CPU_BF16"] == "on"
    assert os.environ["FASHION_GAN_CPU_BF16"] == "off"
    monkeypatch.delenv("FASHION_GAN_CPU_BF16")
    with cpu_bf16_mode("auto"):
        assert os.environ["FASHION_GAN_CPU_BF16"] == "auto"
    assert "FASHION_GAN_CPU_BF16" not in os.environ
    with pytest.raises(ValueError, match="mode must be one of"):
        with cpu_bf16_mode("fast"):
            pass


def test_the_speedup_is_measured_on_this_cpu_once_a_process():
    """The real measurement (no mock): a positive, finite ratio, taken once and remembered."""
    runtime.cpu_bf16_speedup.cache_clear()
    x = runtime.cpu_bf16_speedup()
    assert math.isfinite(x) and x > 0
    assert runtime.cpu_bf16_speedup() == x and runtime.cpu_bf16_speedup.cache_info().hits >= 1


@pytest.mark.parametrize("speedup, bf16", [(0.5, False), (2.2, True)])
def test_a_run_trains_in_the_chosen_arithmetic_and_says_why(native, speedup, bf16, tmp_path,
                                                             colour_store):
    native(speedup)
    cfg = DCGANConfig(steps=2, batch_size=4, nz=8, ngf=4, ndf=4, log_every=1, sample_every=2,
                      checkpoint_every=2)
    summary = train("dcgan", cfg, colour_store, tmp_path / "run")
    assert summary["bf16"] is bf16 and summary["arithmetic"].startswith("bf16" if bf16
                                                                         else "fp32")
    asked_off = train("dcgan", replace(cfg, bf16=False), colour_store,
                      tmp_path / "off")
    assert asked_off["bf16"] is False and asked_off["arithmetic"] == "fp32: asked for (bf16 off)"
