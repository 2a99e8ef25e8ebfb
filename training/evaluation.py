"""One evaluation for every generator: the shared metrics in the classifier's feature space,
and in Inception's when its weights file is configured.

A generator is sampled the way its registry tags say (training.latent.sampler_inputs), so the
same function scores unconditional and conditional samplers of any family. Generated images are
brought to the real images' shape first (bilinear resize, grey repeated to RGB): the classic
collection's `infogan` backbone makes 28/32 px images with 1 or 3 channels, and the classifier
and Inception only read 3-channel images.
"""

import json

import torch
import torch.nn.functional as F

from training.datasets import H5ImageDataset
from training.latent import sampler_inputs
from training.metrics import (
    embed,
    frechet_distance,
    kernel_inception_distance,
    mode_coverage,
    mode_coverage_real,
    precision_recall,
    symmetry_error,
)
from training.models.classifier import AttributeClassifier
from training.runtime import device

BATCH = 250  # generator and classifier batches: bounds memory at n = 1000+


def as_tags(tags: dict | int) -> dict:
    """Registry tags as a dict of strings; a bare int is the legacy `nz` (latent `normal`)."""
    if isinstance(tags, int):
        return {"nz": str(tags), "latent": "normal"}
    return {k: v if isinstance(v, str) else json.dumps(v) if isinstance(v, dict | list)
            else str(v) for k, v in tags.items()}


def label_columns(tags: dict) -> list[str]:
    return [c for c in str(tags.get("label_columns", "")).split(",") if c]


@torch.no_grad()
def generate(netG: torch.nn.Module, tags: dict | int, n: int, seed: int = 0
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(n images in [-1, 1] at the generator's own size and channels, the requested labels
    (n, k) in the generator's class indices or None), seeded, in batches."""
    try:
        netG.eval()
    except NotImplementedError:  # a generator loaded from the registry (torch.export) is
        pass                     # already an inference graph and refuses .eval()
    inputs, labels = sampler_inputs(n, as_tags(tags), torch.Generator().manual_seed(seed))
    fake = torch.cat([netG(inputs[i:i + BATCH]) for i in range(0, n, BATCH)])
    return fake.float().clamp(-1, 1), labels


def to_rgb_size(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 1 or 3, h, w) -> (N, 3, size, size): bilinear resize, grey repeated to RGB."""
    if images.shape[-2:] != (size, size):
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    if images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    if images.shape[1] != 3:
        raise ValueError(f"generated images have {images.shape[1]} channels; 1 or 3 expected")
    return images


def conditional_accuracy(predicted: dict[str, torch.Tensor], requested: torch.Tensor,
                         tags: dict, values: dict[str, list[str]]) -> dict[str, float]:
    """The classifier's accuracy at recognising the requested label, per label column and
    their mean, plus the share of requested labels the classifier has no class for
    (`conditional_unmapped`; each counts as a miss). The generator's class indices refer to its
    own `label_values` tag and are matched BY NAME to the classifier's `values`; without that
    tag the names are unknown and nothing is reported."""
    columns = label_columns(tags)
    if not columns or "label_values" not in tags:
        return {}
    names = json.loads(tags["label_values"])
    if len(columns) != requested.shape[1]:
        raise ValueError(f"tags name {len(columns)} label columns ({','.join(columns)}), "
                         f"the sampler was given {requested.shape[1]}")
    sizes = [int(s) for s in str(tags.get("label_sizes", "")).split(",") if s]
    metrics, unmapped = {}, 0
    for i, column in enumerate(columns):
        known, theirs = values.get(column, []), names.get(column, [])[:sizes[i]]
        lut = torch.tensor([known.index(v) if v in known else -1
                            for v in theirs] + [-1] * (sizes[i] - len(theirs)))
        target = lut[requested[:, i]]
        hit = target >= 0
        if column in predicted:
            hit &= predicted[column] == target
        else:
            hit[:] = False
        metrics[f"conditional_accuracy_{column}"] = float(hit.float().mean())
        unmapped += int((target < 0).sum())
    metrics["conditional_accuracy"] = sum(metrics.values()) / len(columns)
    metrics["conditional_unmapped"] = unmapped / (len(requested) * len(columns))
    return metrics


@torch.no_grad()
def evaluate_generator(netG: torch.nn.Module, tags: dict | int, data: H5ImageDataset,
                       classifier: AttributeClassifier, values: dict[str, list[str]],
                       n: int = 1000, seed: int = 0,
                       inception: torch.nn.Module | None = None) -> dict[str, float]:
    """Fréchet distance, KID, precision/recall against the real images, mode coverage
    (category x colour classes the classifier finds in n samples: as a share of the
    vocabulary's, and `mode_coverage_real` of those it finds among the real images), symmetry
    error (of the samples at their own size, and of the real images); for a conditional sampler the
    conditional accuracy; with an Inception feature net (training.features.inception_pool3)
    also the standard FID and KID.

    tags: the version's registry tags (`nz`, `latent`, and for conditional samplers
    `label_columns`, `label_sizes`, `label_values`), or the legacy bare nz."""
    tags = as_tags(tags)
    native, requested = generate(netG, tags, n, seed)
    real = data.batch(torch.arange(len(data)))
    fake = to_rgb_size(native, real.shape[-1])
    dev = device()  # CUDA when present; the classifier is returned to where it was
    home = next(classifier.parameters()).device
    classifier.eval().to(dev)
    f_real = embed(classifier.features, real, device=dev)
    f_fake = embed(classifier.features, fake, device=dev)
    # the heads read the features already computed: one classifier pass over the samples
    feats = torch.from_numpy(f_fake).float().to(dev)
    predicted = {c: head(feats).argmax(1).cpu() for c, head in classifier.heads.items()}
    feats = torch.from_numpy(f_real).float().to(dev)
    predicted_real = {c: head(feats).argmax(1).cpu() for c, head in classifier.heads.items()}
    classifier.to(home)
    precision, recall = precision_recall(f_real, f_fake[:len(f_real) * 2])
    metrics = {
        "frechet_distance": frechet_distance(f_real, f_fake),
        "kid": kernel_inception_distance(f_real, f_fake, subset_size=min(100, len(f_real))),
        "precision": precision, "recall": recall,
        "symmetry_error_generated": symmetry_error(native),
        "symmetry_error_real": symmetry_error(real),
    }
    if "category" in values and "color" in values:
        metrics["mode_coverage"] = mode_coverage(
            predicted["category"].numpy(), predicted["color"].numpy(),
            len(values["category"]), len(values["color"]))
        metrics["mode_coverage_real"] = mode_coverage_real(
            predicted["category"].numpy(), predicted["color"].numpy(),
            predicted_real["category"].numpy(), predicted_real["color"].numpy())
    if requested is not None:
        metrics.update(conditional_accuracy(predicted, requested, tags, values))
    if inception is not None:
        inception.to(dev)
        i_real, i_fake = embed(inception, real, 50, dev), embed(inception, fake, 50, dev)
        metrics["fid_inception"] = frechet_distance(i_real, i_fake)
        metrics["kid_inception"] = kernel_inception_distance(
            i_real, i_fake, subset_size=min(100, len(i_real)))
    return {k: round(float(v), 5) for k, v in metrics.items()}
