"""Image classifiers with one head per label column: the project's attribute classifier
(`multihead`) and the two networks of the fashion-MNIST study (`dense`, `conv`).

Every architecture offers the same interface, so any of them can be the feature space of the
shared metrics (Fréchet distance, KID, precision/recall) and of BiGAN's L_H, where no ImageNet
or Inception weights can be had: `features(x)` (N, D) and `heads` (a ModuleDict of linear
layers reading those features), `forward(x)` = {column: logits}. Images are (N, C, H, W) in
[-1, 1]; an input of another size or channel count than the network was built for is resized
(antialiased bilinear) and converted (grey <-> RGB) first, so a classifier trained on
Fashion-MNIST's 28x28 grey images can still embed 64x64 RGB samples.

The study's networks, as this project reads its description ("784 -> 128 -> 10"; "5x5 x 64,
5x5 x 128, dense"):
- dense: flatten -> Linear(C*H*W, 128) -> ReLU -> heads;
- conv:  Conv 5x5 (64, 'same' padding) -> ReLU -> MaxPool 2 -> Conv 5x5 (128, 'same') -> ReLU
         -> MaxPool 2 -> flatten -> Linear(128 * (H/4) * (W/4), 128) -> ReLU -> heads.
  The description names no pooling or strides; 2x2 max pooling after each convolution (the
  usual Keras/TensorFlow tutorial layout it comes from) keeps the dense layer at 6,272 inputs
  on 28x28 and 32,768 on 64x64.
"""

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

ARCHS = ("dense", "conv", "multihead")
LUMA = (0.299, 0.587, 0.114)


class MultiHeadClassifier(nn.Module):
    """body: images -> features (N, feature_dim); heads: {column: Linear(feature_dim, n)}."""

    body: nn.Module

    def __init__(self, heads: dict[str, int], feature_dim: int, channels: int = 3,
                 image_size: int | None = None):
        super().__init__()
        if not heads:
            raise ValueError("a classifier needs at least one head (label column)")
        self.channels, self.image_size, self.feature_dim = channels, image_size, feature_dim
        self.head_sizes = dict(heads)

    def add_heads(self) -> None:
        """The heads, built after the body (as the attribute classifier always was, so a seed
        gives the same initial weights, hence the same feature space, as before)."""
        self.heads = nn.ModuleDict({k: nn.Linear(self.feature_dim, n)
                                    for k, n in self.head_sizes.items()})

    def fit_input(self, x: torch.Tensor) -> torch.Tensor:
        """The input at the size and channels the network was built for."""
        if x.shape[1] != self.channels:
            if x.shape[1] == 1 and self.channels == 3:
                x = x.expand(-1, 3, -1, -1)
            elif x.shape[1] == 3 and self.channels == 1:
                x = (x * x.new_tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
            else:
                raise ValueError(f"the classifier takes {self.channels}-channel images, got "
                                 f"{x.shape[1]}")
        if self.image_size and x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                              antialias=True, align_corners=False)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.fit_input(x))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(x)
        return {k: head(f) for k, head in self.heads.items()}


class AttributeClassifier(MultiHeadClassifier):
    """The project's attribute classifier: `depth` blocks of two 3x3 conv-BN-ReLU and a 2x2
    max pool, channels width, 2*width, ... (capped at 8*width), global average pooling and a
    Linear(.., feature_dim) + ReLU; image (N, 3, 64, 64) -> {column: logits}. The defaults
    (width 32, depth 4) are the network the metrics have always used."""

    def __init__(self, heads: dict[str, int], width: int = 32, feature_dim: int = 256,
                 depth: int = 4, channels: int = 3):
        super().__init__(heads, feature_dim, channels, None)

        def block(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                                 nn.BatchNorm2d(c_out), nn.ReLU(True),
                                 nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
                                 nn.BatchNorm2d(c_out), nn.ReLU(True), nn.MaxPool2d(2))

        widths = [channels] + [width * min(2 ** i, 8) for i in range(depth)]
        self.body = nn.Sequential(*(block(a, b) for a, b in pairwise(widths)),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(widths[-1], feature_dim), nn.ReLU(True))
        self.add_heads()


class DenseClassifier(MultiHeadClassifier):
    """The study's dense network: flatten -> Linear(C*H*W, hidden) -> ReLU -> heads."""

    def __init__(self, heads: dict[str, int], channels: int, image_size: int,
                 hidden: int = 128):
        super().__init__(heads, hidden, channels, image_size)
        self.body = nn.Sequential(nn.Flatten(),
                                  nn.Linear(channels * image_size * image_size, hidden),
                                  nn.ReLU(True))
        self.add_heads()


class ConvClassifier(MultiHeadClassifier):
    """The study's convolutional network: two 5x5 'same' convolutions (64, 128), each with
    ReLU and 2x2 max pooling, then a dense layer (hidden, ReLU) -> heads."""

    def __init__(self, heads: dict[str, int], channels: int, image_size: int,
                 hidden: int = 128, filters: tuple[int, int] = (64, 128)):
        super().__init__(heads, hidden, channels, image_size)
        if image_size < 4:
            raise ValueError(f"the conv classifier needs images of at least 4 px, got "
                             f"{image_size}")
        side = image_size // 4
        self.body = nn.Sequential(
            nn.Conv2d(channels, filters[0], 5, padding=2), nn.ReLU(True), nn.MaxPool2d(2),
            nn.Conv2d(filters[0], filters[1], 5, padding=2), nn.ReLU(True), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(filters[1] * side * side, hidden), nn.ReLU(True))
        self.add_heads()


def define_classifier(heads: dict[str, int], width: int = 32,
                      feature_dim: int = 256) -> AttributeClassifier:
    """The attribute classifier as the metrics have always built it (3 channels, depth 4)."""
    return AttributeClassifier(heads, width, feature_dim)


def build_classifier(arch: str, heads: dict[str, int], channels: int = 3, image_size: int = 64,
                     hidden: int = 128, width: int = 32, depth: int = 4,
                     feature_dim: int = 256) -> MultiHeadClassifier:
    """Any architecture by name: dense and conv use `hidden` (the study's 128); multihead
    uses width, depth and feature_dim. A one-line ValueError for what cannot be built."""
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {list(ARCHS)}, got {arch!r}")
    if arch == "dense":
        return DenseClassifier(heads, channels, image_size, hidden)
    if arch == "conv":
        return ConvClassifier(heads, channels, image_size, hidden)
    if image_size < 2 ** depth:
        raise ValueError(f"the multihead classifier of depth {depth} halves the image {depth} "
                         f"times: it needs at least {2 ** depth} px, got {image_size}")
    return AttributeClassifier(heads, width, feature_dim, depth, channels)
