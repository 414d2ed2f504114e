"""A real Airflow CeleryExecutor cluster on this machine, for tests/test_celery.py.

``celery_cluster(home, project)`` is a context manager that runs, as subprocesses of the
venv's ``airflow``: ``db migrate``, then an api-server (on a free 127.0.0.1 port), a scheduler,
a dag-processor and TWO ``airflow celery worker`` processes (Celery node names ``w1@%h`` and
``w2@%h``), all sharing one fresh AIRFLOW_HOME, one jwt_secret and one execution API URL, as a
real deployment must. Airflow's metadata database is a fresh database on the PostgreSQL server
at 127.0.0.1:5432 (user ``postgres``, trust auth; psycopg2 and the asyncpg async driver), the
broker an empty Redis database at 127.0.0.1:6379, the result backend the metadata database. The
Rebalance warehouse is another fresh database on the same server: every worker must reach it
(an embedded warehouse per worker is what ``settings.WarehouseNotConfigured`` forbids).

It skips the test (``pytest.skip``) when Redis or PostgreSQL does not answer on 127.0.0.1, or
when the celery extra is not installed. On the way out every process is stopped (SIGTERM to
its process group, SIGKILL after a grace period) and the databases and Redis keys are dropped.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
USERS = {"admin": "admin"}
WORKERS = ("w1", "w2")
WORKER_CONCURRENCY = 2


class ClusterError(RuntimeError):
    """The cluster did not come up, or a run did not finish; the message has the logs' tails."""


@dataclass
class Component:
    name: str
    process: subprocess.Popen
    log: Path

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])


@dataclass
class CeleryCluster:
    base_url: str
    env: dict
    home: Path
    warehouse_url: str
    admin_url: str
    components: dict[str, Component] = field(default_factory=dict)
    dag_params: dict = field(default_factory=dict)
    _token: str | None = None

    # ------------------------------------------------------------------ REST API
    def token(self) -> str:
        if self._token is None:
            body = json.dumps({"username": "admin", "password": password("admin")}).encode()
            request = urllib.request.Request(f"{self.base_url}/auth/token", data=body,
                                             headers={"content-type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as response:
                self._token = json.load(response)["access_token"]
        return self._token

    def api(self, method: str, path: str, body: dict | None = None, ok=(200, 201)) -> dict:
        """Call Airflow's REST API (``/api/v2...``) as admin; the JSON answer."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method,
                                         headers={"content-type": "application/json",
                                                  "authorization": f"Bearer {self.token()}"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.load(response) if response.status != 204 else {}
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            if error.code in ok:
                return json.loads(detail or "{}")
            raise ClusterError(f"{method} {path} -> {error.code}: {detail[:2000]}") from None

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> dict:
        """The DAG's details once the dag-processor has parsed and stored it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                return self.api("GET", f"/api/v2/dags/{dag_id}/details")
            except ClusterError as error:
                if "-> 404" not in str(error):
                    raise
            time.sleep(2)
        raise ClusterError(f"DAG {dag_id} was not parsed in {timeout} s\n{self.logs()}")

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict) -> str:
        run = self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
        return run["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{_q(run_id)}")["state"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        found = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances?limit=1000")
        return found["task_instances"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 480) -> str:
        """Poll until the run succeeds or fails (bounded); its final state."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            state = self.run_state(dag_id, run_id)
            if state in ("success", "failed"):
                return state
            time.sleep(2)
        raise ClusterError(f"run {run_id} not finished after {timeout} s: "
                           f"{self.describe_run(dag_id, run_id)}\n{self.logs()}")

    def describe_run(self, dag_id: str, run_id: str) -> str:
        """Each task instance's state, try and worker, and the log tail of those that failed."""
        lines = []
        for ti in sorted(self.task_instances(dag_id, run_id), key=lambda t: (t["task_id"], t["map_index"])):
            lines.append(f"  {ti['task_id']}[{ti['map_index']}] {ti['state']} try {ti['try_number']} "
                         f"on {ti.get('hostname')} ({self.worker_of(ti['id'])})")
            if ti["state"] in ("failed", "up_for_retry", "upstream_failed") and ti["try_number"]:
                lines.append(self.task_log(dag_id, run_id, ti))
        return "\n".join(lines)

    def task_log(self, dag_id: str, run_id: str, ti: dict, lines: int = 30) -> str:
        try:
            found = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances/{ti['task_id']}"
                                    f"/logs/{ti['try_number']}?map_index={ti['map_index']}")
        except ClusterError as error:
            return f"    (log unavailable: {error})"
        text = []
        for entry in found.get("content") or []:
            if not isinstance(entry, dict):
                text.append(str(entry))
                continue
            text.append(str(entry.get("event", entry)))
            for error in entry.get("error_detail") or []:   # the exception, not only "Task failed"
                text.append(f"  {error.get('exc_type')}: {error.get('exc_value')}")
                text.extend(f"    at {f.get('filename')}:{f.get('lineno')} {f.get('name')}"
                            for f in (error.get("frames") or [])[-4:])
        return "\n".join("    | " + line for line in text[-lines:])

    # ------------------------------------------------------------------ workers
    def worker_of(self, ti_id: str) -> str | None:
        """Which Celery worker (w1, w2) executed the task instance, from the workers' own logs."""
        for name in WORKERS:
            component = self.components.get(f"worker-{name}")
            if component and ti_id in component.log.read_text(errors="replace"):
                return name
        return None

    def task_process(self, ti_id: str):
        """The running task's own process (the task runner the supervisor forked), or None."""
        import psutil

        title = f"airflow worker -- {ti_id}"
        for process in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if title in " ".join(process.info["cmdline"] or []):
                    return process
        return None

    def worker_owning(self, pid: int) -> str | None:
        """The worker (w1, w2) a process descends from (Celery pool child, task supervisor, task)."""
        import psutil

        leaders = {c.process.pid: name for name, c in self.components.items() if name.startswith("worker-")}
        with contextlib.suppress(psutil.Error):
            for ancestor in psutil.Process(pid).parents():
                if ancestor.pid in leaders:
                    return leaders[ancestor.pid].removeprefix("worker-")
        return None

    # ------------------------------------------------------------------ health
    def check_alive(self) -> None:
        dead = {name: c.process.returncode for name, c in self.components.items() if c.process.poll() is not None}
        if dead:
            raise ClusterError(f"cluster component(s) exited: {dead}\n{self.logs()}")

    def logs(self, lines: int = 40) -> str:
        return "\n".join(f"----- {name} ({c.log}) -----\n{c.tail(lines)}" for name, c in self.components.items())


def password(user: str) -> str:
    return f"{user}-celery-password"


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=2):
        return True
    return False


