"""Feature networks from local weights files, the standard-FID path, latents, flip gap."""

import pytest
import torch
from torch import nn

from training.features import alexnet_pool5, feature_net, inception_pool3
from training.latent import sample_latent
from training.metrics import flip_gap, mean_abs_error


def random_inception_file(path, monkeypatch):
    """An Inception-v3 weights file of the right layout (random weights): the real loading
    code runs on it exactly as on the downloaded one, without the internet."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    with monkeypatch.context() as m:
        m.setattr(fe, "load_state_dict_from_url", lambda *a, **k: {})
        m.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda *a, **k: None)
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    torch.manual_seed(0)
    for m in net.modules():  # variance-keeping random weights, so features differ by image
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
    torch.save(net.state_dict(), path)
    return path


def test_inception_from_a_local_file(tmp_path, monkeypatch):
    net = inception_pool3(random_inception_file(tmp_path / "inception.pth", monkeypatch))
    feats = net(torch.rand(2, 3, 64, 64) * 2 - 1)
    assert feats.shape == (2, 2048) and not any(p.requires_grad for p in net.parameters())
    assert (feats[0] - feats[1]).abs().max() > 0


def test_inception_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights-inception-2015-12-05"):
        inception_pool3(tmp_path / "nope.pth")


def test_evaluation_adds_standard_fid_with_inception(tmp_path, monkeypatch, colour_store):
    from training.classifier import train_classifier
    from training.datasets import H5ImageDataset
    from training.evaluation import evaluate_generator
    from training.models.dcgan import define_G

    inception = inception_pool3(random_inception_file(tmp_path / "i.pth", monkeypatch))
    clf = train_classifier(colour_store, steps=1, width=4)
    data = H5ImageDataset(colour_store)
    data.images = data.images[:16]
    scores = evaluate_generator(define_G(8, 8), 8, data, clf.model, clf.values, n=16,
                                inception=inception)
    assert scores["fid_inception"] > 0 and "kid_inception" in scores
    assert "fid_inception" not in evaluate_generator(define_G(8, 8), 8, data, clf.model,
                                                     clf.values, n=16)


def test_alexnet_pool5_from_a_local_file(tmp_path):
    from torchvision.models import alexnet

    path = tmp_path / "alexnet.pth"
    torch.save(alexnet(weights=None).state_dict(), path)
    net = alexnet_pool5(path)
    x = (torch.rand(2, 3, 64, 64) * 2 - 1).requires_grad_()
    feats = net(x)
    assert feats.shape == (2, 256 * 6 * 6)
    feats.sum().backward()  # L_H back-propagates to the images, never into the weights
    assert x.grad is not None and all(p.grad is None for p in net.parameters())
    with pytest.raises(FileNotFoundError, match="alexnet-owt"):
        alexnet_pool5(tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="feature_net"):
        feature_net("vgg")


def test_latents():
    g = torch.Generator().manual_seed(0)
    u = sample_latent(1000, 8, "uniform", g)
    assert u.shape == (1000, 8, 1, 1) and u.min() >= -1 and u.max() <= 1 and u.std() > 0.5
    assert sample_latent(3, 8, "normal").shape == (3, 8, 1, 1)
    with pytest.raises(ValueError, match="uniform"):
        sample_latent(1, 1, "cauchy")


class SideDetector(nn.Module):
    """Scores how much brighter the left half is: a discriminator that cares about direction."""

    def forward(self, x):
        return (x[..., :32].mean((1, 2, 3)) - x[..., 32:].mean((1, 2, 3))) * 10


def test_flip_gap():
    left_bright = torch.zeros(8, 3, 64, 64)
    left_bright[..., :32] = 1.0
    assert flip_gap(lambda x: x.mean((1, 2, 3)), left_bright) == pytest.approx(0.0)
    assert flip_gap(SideDetector(), left_bright) < -1.0  # flipped, they look "faker"
    assert mean_abs_error(left_bright, left_bright.flip(-1)) == pytest.approx(1.0)
