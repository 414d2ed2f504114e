"""A real Airflow api-server with the Rebalance plugin, for the review view's tests.

Started once per test session in its own AIRFLOW_HOME (SQLite metadata database), with the
simple auth manager and three users: ``ops`` (role User: may decide), ``viewer`` (role
Viewer: may only look) and ``admin``. Tokens come from Airflow's own ``POST /auth/token``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
USERS = {"ops": "user", "viewer": "viewer", "admin": "admin"}


@dataclass
class ReviewServer:
    base_url: str
    env: dict
    log: Path

    def token(self, user: str) -> str:
        body = json.dumps({"username": user, "password": password(user)}).encode()
        request = urllib.request.Request(f"{self.base_url}/auth/token", data=body,
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)["access_token"]


def password(user: str) -> str:
    return f"{user}-password"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(home: Path, project: Path, database_url: str):
    """Yield a running api-server; stop it afterwards."""
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({user: password(user) for user in USERS}))
    port = _free_port()
    env = {**os.environ,
           "AIRFLOW_HOME": str(home / "airflow"),
           "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(project / "plugins"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in USERS.items()),
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
           "AIRFLOW__API__SECRET_KEY": "test-secret-key",
           "AIRFLOW__API_AUTH__JWT_SECRET": "test-jwt-secret",
           "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
           "GX_ANALYTICS_ENABLED": "False",
           "REBALANCE_WAREHOUSE_URL": database_url}
    migrated = subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    log = home / "api-server.log"
    with log.open("w") as out:
        process = subprocess.Popen([str(BIN / "airflow"), "api-server", "--host", "127.0.0.1", "--port", str(port),
                                    "--workers", "1"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = ReviewServer(base_url=f"http://127.0.0.1:{port}", env=env, log=log)
    try:
        _wait_until_up(server, process)
        yield server
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def _wait_until_up(server: ReviewServer, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"api-server exited with {process.returncode}:\n{server.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{server.base_url}/api/v2/monitor/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"api-server did not answer in {timeout} s:\n{server.log.read_text()[-3000:]}")
