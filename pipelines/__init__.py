"""Dagster definitions (definitions.py, assets/) over a library (processing/) that never imports
dagster."""
