"""settings: which Airflow executor runs here, and the guard against a warehouse per worker."""

from __future__ import annotations

import sys
import types

import pytest

from rebalance_pipeline import settings, warehouse


@pytest.fixture
def no_airflow_config(monkeypatch, tmp_path):
    """No executor in the environment, no loaded Airflow configuration, an empty AIRFLOW_HOME."""
    for name in ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW_CONFIG", "REBALANCE_WAREHOUSE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "airflow.configuration", raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow-home"))
    return tmp_path


@pytest.mark.parametrize(("setting", "expected"), [
    ("CeleryExecutor", "CeleryExecutor"),
    ("KubernetesExecutor", "KubernetesExecutor"),
    ("CeleryKubernetesExecutor", "CeleryKubernetesExecutor"),
    ("EdgeExecutor", "EdgeExecutor"),
    ("LocalExecutor,CeleryExecutor", "CeleryExecutor"),
    ("LocalExecutor, KubernetesExecutor", "KubernetesExecutor"),
    ("airflow.providers.celery.executors.celery_executor.CeleryExecutor", "CeleryExecutor"),
    ("LocalExecutor,fast:airflow.providers.cncf.kubernetes.executors.kubernetes_executor.KubernetesExecutor",
     "KubernetesExecutor"),
    ("LocalExecutor;team_a=CeleryExecutor", "CeleryExecutor"),
    ("airflow.providers.celery.executors.celery_executor.MyCelery", "MyCelery"),
    ("LocalExecutor", None),
    ("SequentialExecutor", None),
    ("airflow.executors.local_executor.LocalExecutor", None),
    ("LocalExecutor,mine:my_company.executors.BatchExecutor", None),
    ("", None),
])
def test_distributed_executor_reads_lists_aliases_paths_and_teams(setting, expected):
    assert settings.distributed_executor(setting) == expected


def test_the_environment_variable_decides_first(no_airflow_config, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    monkeypatch.setitem(sys.modules, "airflow.configuration", _fake_conf("LocalExecutor"))
    assert settings.airflow_executor_setting() == "CeleryExecutor"
    assert settings.distributed_executor() == "CeleryExecutor"
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    assert settings.distributed_executor() is None


def test_a_loaded_airflow_configuration_is_asked_when_the_variable_is_unset(no_airflow_config, monkeypatch):
    monkeypatch.setitem(sys.modules, "airflow.configuration", _fake_conf("LocalExecutor,KubernetesExecutor"))
    assert settings.distributed_executor() == "KubernetesExecutor"


def test_otherwise_the_config_file_is_read_as_text_without_importing_airflow(no_airflow_config, monkeypatch):
    if not _airflow_installed():
        pytest.skip("Airflow is not installed: no config file is read")
    home = no_airflow_config / "airflow-home"
    home.mkdir()
    (home / "airflow.cfg").write_text("[core]\nexecutor = CeleryExecutor\ndags_folder = %(x)s/dags\n")
    assert settings.distributed_executor() == "CeleryExecutor"
    assert "airflow.configuration" not in sys.modules
    other = no_airflow_config / "elsewhere.cfg"
    other.write_text("[core]\nexecutor = LocalExecutor\n")
    monkeypatch.setenv("AIRFLOW_CONFIG", str(other))
    assert settings.distributed_executor() is None
    monkeypatch.setenv("AIRFLOW_CONFIG", str(no_airflow_config / "missing.cfg"))
    assert settings.airflow_executor_setting() is None


def test_get_engine_refuses_the_embedded_warehouse_under_celery(no_airflow_config, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    started = []
    monkeypatch.setattr("rebalance_pipeline.embedded.start", lambda *a, **k: started.append(1) or "postgresql://x/y")
    with pytest.raises(settings.WarehouseNotConfigured) as refused:
        warehouse.get_engine()
    assert isinstance(refused.value, RuntimeError) and started == []
    message = str(refused.value)
    assert "REBALANCE_WAREHOUSE_URL is not set and Airflow runs the CeleryExecutor" in message
    assert "every worker would start its own embedded PostgreSQL" in message
    assert "point REBALANCE_WAREHOUSE_URL at the shared warehouse" in message


def test_get_engine_uses_the_configured_warehouse_under_celery(no_airflow_config, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "KubernetesExecutor")
    monkeypatch.setenv("REBALANCE_WAREHOUSE_URL", "postgresql://rebalance@warehouse-host:5432/rebalance")
    engine = warehouse.get_engine()   # no connection is made until it is used
    assert engine.url.host == "warehouse-host" and engine.url.drivername == "postgresql+psycopg2"
    assert warehouse.get_engine("postgresql://rebalance@other-host/rebalance").url.host == "other-host"


@pytest.mark.parametrize("executor", [None, "LocalExecutor"])
def test_the_embedded_default_stays_for_the_cli_demo_and_local_executor(no_airflow_config, monkeypatch,
                                                                           executor):
    if executor:
        monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", executor)
    started = []
    monkeypatch.setattr("rebalance_pipeline.embedded.start",
                        lambda *a, **k: started.append(1) or "postgresql://me@/rebalance?host=/tmp/sock")
    engine = warehouse.get_engine()
    assert started == [1] and engine.url.query["host"] == "/tmp/sock"


def _fake_conf(executor: str) -> types.ModuleType:
    module = types.ModuleType("airflow.configuration")

    class Conf:
        def get(self, section, key, fallback=None):
            return executor if (section, key) == ("core", "executor") else fallback

    module.conf = Conf()
    return module


def _airflow_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("airflow") is not None


def test_the_cli_refuses_to_start_a_worker_local_warehouse(monkeypatch):
    """Under a distributed executor without REBALANCE_WAREHOUSE_URL the command says so (exit 3)."""
    from typer.testing import CliRunner

    from rebalance_pipeline.cli import app

    monkeypatch.delenv("REBALANCE_WAREHOUSE_URL", raising=False)
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    result = CliRunner().invoke(app, ["proposals"])
    assert result.exit_code == 3
    assert "REBALANCE_WAREHOUSE_URL" in result.output
