"""Where things are: project folders and environment variables, read in one place.

REBALANCE_WAREHOUSE_URL  SQLAlchemy URL of the warehouse; unset: the embedded PostgreSQL
REBALANCE_HOME           folder for local state (embedded pgdata, demo data); default
                         ``<project>/.rebalance``
REBALANCE_LANDING_DIR    landing folder of the Airflow DAG (one sub-folder per date)
REBALANCE_OUTBOX_DIR     where order files go (default ``$REBALANCE_HOME/outbox``)
REBALANCE_REPORTS_DIR    where HTML drift reports go (default ``$REBALANCE_HOME/reports``)
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SQL_DIR = Path(os.environ.get("REBALANCE_SQL_DIR", PROJECT_ROOT / "sql"))


def home() -> Path:
    return Path(os.environ.get("REBALANCE_HOME", PROJECT_ROOT / ".rebalance")).resolve()


def warehouse_url_from_env() -> str | None:
    return os.environ.get("REBALANCE_WAREHOUSE_URL") or None


def landing_dir() -> Path:
    value = os.environ.get("REBALANCE_LANDING_DIR")
    return Path(value) if value else home() / "landing"


def outbox_dir() -> Path:
    value = os.environ.get("REBALANCE_OUTBOX_DIR")
    return Path(value) if value else home() / "outbox"


def reports_dir() -> Path:
    value = os.environ.get("REBALANCE_REPORTS_DIR")
    return Path(value) if value else home() / "reports"