def require_services() -> None:
    """Skip unless Redis and PostgreSQL answer on 127.0.0.1 and the celery extra is installed."""
    try:
        import airflow.providers.celery  # noqa: F401
        import redis
    except ImportError as error:
        pytest.skip(f"the celery extra is not installed ({error}); pip install -e '.[airflow,celery]'")
    if not _answers(REDIS_HOST, REDIS_PORT):
        pytest.skip(f"no Redis answers at {REDIS_HOST}:{REDIS_PORT} (the Celery broker)")
    if not _answers(PG_HOST, PG_PORT):
        pytest.skip(f"no PostgreSQL answers at {PG_HOST}:{PG_PORT}")
    import redis

    try:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=5).ping()
    except redis.RedisError as error:
        pytest.skip(f"Redis at {REDIS_HOST}:{REDIS_PORT} does not answer PING: {error}")
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(server_url("postgres"))
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except sa.exc.SQLAlchemyError as error:
        pytest.skip(f"PostgreSQL at {PG_HOST}:{PG_PORT} refuses user {PG_USER}: {str(error).splitlines()[0]}")


def server_url(database: str, driver: str = "postgresql+psycopg2") -> str:
    return f"{driver}://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


@contextlib.contextmanager
def scratch_database(prefix: str):
    """A fresh database on 127.0.0.1:5432 (its name), dropped afterwards."""
    import sqlalchemy as sa

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server_url("postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@contextlib.contextmanager
def redis_database():
    """The number of an empty Redis database (keys flushed afterwards)."""
    import redis

    for number in range(15, 0, -1):
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number, socket_timeout=5)
        claim = f"rebalance-test-claim-{uuid.uuid4().hex}"
        if client.dbsize() == 0 and client.set(claim, "1", nx=True) and client.dbsize() == 1:
            try:
                yield number
            finally:
                client.flushdb()
                client.close()
            return
        client.close()
    pytest.skip(f"no empty Redis database on {REDIS_HOST}:{REDIS_PORT} for the broker")


