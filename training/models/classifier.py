"""The attribute classifier: a small CNN on 64x64 images with one head per attribute column.

Its penultimate features are the offline feature space of the shared metrics (Fréchet distance,
KID, precision/recall) and of BiGAN's L_H, where no ImageNet or Inception weights can be had.
"""

import torch
from torch import nn


class AttributeClassifier(nn.Module):
    """image (N, 3, 64, 64) in [-1, 1] -> {column: logits (N, n_values)}; features() gives the
    (N, feature_dim) embedding the metrics use."""

    def __init__(self, heads: dict[str, int], width: int = 32, feature_dim: int = 256):
        super().__init__()

        def block(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                                 nn.BatchNorm2d(c_out), nn.ReLU(True),
                                 nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
                                 nn.BatchNorm2d(c_out), nn.ReLU(True), nn.MaxPool2d(2))

        self.body = nn.Sequential(block(3, width), block(width, width * 2),
                                  block(width * 2, width * 4), block(width * 4, width * 8),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(width * 8, feature_dim), nn.ReLU(True))
        self.heads = nn.ModuleDict({k: nn.Linear(feature_dim, n) for k, n in heads.items()})

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(x)
        return {k: head(f) for k, head in self.heads.items()}


def define_classifier(heads: dict[str, int], width: int = 32,
                      feature_dim: int = 256) -> AttributeClassifier:
    return AttributeClassifier(heads, width, feature_dim)
