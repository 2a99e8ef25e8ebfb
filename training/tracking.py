"""MLflow helpers: one run per training, generators registered as `fashion-<family>`.

Tracking URI from MLFLOW_TRACKING_URI, default a sqlite store under the store root's mlflow/
(training.paths: $FASHION_GAN_STORE or assets_store/), artifacts under its mlflow/artifacts.
MLflow 3 refuses the plain file store, hence sqlite; registry stages are deprecated, so the
best version gets the alias `champion`.
"""

import fcntl
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
            mlflow.create_experiment(EXPERIMENT, artifact_location=root.resolve().as_uri(),
                                     tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        elif EXPERIMENT_KIND_TAG not in experiment.tags:  # a store made before the tag
            mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id,
                                                     EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=run_name, tags=tags) as run:
        yield run


def log_generator(netG: torch.nn.Module, family: str, nz: int, tags: dict | None = None,
                  latent: str = "normal") -> str:
    """Log the generator as an MLflow model (pt2 export, which needs an input example: 4
    inputs built from the tags by training.latent.sampler_inputs, so a conditional sampler's
    one-hots are included and the batch dimension stays dynamic) and register it as
    fashion-<family>, its version tagged with nz, the latent distribution and `tags` (dicts
    and lists as JSON, e.g. label_values). Returns the new version.

    The pip requirements are MLflow's defaults for the flavour: inferring them re-imports the
    model in a subprocess, which took 26-36 s of a 57 s registration on a busy 2-core box."""
    import json

    import mlflow

    from training.latent import sampler_inputs

    tags = {"nz": nz, "latent": latent, **(tags or {})}
    tags = {k: json.dumps(v) if isinstance(v, dict | list) else str(v) for k, v in tags.items()}
    netG = netG.float().to(memory_format=torch.contiguous_format).cpu().eval()
    example = np.asarray(sampler_inputs(4, tags, torch.Generator().manual_seed(0))[0],
                         dtype=np.float32)
    info = mlflow.pytorch.log_model(netG, name="generator", input_example=example,
                                    registered_model_name=f"fashion-{family}",
                                    pip_requirements=mlflow.pytorch.get_default_pip_requirements())
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    for k, v in tags.items():
        client.set_model_version_tag(f"fashion-{family}", version, k, v)
    return version
