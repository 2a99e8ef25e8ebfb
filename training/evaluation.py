"""One evaluation for every generator: the shared metrics in the classifier's feature space,
and in Inception's when its weights file is configured."""

import torch

from training.datasets import H5ImageDataset
from training.latent import sample_latent
from training.metrics import (
    embed,
    frechet_distance,
    kernel_inception_distance,
    mode_coverage,
    precision_recall,
    symmetry_error,
)
from training.models.classifier import AttributeClassifier


@torch.no_grad()
def evaluate_generator(netG: torch.nn.Module, nz: int, data: H5ImageDataset,
                       classifier: AttributeClassifier, values: dict[str, list[str]],
                       n: int = 1000, seed: int = 0, latent: str = "normal",
                       inception: torch.nn.Module | None = None) -> dict[str, float]:
    """Fréchet distance, KID, precision/recall, mode coverage (category x colour classes the
    classifier finds in n samples) and symmetry error against the real images; with an
    Inception feature net (training.features.inception_pool3) also the standard FID and KID.
    latent: the distribution the generator was trained on (training.latent)."""
    try:
        netG.eval()
    except NotImplementedError:  # a generator loaded from the registry (torch.export) is
        pass                     # already an inference graph and refuses .eval()
    g = torch.Generator().manual_seed(seed)
    fake = torch.cat([netG(sample_latent(min(250, n - i), nz, latent, g))
                      for i in range(0, n, 250)]).float().clamp(-1, 1)
    real = data.batch(torch.arange(len(data)))
    classifier.eval()
    f_real, f_fake = embed(classifier.features, real), embed(classifier.features, fake)
    precision, recall = precision_recall(f_real, f_fake[:len(f_real) * 2])
    metrics = {
        "frechet_distance": frechet_distance(f_real, f_fake),
        "kid": kernel_inception_distance(f_real, f_fake, subset_size=min(100, len(f_real))),
        "precision": precision, "recall": recall,
        "symmetry_error_generated": symmetry_error(fake),
        "symmetry_error_real": symmetry_error(real),
    }
    if "category" in values and "color" in values:
        out = classifier(fake)
        metrics["mode_coverage"] = mode_coverage(
            out["category"].argmax(1).numpy(), out["color"].argmax(1).numpy(),
            len(values["category"]), len(values["color"]))
    if inception is not None:
        i_real, i_fake = embed(inception, real, 50), embed(inception, fake, 50)
        metrics["fid_inception"] = frechet_distance(i_real, i_fake)
        metrics["kid_inception"] = kernel_inception_distance(
            i_real, i_fake, subset_size=min(100, len(i_real)))
    return {k: round(float(v), 5) for k, v in metrics.items()}
