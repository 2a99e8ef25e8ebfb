"""Files a user passes (detector weights, classifier, checkpoints, Inception/AlexNet weights,
run folders) are read with weights_only=True: a pickled object in one is refused with an
error naming the file, and its code never runs. Resume stays exact with the plain format."""

import random

import numpy as np
import pytest
import torch

from pipelines.processing.h5store import write_image_store
from pipelines.processing.person_detector import (
    DetectorWeightsError,
    build_detector,
    load_detector,
    save_detector,
)
from training.checkpoint import (
    UnsafeFileError,
    checkpoint_config,
    load_checkpoint,
    load_modules,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from training.classifier import load_classifier, save_classifier, train_classifier
from training.families.bigan import BiGANConfig, load_networks
from training.families.dcgan import DCGANConfig, load_generator
from training.features import alexnet_pool5, feature_net, inception_pool3
from training.loop import train
from training.models.dcgan import define_D


class Payload:
    """Unpickles to `open(marker, "w")`: creates the marker file, i.e. runs code on load."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def hostile(path, marker, wrap=lambda p: {"variant": p}):
    torch.save(wrap(Payload(marker)), path)
    return path


def test_the_payload_runs_code_when_unpickled(tmp_path):
    """The control: without weights_only=True this file runs code (creates the marker)."""
    marker = tmp_path / "pwned"
    path = hostile(tmp_path / "x.pt", marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


def refused(call, path, marker, error=(UnsafeFileError, DetectorWeightsError)):
    with pytest.raises(error, match="refused") as info:
        call(path)
    assert str(path) in str(info.value) and "non-tensor objects" in str(info.value)
    assert not marker.exists()


def test_detector_weights_with_a_pickled_object_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = hostile(tmp_path / "det.pt", marker, lambda p: {
        "variant": p, "build_kwargs": {}, "state_dict": {}, "meta": {}})
    refused(load_detector, path, marker, DetectorWeightsError)


def test_classifier_file_with_a_pickled_object_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = hostile(tmp_path / "classifier.pt", marker, lambda p: {
        "state_dict": {}, "values": p, "width": 4, "accuracy": {}})
    refused(load_classifier, path, marker)
    # the same file given to BiGAN as --feature-weights
    refused(lambda p: feature_net("classifier", p), path, marker)


def test_resume_checkpoint_with_a_pickled_object_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    net = torch.nn.Linear(2, 2)
    path = hostile(tmp_path / "checkpoint.pt", marker, lambda p: {
        "step": 2, "config": {"x": p}, "modules": {"netD": net.state_dict()},
        "optimizers": {}, "rng": {}})
    refused(lambda p: load_checkpoint(p, {"netD": net}, {}, {}), path, marker)
    refused(checkpoint_config, path, marker)  # read first when a run resumes
    refused(lambda p: load_modules(p, {"netD": net}), path, marker)  # reports, exports
    # a run folder's networks, as the assets load them
    (tmp_path / "run").mkdir()
    for name in ("generator.pt", "encoder.pt"):
        hostile(tmp_path / "run" / name, marker, lambda p: {"weight": p})
    refused(lambda p: load_generator(p.parent, DCGANConfig()),
            tmp_path / "run" / "generator.pt", marker)
    refused(lambda p: load_networks(p.parent, BiGANConfig()),
            tmp_path / "run" / "generator.pt", marker)


def test_feature_weights_with_a_pickled_object_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = hostile(tmp_path / "w.pth", marker, lambda p: {"fc.weight": p})
    # torch-fidelity itself unpickles with weights_only=False: it must never see the file
    refused(inception_pool3, path, marker)
    refused(alexnet_pool5, path, marker)


def test_old_checkpoint_format_is_refused_with_what_to_do(tmp_path):
    """Checkpoints from before this change held numpy's RNG state as an ndarray object."""
    net = torch.nn.Linear(2, 2)
    path = tmp_path / "checkpoint.pt"
    torch.save({"step": 2, "config": {}, "modules": {"m": net.state_dict()}, "optimizers": {},
                "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                        "python": random.getstate(), "generators": {}}}, path)
    with pytest.raises(UnsafeFileError, match="delete such a file") as info:
        load_checkpoint(path, {"m": net}, {}, {})
    assert str(path) in str(info.value)


def test_plain_torchvision_state_dict_loads_for_the_detector(tmp_path):
    torch.manual_seed(0)
    original = build_detector("mobilenet_v3_large_320_fpn")
    path = tmp_path / "fasterrcnn.pth"
    torch.save(original.state_dict(), path)
    model, meta = load_detector(path, "mobilenet_v3_large_320_fpn")
    assert meta["variant"] == "mobilenet_v3_large_320_fpn"
    loaded = model.state_dict()
    assert all(torch.equal(v, loaded[k]) for k, v in original.state_dict().items())
    # keys of another variant: a clear error naming the file and the variant
    with pytest.raises(DetectorWeightsError, match="does not fit variant 'demo_small'") as info:
        load_detector(path, "demo_small")
    assert str(path) in str(info.value)


def test_detector_file_round_trips_with_plain_meta(tmp_path):
    torch.manual_seed(0)
    model = build_detector("demo_small")
    path = save_detector(model, "demo_small", tmp_path / "det.pt",
                         {"steps": np.int64(3), "loss": np.float32(0.5), "from": tmp_path})
    torch.load(path, weights_only=True)  # nothing but tensors and plain values
    loaded, meta = load_detector(path)
    assert meta == {"variant": "demo_small", "steps": 3, "loss": 0.5, "from": str(tmp_path)}
    with pytest.raises(DetectorWeightsError, match="does not exist"):
        load_detector(tmp_path / "nope.pt")


def test_classifier_file_loads_with_weights_only(colour_store, tmp_path):
    path = save_classifier(train_classifier(colour_store, steps=1, width=4),
                           tmp_path / "classifier.pt", 4)
    assert torch.load(path, weights_only=True)["width"] == 4
    model, values = load_classifier(path)
    assert values == {"color": ["black", "white"]}


def test_rng_states_round_trip_exactly_and_tolerate_new_generators(tmp_path):
    net = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(net.parameters())
    g = torch.Generator().manual_seed(5)
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    np.random.standard_normal()  # numpy caches the second Gaussian: that is state too
    path = save_checkpoint(tmp_path / "c.pt", 7, {"net": net}, {"opt": opt}, {"data": g},
                           {"out": tmp_path, "lr": np.float64(1e-3)})
    saved = torch.load(path, weights_only=True)
    assert saved["config"] == {"out": str(tmp_path), "lr": 1e-3}

    def draw(gens):
        return (torch.rand(3).tolist(), np.random.standard_normal(3).tolist(),
                np.random.randint(0, 1 << 30, 3).tolist(), random.random(), random.gauss(0, 1),
                [torch.rand(2, generator=x).tolist() for x in gens])

    first = draw([g])
    torch.manual_seed(9), np.random.seed(9), random.seed(9), g.manual_seed(9)
    extra = torch.Generator().manual_seed(11)  # a name this checkpoint does not know
    assert load_checkpoint(path, {"net": net}, {"opt": opt}, {"data": g, "extra": extra}) == 7
    assert draw([g]) == first
    assert torch.equal(extra.get_state(), torch.Generator().manual_seed(11).get_state())
    set_rng_state(rng_state({}), {"extra": extra})  # no generators saved: skipped too


def test_dcgan_resume_is_exact_with_the_plain_format(tmp_path):
    rng = np.random.default_rng(0)
    data = write_image_store(tmp_path / "crops.h5", [f"P{i}" for i in range(16)],
                             rng.integers(0, 255, (16, 64, 64, 3), dtype=np.uint8))
    cfg = {"batch_size": 4, "nz": 16, "ngf": 8, "ndf": 8, "log_every": 1, "sample_every": 2,
           "checkpoint_every": 2}
    whole = train("dcgan", DCGANConfig(steps=4, **cfg), data, tmp_path / "whole")
    train("dcgan", DCGANConfig(steps=2, **cfg), data, tmp_path / "split")
    torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)
    resumed = train("dcgan", DCGANConfig(steps=4, **cfg), data, tmp_path / "split")
    assert resumed["resumed_from"] == 2 and whole["final_losses"] == resumed["final_losses"]
    a = load_generator(tmp_path / "whole", DCGANConfig(**cfg)).state_dict()
    b = load_generator(tmp_path / "split", DCGANConfig(**cfg)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_modules(tmp_path / "split" / "checkpoint.pt", {"netD": define_D(ndf=8)}) == 4
