"""The MLflow UI as this project serves it: MLflow's own app, opening in its Model training view.

MLflow 3.17's UI chooses between its GenAI view (traces, latency, tokens) and its Model training
view (runs, models, the registry) per browser, not per experiment: the choice is kept in the
browser's localStorage (`mlflow.workflowType_v1`) and defaults to GenAI, and the experiment tag
`mlflow.experimentKind` (which training/tracking.py still sets, for older UIs) is no longer
read. A newcomer's browser therefore lands in a page of empty trace charts with no Models link.

`create_app` is MLflow's server app with one change: the page it serves (index.html) sets that
choice to Model training when the browser has not made one yet. A choice made later in the
sidebar is kept. Registered as the MLflow app `fashion-gan` (pyproject.toml, entry point group
`mlflow.app`), so `mlflow ui --app-name fashion-gan` (what `make mlflow-ui` runs) serves it.
"""

import json
from pathlib import Path

WORKFLOW_KEY = "mlflow.workflowType_v1"  # the UI's localStorage key (name + "_v" + version)
DEFAULT_VIEW = "machine_learning"  # the "Model training" view; the UI's own default is "genai"
_KEY, _VALUE = json.dumps(WORKFLOW_KEY), json.dumps(json.dumps(DEFAULT_VIEW))
SCRIPT = (f"<script>try{{if(localStorage.getItem({_KEY})===null)"
          f"localStorage.setItem({_KEY},{_VALUE})}}catch(e){{}}</script>")


def index_html(static_folder: str | Path) -> str:
    """MLflow's index.html with the default-view script first in <head>, so it runs before
    the UI's bundle reads the choice."""
    html = (Path(static_folder) / "index.html").read_text(encoding="utf-8")
    if "<head>" not in html:
        raise ValueError(f"{static_folder}/index.html has no <head>: not the MLflow UI build "
                         "this project knows (mlflow 3.17)")
    return html.replace("<head>", "<head>" + SCRIPT, 1)


def create_app():
    """MLflow's server app (Flask, wrapped in MLflow's FastAPI app under uvicorn, the default
    server of `mlflow ui`) serving the index page with the Model training default."""
    from flask import Response
    from mlflow.environment_variables import _MLFLOW_SGI_NAME
    from mlflow.server import app

    page = index_html(app.static_folder)
    app.view_functions["serve"] = lambda: Response(page, mimetype="text/html")
    if _MLFLOW_SGI_NAME.get() == "uvicorn":
        from mlflow.server.fastapi_app import create_fastapi_app

        return create_fastapi_app(app)
    return app
