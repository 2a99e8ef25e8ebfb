"""The shared metrics and the attribute classifier."""

import numpy as np
import pytest
import torch

from training.classifier import MISSING, label_targets, train_classifier
from training.metrics import (
    embed,
    frechet_distance,
    kernel_inception_distance,
    mode_coverage,
    mode_coverage_real,
    precision_recall,
)


def test_frechet_distance():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(500, 8)), rng.normal(size=(500, 8))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    near, far = frechet_distance(a, b), frechet_distance(a, b + 2.0)
    assert near < 0.2 and far == pytest.approx(near + 8 * 4, rel=0.05)  # ‖Δμ‖² = 8 · 2²


def test_kid_and_precision_recall():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    assert abs(kernel_inception_distance(a, b)) < 0.05
    assert kernel_inception_distance(a, b + 3.0) > 1.0
    p, r = precision_recall(a, b)
    assert p > 0.8 and r > 0.8
    p, r = precision_recall(a, b + 10.0)
    assert p == 0.0 and r == 0.0
    collapsed = np.repeat(b[:1], 300, axis=0)  # one mode only: precise, no recall
    p, r = precision_recall(a, collapsed)
    assert r < 0.1


def test_mode_coverage_and_embed():
    assert mode_coverage(np.array([0, 0, 1]), np.array([0, 0, 2]), 7, 9) == 2 / 63
    feats = embed(lambda x: x.flatten(1), torch.zeros(5, 3, 2, 2), batch_size=2)
    assert feats.shape == (5, 12) and feats.dtype == np.float64


def test_mode_coverage_real_counts_only_the_classes_of_the_real_images():
    real_cat, real_col = np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2])  # 4 classes
    # samples reach (0, 0) and (1, 1) of the real classes, and (5, 5), which no real image has
    cat, col = np.array([0, 1, 5, 0]), np.array([0, 1, 5, 0])
    assert mode_coverage_real(cat, col, real_cat, real_col) == 2 / 4
    assert mode_coverage_real(real_cat, real_col, real_cat, real_col) == 1.0
    assert mode_coverage_real(cat, col, np.array([], int), np.array([], int)) == 0.0


def test_label_targets():
    names = ["category_dresses", "category_tops", "sleeve_length_long", "sleeve_length_short"]
    labels = np.array([[1, 0, 0, 1], [0, 1, 0, 0]], np.uint8)
    targets, values = label_targets(labels, names)
    assert values == {"category": ["dresses", "tops"], "sleeve_length": ["long", "short"]}
    assert targets["category"].tolist() == [0, 1]
    assert targets["sleeve_length"].tolist() == [1, MISSING]


def test_classifier_learns_an_easy_attribute(colour_store):
    result = train_classifier(colour_store, steps=30, batch_size=16, width=8)
    assert result.values == {"color": ["black", "white"]}
    assert result.accuracy["color"] >= 0.9
    feats = embed(result.model.features, torch.zeros(3, 3, 64, 64))
    assert feats.shape == (3, 256)
