"""Fixed feature networks: the space the metrics and BiGAN's L_H measure images in.

- `classifier` (the offline default): the project's attribute classifier, penultimate layer;
- `alexnet`: AlexNet pool5 with ImageNet weights, as in the BiGAN reconstruction paper;
- `inception`: the TF-ported Inception-v3 pool3 (2048-d) of the standard FID, via
  torch-fidelity, from a local weights file.
Each returns a frozen module mapping images (N, 3, H, W) in [-1, 1] to features (N, D); it is
differentiable in its input (L_H back-propagates through it), never in its weights.
"""

import io
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from training.checkpoint import load_plain

INCEPTION_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                 "weights-inception-2015-12-05-6726825d.pth")
ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
FEATURE_NETS = ("classifier", "alexnet")


def _frozen(module: nn.Module) -> nn.Module:
    module.requires_grad_(False)
    return module.eval()


class ClassifierFeatures(nn.Module):
    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(x)


class AlexNetPool5(nn.Module):
    """ImageNet-normalised, resized to 224 (64x64 would leave pool5 at 1x1), 9216-d."""

    def __init__(self, alexnet: nn.Module):
        super().__init__()
        self.features = alexnet.features
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate((x + 1) / 2, size=224, mode="bilinear", align_corners=False)
        return self.features((x - self.mean) / self.std).flatten(1)


class InceptionPool3(nn.Module):
    """The standard FID feature extractor; it takes uint8 images and resizes them itself."""

    def __init__(self, extractor: nn.Module):
        super().__init__()
        self.extractor = extractor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return self.extractor(images)[0]


def classifier_features(path: Path) -> nn.Module:
    from training.classifier import load_classifier

    classifier, _ = load_classifier(path)
    return _frozen(ClassifierFeatures(classifier))


def alexnet_pool5(weights: str | Path | None = None) -> nn.Module:
    """AlexNet pool5 from a local ImageNet state-dict file, or torchvision's download (and
    cache) when none is given; a clear error when neither is there."""
    from torchvision.models import AlexNet_Weights, alexnet

    net = alexnet(weights=None)
    if weights:
        if not Path(weights).is_file():
            raise FileNotFoundError(f"AlexNet weights file {weights} does not exist; download "
                                    f"{ALEXNET_URL} there, or use feature_net='classifier'")
        state = load_plain(weights, "AlexNet weights file")
    else:
        try:
            state = AlexNet_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
        except Exception as e:  # offline: no cache and no internet
            raise RuntimeError(
                f"AlexNet ImageNet weights are not available ({type(e).__name__}: {e}). Pass a "
                f"local file (feature_weights / --feature-weights, from {ALEXNET_URL}) or use "
                "feature_net='classifier', the project's own attribute classifier") from e
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise ValueError(f"AlexNet weights file {weights} is not torchvision's AlexNet state "
                         f"dict ({ALEXNET_URL}): {type(e).__name__}: {e}") from e
    return _frozen(AlexNetPool5(net))


def inception_pool3(weights: str | Path) -> nn.Module:
    """torch-fidelity's FID Inception-v3 from a local weights file; nothing is downloaded."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    if not weights or not Path(weights).is_file():
        raise FileNotFoundError(
            f"Inception weights file {weights!r} does not exist. Standard FID needs the "
            f"TF-ported Inception-v3: download {INCEPTION_URL} and pass its path "
            "(inception_weights / --inception-weights); without it the metrics use the "
            "attribute classifier's feature space only")
    # torch-fidelity unpickles the file with weights_only=False; so it is read here with
    # weights_only=True and torch-fidelity gets these tensors re-saved in memory, never the file
    state = load_plain(weights, "Inception weights file")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise ValueError(f"Inception weights file {weights} is not a state dict of tensors "
                         f"({INCEPTION_URL})")
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    try:
        extractor = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                                feature_extractor_weights_path=buffer)
    except RuntimeError as e:  # keys or shapes of another network
        raise ValueError(f"Inception weights file {weights} is not torch-fidelity's "
                         f"Inception-v3 ({INCEPTION_URL}): {e}") from e
    return _frozen(InceptionPool3(extractor))


def feature_net(kind: str, classifier_path: Path | None = None,
                weights: str | Path | None = None) -> nn.Module:
    """The L_H feature network by name: `classifier` or `alexnet`."""
    if kind == "classifier":
        if classifier_path is None or not Path(classifier_path).is_file():
            raise FileNotFoundError(f"feature_net='classifier' needs the attribute classifier "
                                    f"at {classifier_path} (materialise attribute_classifier)")
        return classifier_features(classifier_path)
    if kind == "alexnet":
        return alexnet_pool5(weights)
    raise ValueError(f"feature_net must be one of {FEATURE_NETS}, got {kind!r}")
