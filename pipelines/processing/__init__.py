"""The data-processing library behind the Dagster assets. It never imports dagster."""
