"""docker-compose.yml is a valid Compose file with the whole stack (checked by docker-compose)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml
from conftest import PROJECT

COMPOSE = shutil.which("docker-compose")
needs_compose = pytest.mark.skipif(COMPOSE is None,
                                   reason="Debian's docker-compose is not installed (.ci/run installs it)")
AIRFLOW_SERVICES = {"airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker", "flower"}


@pytest.fixture(scope="module")
def compose():
    """The resolved Compose file, flower profile included, as docker-compose itself reads it."""
    resolved = subprocess.run([COMPOSE, "--profile", "flower", "config"], cwd=PROJECT, capture_output=True,
                              text=True, env={"PATH": "/usr/bin:/bin"})   # the file's defaults, not this shell's
    assert resolved.returncode == 0, resolved.stderr
    return yaml.safe_load(resolved.stdout)


@needs_compose
def test_compose_file_is_accepted_and_has_the_full_stack():
    checked = subprocess.run([COMPOSE, "config", "-q"], cwd=PROJECT, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    services = subprocess.run([COMPOSE, "config", "--services"], cwd=PROJECT, capture_output=True, text=True)
    assert set(services.stdout.split()) >= {
        "airflow-db", "warehouse-db", "redis", "airflow-init", "airflow-apiserver", "airflow-scheduler",
        "airflow-dag-processor", "airflow-triggerer", "airflow-worker"}


@needs_compose
def test_every_airflow_process_runs_celery_with_the_same_broker_secret_and_execution_api(compose):
    services = compose["services"]
    assert AIRFLOW_SERVICES <= set(services)
    envs = {name: services[name]["environment"] for name in AIRFLOW_SERVICES}
    for name, env in envs.items():
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://:@redis:6379/0", name
        # psycopg2 spelled out: SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3 (not installed)
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://"), name
        assert "@airflow-db:5432/airflow" in env["AIRFLOW__CELERY__RESULT_BACKEND"], name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://"), name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"].startswith("postgresql+asyncpg://"), name
        # the workers must reach the shared warehouse, never an embedded one of their own
        assert "@warehouse-db:5432/" in env["REBALANCE_WAREHOUSE_URL"], name
    # one secret and one execution API URL for all: a worker's task JWT must verify on the api-server
    assert len({env["AIRFLOW__API_AUTH__JWT_SECRET"] for env in envs.values()}) == 1
    assert len({env["AIRFLOW__API__SECRET_KEY"] for env in envs.values()}) == 1
    assert {env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] for env in envs.values()} == {
        "http://airflow-apiserver:8080/execution/"}
    assert envs["airflow-worker"]["DUMB_INIT_SETSID"] == "0"   # warm shutdown of Celery


@needs_compose
def test_worker_redis_and_flower_are_wired_like_airflows_own_compose(compose):
    services = compose["services"]
    worker, redis, flower = services["airflow-worker"], services["redis"], services["flower"]
    assert worker["command"] in ("celery worker", ["celery", "worker"])
    ping = " ".join(worker["healthcheck"]["test"])
    assert "celery --app airflow.providers.celery.executors.celery_executor.app inspect ping" in ping
    assert "celery@$${HOSTNAME}" in ping or "celery@${HOSTNAME}" in ping
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert worker["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"
    assert worker["depends_on"]["warehouse-db"]["condition"] == "service_healthy"
    assert worker["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert "/opt/airflow/logs" in " ".join(str(v) for v in worker["volumes"])
    assert redis["image"].startswith("redis:")
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert services["airflow-scheduler"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert flower["command"] in ("celery flower", ["celery", "flower"])
    assert flower["profiles"] == ["flower"]
    assert "profiles" not in worker and "profiles" not in redis
