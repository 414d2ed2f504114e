"""The ops review view: the "Rebalance" page inside the Airflow UI.

``queries`` reads the warehouse (no web code), ``charts`` draws the per-fund drift chart as
SVG, ``csrf`` signs and checks form tokens, ``app`` is the FastAPI application the Airflow
plugin (``plugins/rebalance_review.py``) mounts on the api-server at ``/rebalance``.
Only ``app`` imports Airflow.
"""
