"""MLflow helpers: one run per training, generators registered as `fashion-<family>`.

Tracking URI from MLFLOW_TRACKING_URI, default a sqlite store under the store root's mlflow/
(training.paths: $FASHION_GAN_STORE or assets_store/), artifacts under its mlflow/artifacts.
MLflow 3 refuses the plain file store, hence sqlite; registry stages are deprecated, so the
best version gets the alias `champion`.
"""

import fcntl
import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from training.paths import mlflow_artifact_root, mlflow_tracking_uri

EXPERIMENT = "fashion-gan"
# MLflow 3's UI opens an experiment without this tag in its GenAI view (traces, latency,
# tokens) and hides the Models link; "custom_model_development" is its "Model training" view.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
default_tracking_uri = mlflow_tracking_uri


@contextmanager
def mlflow_run(run_name: str, tracking_uri: str | None = None, artifact_root: str | None = None,
               tags: dict | None = None):
    """Start a run in the project's experiment, creating the store and experiment if needed;
    the experiment is marked as model training so the MLflow UI opens it in that view."""
    import mlflow

    uri = tracking_uri or mlflow_tracking_uri()
    root = Path(artifact_root or mlflow_artifact_root())
    lock_path = root.parent / ".setup.lock"
    if uri.startswith("sqlite:///"):
        lock_path = Path(uri[len("sqlite:///"):]).with_suffix(".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    # Training assets run in parallel processes: the first one to touch a new sqlite store
    # creates its tables and the experiment, and the others must wait rather than race.
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        mlflow.set_tracking_uri(uri)
        experiment = mlflow.get_experiment_by_name(EXPERIMENT)
        if experiment is None:
            # a tracking server keeps artifacts where it serves them from (mlflow-artifacts:/),
            # which every client reaches; a local path would be this machine's only
            location = None if uri.startswith(("http://", "https://")) else \
                root.resolve().as_uri()
            mlflow.create_experiment(EXPERIMENT, artifact_location=location,
                                     tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        elif EXPERIMENT_KIND_TAG not in experiment.tags:  # a store made before the tag
            mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id,
                                                     EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=run_name, tags=tags) as run:
        yield run


def end_killed_runs(client, dagster_run_ids: list[str], match: dict[str, str]) -> list[str]:
    """Mark KILLED the MLflow runs that the Dagster runs `dagster_run_ids` opened (their
    `dagster_run_id` tag) with `match`'s tags and left RUNNING: a killed process never ends its
    run, which would otherwise show as running in the MLflow UI for ever. Returns their ids."""
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    ended = []
    for dagster_run_id in dagster_run_ids:
        for run in client.search_runs([experiment.experiment_id],
                                      f"tags.dagster_run_id = '{dagster_run_id}' "
                                      "and attributes.status = 'RUNNING'"):
            if all(run.data.tags.get(k, "") == v for k, v in match.items()):
                client.set_terminated(run.info.run_id, "KILLED")
                ended.append(run.info.run_id)
    return ended


def log_generator(netG: torch.nn.Module, family: str, nz: int, tags: dict | None = None,
                  latent: str = "normal") -> str:
    """Log the generator as an MLflow model (pt2 export, which needs an input example: 4
    inputs built from the tags by training.latent.sampler_inputs, so a conditional sampler's
    one-hots are included and the batch dimension stays dynamic) and register it as
    fashion-<family>, its version tagged with nz, the latent distribution and `tags` (dicts
    and lists as JSON, e.g. label_values). Returns the new version."""
    from training.latent import sampler_inputs

    tags = version_tags({"nz": nz, "latent": latent, **(tags or {})})
    example = sampler_inputs(4, tags, torch.Generator().manual_seed(0))[0]
    return register_network(netG, family, (example,), tags, "generator")


def log_translator(net: torch.nn.Module, name: str, tags: dict,
                   example: tuple[torch.Tensor, ...] | torch.Tensor) -> str:
    """Log an image-to-image translator as an MLflow model (pt2, exported with `example`: a
    few input images, and a conditional translator's second input) and register it as
    fashion-<name>, its version tagged with `tags` (Family.translator_tags: kind translator,
    domains, image_size, conditioning, main measure). Returns the new version."""
    example = (example,) if isinstance(example, torch.Tensor) else tuple(example)
    return register_network(net, name, example, version_tags(tags), "translator")


def version_tags(tags: dict) -> dict[str, str]:
    """Registry tag values as strings: dicts and lists as JSON, the rest str()."""
    return {k: json.dumps(v) if isinstance(v, dict | list) else str(v) for k, v in tags.items()}


def register_network(net: torch.nn.Module, name: str, example: tuple[torch.Tensor, ...],
                     tags: dict[str, str], artifact: str) -> str:
    """The one way a network reaches the registry: fp32, contiguous, on the CPU, in eval mode;
    logged under `artifact` as pt2 with `example` (a batch of more than one, so the batch
    dimension stays dynamic; several inputs get an explicit signature, which MLflow cannot
    infer from a tuple), registered as fashion-<name> and tagged. Returns the version.

    The pip requirements are MLflow's defaults for the flavour: inferring them re-imports the
    model in a subprocess, which took 26-36 s of a 57 s registration on a busy 2-core box."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    net = net.float().to(memory_format=torch.contiguous_format).cpu().eval()
    arrays = [np.asarray(t.detach().float().cpu(), dtype=np.float32) for t in example]
    signature = None
    if len(arrays) > 1:
        signature = ModelSignature(inputs=Schema([
            TensorSpec(np.dtype(np.float32), (-1, *a.shape[1:]), f"input_{i}")
            for i, a in enumerate(arrays)]))
    info = mlflow.pytorch.log_model(net, name=artifact,
                                    input_example=arrays[0] if len(arrays) == 1 else
                                    tuple(arrays), signature=signature,
                                    registered_model_name=f"fashion-{name}",
                                    pip_requirements=mlflow.pytorch.get_default_pip_requirements())
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    for k, v in tags.items():
        client.set_model_version_tag(f"fashion-{name}", version, k, v)
    return version
