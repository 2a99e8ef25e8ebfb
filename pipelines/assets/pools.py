"""Where training steps run: one at a time within a run (the executor limits this tag to 1) and
in the `gpu` pool across runs. Two trainings side by side on a 2-core CPU were each 3-10x
slower than in turn; on a GPU machine they would contend for one device."""

POOL = "gpu"
TRAINING_TAG = {"fashion-gan/device": "accelerator"}
