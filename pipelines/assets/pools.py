"""Where training steps run: one at a time within a run (the executor limits this tag to 1) and
in the `gpu` pool across runs. Two trainings side by side on a 2-core CPU were each 3-10x
slower than in turn; on a GPU machine they would contend for one device.

On a Dask cluster (pipelines/executors.py) the same rule is a worker resource: a training step
asks for one `accelerator`, so only a worker started with `--resources "accelerator=1"` takes
it, one step at a time; CPU-only workers never do."""

import json

POOL = "gpu"
ACCELERATOR = "accelerator"  # the Dask worker resource a training step takes
DASK_RESOURCES_TAG = "dagster-dask/resource_requirements"  # the tag dagster-dask reads
TRAINING_TAG = {"fashion-gan/device": "accelerator",
                DASK_RESOURCES_TAG: json.dumps({ACCELERATOR: 1})}
