"""docker-compose.yml is a valid Compose file with the whole stack (checked by docker-compose)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import PROJECT

COMPOSE = shutil.which("docker-compose")


@pytest.mark.skipif(COMPOSE is None, reason="Debian's docker-compose is not installed (.ci/run installs it)")
def test_compose_file_is_accepted_and_has_the_full_stack():
    checked = subprocess.run([COMPOSE, "config", "-q"], cwd=PROJECT, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    services = subprocess.run([COMPOSE, "config", "--services"], cwd=PROJECT, capture_output=True, text=True)
    assert set(services.stdout.split()) >= {
        "airflow-db", "warehouse-db", "airflow-init", "airflow-apiserver", "airflow-scheduler",
        "airflow-dag-processor", "airflow-triggerer"}