def _start(name: str, args: list[str], env: dict, home: Path) -> Component:
    log = home / f"{name}.log"
    with log.open("w") as out:
        process = subprocess.Popen([str(BIN / "airflow"), *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                   cwd=home, start_new_session=True)
    return Component(name, process, log)


def _stop(components: list[Component], grace: float = 20) -> None:
    """SIGTERM every component's process group, wait, then SIGKILL what is left."""
    for component in components:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(component.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for component in components:
        with contextlib.suppress(subprocess.TimeoutExpired):
            component.process.wait(timeout=max(0.1, deadline - time.monotonic()))
    for component in components:
        # the group too: Celery's pool children and task processes outlive a killed leader
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(component.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            component.process.wait(timeout=10)


def _wait_until_up(cluster: CeleryCluster, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cluster.check_alive()
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{cluster.base_url}/api/v2/monitor/health",
                                                                   timeout=5) as response:
            if response.status == 200:
                break
        time.sleep(0.5)
    else:
        raise ClusterError(f"api-server did not answer in {timeout} s\n{cluster.logs()}")
    # each worker says "celery@wN... ready." once it consumes from the broker
    while time.monotonic() < deadline:
        cluster.check_alive()
        if all("ready." in cluster.components[f"worker-{n}"].log.read_text(errors="replace") for n in WORKERS):
            return
        time.sleep(0.5)
    raise ClusterError(f"the Celery workers were not ready in {timeout} s\n{cluster.logs()}")


@contextlib.contextmanager
def celery_cluster(home: Path, project: Path, extra_env: dict | None = None):
    """Yield a running CeleryCluster (see the module's docstring); stop and drop it afterwards."""
    require_services()
    home.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        metadata_db = stack.enter_context(scratch_database("airflow_celery"))
        warehouse_db = stack.enter_context(scratch_database("rebalance_celery"))
        broker_db = stack.enter_context(redis_database())
        port = free_port()
        passwords = home / "passwords.json"
        passwords.write_text(json.dumps({user: password(user) for user in USERS}))
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(home / "airflow"),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(project / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": str(len(WORKERS) * WORKER_CONCURRENCY),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in USERS.items()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": server_url(metadata_db),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": server_url(metadata_db, "postgresql+asyncpg"),
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{broker_db}",
            "AIRFLOW__CELERY__RESULT_BACKEND": server_url(metadata_db, "db+postgresql+psycopg2"),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
            # one secret and one execution API for every process: task JWTs must verify everywhere
            "AIRFLOW__API_AUTH__JWT_SECRET": f"celery-test-jwt-{uuid.uuid4().hex}",
            "AIRFLOW__API__SECRET_KEY": f"celery-test-secret-{uuid.uuid4().hex}",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            # only the runs the tests trigger: no scheduled run of "the latest trading day"
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            "GX_ANALYTICS_ENABLED": "False",
            "REBALANCE_HOME": str(home / "rebalance-home"),
            "REBALANCE_OUTBOX_DIR": str(home / "outbox"),
            "REBALANCE_WAREHOUSE_URL": server_url(warehouse_db),
            **(extra_env or {}),
        }
        env.pop("AIRFLOW_CONFIG", None)
        migrated = subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True,
                                  timeout=600, cwd=home)
        if migrated.returncode != 0:
            raise ClusterError(f"airflow db migrate failed:\n{(migrated.stdout + migrated.stderr)[-4000:]}")
        cluster = CeleryCluster(base_url=f"http://127.0.0.1:{port}", env=env, home=home,
                                warehouse_url=server_url(warehouse_db), admin_url=server_url("postgres"))
        started = []
        stack.callback(_stop, started)
        for name, args, own_env in [
            ("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], {}),
            ("scheduler", ["scheduler"], {}),
            ("dag-processor", ["dag-processor"], {}),
            *[(f"worker-{n}", ["celery", "worker", "-H", f"{n}@%h", "-c", str(WORKER_CONCURRENCY),
                               "--without-gossip", "--without-mingle"],
               # two workers on one host: a log server port each
               {"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())}) for n in WORKERS],
        ]:
            component = _start(name, args, {**env, **own_env}, home)
            started.append(component)
            cluster.components[name] = component
        _wait_until_up(cluster)
        yield cluster
