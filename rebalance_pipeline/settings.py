"""Where things are: project folders and environment variables, read in one place.

REBALANCE_WAREHOUSE_URL  SQLAlchemy URL of the warehouse; unset: the embedded PostgreSQL
REBALANCE_HOME           folder for local state (embedded pgdata, demo data); default
                         ``<project>/.rebalance`` in a checkout (editable install included),
                         ``~/.rebalance`` for a package installed from a wheel
REBALANCE_LANDING_DIR    landing folder of the Airflow DAG (one sub-folder per date)
REBALANCE_OUTBOX_DIR     where order files go (default ``$REBALANCE_HOME/outbox``)
REBALANCE_REPORTS_DIR    where HTML drift reports go (default ``$REBALANCE_HOME/reports``)
REBALANCE_PCF_DIR        where ETF basket files (PCF) go (default ``$REBALANCE_HOME/pcf``)
REBALANCE_SQL_DIR        another folder of migrations and queries (default: the package's own,
                         ``rebalance_pipeline/sql``: in a checkout a link to the top-level
                         ``sql/``, in a wheel a copy of it)

The embedded PostgreSQL is a convenience of one machine (CLI, demo, Airflow's LocalExecutor).
Where Airflow runs a distributed executor (Celery, Kubernetes, Edge) every worker would start
a warehouse of its own, so ``distributed_executor()`` tells ``warehouse.get_engine`` to refuse
instead (``WarehouseNotConfigured``) until REBALANCE_WAREHOUSE_URL names the shared one.
"""

from __future__ import annotations

import configparser
import importlib.resources
import importlib.util
import os
import re
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The SQL ships inside the package (package data), so an installed wheel finds it as a
# checkout does; read it with importlib.resources, never from the checkout's folder.
SQL_DIR = (Path(os.environ["REBALANCE_SQL_DIR"]) if os.environ.get("REBALANCE_SQL_DIR")
           else importlib.resources.files("rebalance_pipeline") / "sql")


def home() -> Path:
    # Not inside site-packages for an installed wheel (often read-only, and wiped by an upgrade).
    default = (PROJECT_ROOT / ".rebalance" if (PROJECT_ROOT / "pyproject.toml").is_file()
               else Path.home() / ".rebalance")
    return Path(os.environ.get("REBALANCE_HOME", default)).resolve()


def warehouse_url_from_env() -> str | None:
    return os.environ.get("REBALANCE_WAREHOUSE_URL") or None


# ------------------------------------------------------------------ Airflow's executor
# Executors whose tasks run on other machines or pods than the scheduler's: by class name, or
# by the module of a provider's executor (an aliased or subclassed one is still recognised).
DISTRIBUTED_EXECUTORS = frozenset({"CeleryExecutor", "KubernetesExecutor", "CeleryKubernetesExecutor",
                                   "LocalKubernetesExecutor", "EdgeExecutor"})
DISTRIBUTED_EXECUTOR_MODULES = ("airflow.providers.celery.", "airflow.providers.cncf.kubernetes.",
                                "airflow.providers.edge3.")


class WarehouseNotConfigured(RuntimeError):
    """No REBALANCE_WAREHOUSE_URL where the embedded warehouse would be one per worker."""

    def __init__(self, executor: str):
        self.executor = executor
        super().__init__(
            f"REBALANCE_WAREHOUSE_URL is not set and Airflow runs the {executor}: every worker would start "
            "its own embedded PostgreSQL; point REBALANCE_WAREHOUSE_URL at the shared warehouse "
            "(e.g. postgresql://rebalance_etl:...@warehouse-host:5432/rebalance) in the environment of the "
            "scheduler, the api-server and every worker")


def airflow_executor_setting() -> str | None:
    """Airflow's ``[core] executor`` as this process sees it, cheaply; None where Airflow is not set up.

    In order: $AIRFLOW__CORE__EXECUTOR; Airflow's own ``conf`` when this process already loaded it
    (every Airflow component and task does); else, when Airflow is installed, the ``executor``
    line of its config file ($AIRFLOW_CONFIG, else $AIRFLOW_HOME/airflow.cfg, else
    ~/airflow/airflow.cfg), read as text: importing Airflow costs seconds and creates its home.
    """
    value = os.environ.get("AIRFLOW__CORE__EXECUTOR")
    if value:
        return value
    loaded = sys.modules.get("airflow.configuration")
    if loaded is not None and hasattr(loaded, "conf"):
        try:
            return loaded.conf.get("core", "executor", fallback=None) or None
        except Exception:  # a half-initialised configuration: fall back to the file
            pass
    if importlib.util.find_spec("airflow") is None:
        return None
    path = os.environ.get("AIRFLOW_CONFIG")
    if not path:
        path = os.path.join(os.path.expanduser(os.environ.get("AIRFLOW_HOME") or "~/airflow"), "airflow.cfg")
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read(path, encoding="utf-8")
    except (OSError, configparser.Error):
        return None
    return parser.get("core", "executor", fallback=None) or None


def distributed_executor(setting: str | None = None) -> str | None:
    """The distributed executor in Airflow's executor setting (``setting`` or this process's), else None.

    The setting may be a list (``LocalExecutor,CeleryExecutor``), hold aliases
    (``fast:my.module.Executor``), module paths or teams (``LocalExecutor;team_a=CeleryExecutor``):
    any distributed executor in it counts, since some task may run on it.
    """
    setting = airflow_executor_setting() if setting is None else setting
    for token in re.split(r"[,;=:\s]+", setting or ""):
        name = token.rsplit(".", 1)[-1]
        if name in DISTRIBUTED_EXECUTORS or token.startswith(DISTRIBUTED_EXECUTOR_MODULES):
            return name
    return None


def _folder(variable: str, default: str) -> Path:
    """The folder $<variable> names, else ``default`` under the Rebalance home."""
    value = os.environ.get(variable)
    return Path(value) if value else home() / default


def landing_dir() -> Path:
    return _folder("REBALANCE_LANDING_DIR", "landing")


def outbox_dir() -> Path:
    return _folder("REBALANCE_OUTBOX_DIR", "outbox")


def reports_dir() -> Path:
    return _folder("REBALANCE_REPORTS_DIR", "reports")


def pcf_dir() -> Path:
    return _folder("REBALANCE_PCF_DIR", "pcf")
