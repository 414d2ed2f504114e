"""Rebalance's adapters and pipeline: landing files, Great Expectations, the warehouse, the CLI.

``rebalance_core`` holds the domain logic; this package feeds it frames and stores what it
returns. ``steps`` holds the nightly pipeline functions that both the CLI and the Airflow
DAG call.
"""
