"""The GAN training library (datasets, models, losses, loops, metrics, MLflow helpers).

It never imports dagster, so a run can be launched outside Dagster (`python -m training ...`).
"""
