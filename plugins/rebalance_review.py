"""Airflow plugin: the "Rebalance" review view in the Airflow UI.

Mounts the FastAPI app of ``rebalance_pipeline.review.app`` on the api-server at
``/rebalance`` and adds a "Rebalance" entry to the UI's navigation that shows it inside
Airflow. Signing in, users and permissions are Airflow's (see the app's docstring).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from rebalance_pipeline.review.app import create_app

REVIEW_URL_PREFIX = "/rebalance"


class RebalanceReviewPlugin(AirflowPlugin):
    name = "rebalance_review"
    fastapi_apps = [{"app": create_app(), "url_prefix": REVIEW_URL_PREFIX, "name": "Rebalance review"}]
    external_views = [{
        "name": "Rebalance",
        "href": f"{REVIEW_URL_PREFIX}/",
        "destination": "nav",
        "url_route": "rebalance",
        "nav_top_level": True,
    }]
