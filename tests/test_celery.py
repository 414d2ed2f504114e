"""The nightly DAG on a real CeleryExecutor cluster (two workers) against a shared warehouse.

One cluster for the module (tests/celery_cluster.py: api-server, scheduler, dag-processor and
two ``airflow celery worker`` processes on PostgreSQL 127.0.0.1:5432 and Redis 127.0.0.1:6379;
skipped when those do not answer). A night of a small sample landing folder runs through it
and must write exactly what a single-process run (``steps.run_nightly``) of the same date
writes; then the same date runs again while a shard task's process is killed midway: the previous
night's rows stay as they were until the retried run publishes, and the result is the same.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import signal
import time
import warnings

import pandas as pd
import pytest
import sqlalchemy as sa
from celery_cluster import (
    WORKERS,
    ClusterError,
    celery_cluster,
    require_services,
    scratch_database,
    server_url,
)
from conftest import PROJECT

from rebalance_pipeline import steps, warehouse

pytestmark = [pytest.mark.airflow, pytest.mark.celery]

DAG_ID = "rebalance_nightly"
AS_OF = dt.date(2014, 1, 2)
SHARDS = 4
RUN_TIMEOUT = 420
# What differs between two runs of the same night by construction, not by result (which run,
# when, which shard of funds computed the row).
IGNORED = {"run_id", "shard", "computed_at", "created_at", "published_at", "first_published_at", "updated_at"}
TABLES = {
    "fund_summary": ("SELECT * FROM rebalance.fund_summary WHERE as_of_date = :d", ["fund_id"]),
    "fund_drift": ("SELECT * FROM rebalance.fund_drift WHERE as_of_date = :d", ["fund_id", "security_id"]),
    "proposal": ("SELECT * FROM rebalance.proposal WHERE as_of_date = :d", ["proposal_id"]),
    "proposal_trade": ("SELECT t.* FROM rebalance.proposal_trade t JOIN rebalance.proposal p USING (proposal_id) "
                       "WHERE p.as_of_date = :d", ["proposal_id", "security_id"]),
}


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    from rebalance_pipeline.sample import generate

    root = tmp_path_factory.mktemp("celery-landing")
    dates = generate(root, AS_OF, days=1, funds=24, holdings=8)
    assert dates == [AS_OF]
    return root


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, landing):
    require_services()
    with celery_cluster(tmp_path_factory.mktemp("celery-cluster"), PROJECT,
                        extra_env={"REBALANCE_LANDING_DIR": str(landing)}) as running:
        details = running.wait_for_dag(DAG_ID)
        running.unpause(DAG_ID)
        running.dag_params = details.get("params") or {}
        yield running


@pytest.fixture(scope="module")
def expected(landing):
    """The same night by one process (frames in memory) into a database of its own."""
    require_services()
    with scratch_database("rebalance_single") as name:
        engine = warehouse.get_engine(server_url(name))
        warehouse.migrate(engine)
        steps.run_nightly(AS_OF, landing, engine)
        frames = night_rows(engine)
        engine.dispose()
        yield frames


@pytest.fixture(scope="module")
def celery_night(cluster):
    """The first Celery run of the date: its id and task instances."""
    run_id = cluster.trigger(DAG_ID, night_conf(cluster))
    state = cluster.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT)
    if state != "success":
        raise ClusterError(f"run {run_id} {state}:\n{cluster.describe_run(DAG_ID, run_id)}\n{cluster.logs()}")
    return run_id, cluster.task_instances(DAG_ID, run_id)


def night_conf(cluster) -> dict:
    """as_of_date, and ``shards`` once the DAG declares that param (an undeclared one is not sent)."""
    conf = {"as_of_date": AS_OF.isoformat()}
    if "shards" in cluster.dag_params:
        conf["shards"] = SHARDS
    return conf


def night_rows(engine, ignore: set[str] = IGNORED) -> dict[str, pd.DataFrame]:
    """The date's rows of the four result tables, sorted, without run ids and timestamps."""
    frames = {}
    with engine.connect() as conn:
        for table, (sql, key) in TABLES.items():
            frame = warehouse.read_frame(conn, sql, {"d": AS_OF})
            frame = frame.drop(columns=[c for c in frame.columns if c in ignore])
            frames[table] = frame.sort_values(key, kind="stable").reset_index(drop=True)
    return frames


def assert_same_night(actual: dict[str, pd.DataFrame], expected: dict[str, pd.DataFrame]) -> None:
    for table, want in expected.items():
        got = actual[table]
        assert len(want) > 0 or table == "proposal_trade", f"{table}: the single-process run wrote nothing"
        assert list(got.columns) == list(want.columns), table
        assert len(got) == len(want), f"{table}: {len(got)} rows under Celery, {len(want)} in one process"
        pd.testing.assert_frame_equal(_comparable(got), _comparable(want), check_dtype=False, rtol=1e-9,
                                      obj=table)


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """numeric (Decimal) columns as floats: sharded sums may differ in the last digit only."""
    out = frame.copy()
    for column in out.columns:
        values = out[column].dropna()
        if len(values) and all(type(v).__name__ == "Decimal" for v in values):
            out[column] = pd.to_numeric(out[column].astype(object), errors="coerce").astype(float)
    return out


def test_nightly_on_two_celery_workers_writes_what_one_process_writes(cluster, celery_night, expected):
    run_id, task_instances = celery_night
    engine = warehouse.get_engine(cluster.warehouse_url)
    actual = night_rows(engine)
    assert_same_night(actual, expected)
    with engine.connect() as conn:
        run_ids = conn.execute(sa.text("SELECT DISTINCT run_id FROM rebalance.fund_summary WHERE as_of_date = :d"),
                               {"d": AS_OF}).scalars().all()
    assert run_ids == [f"airflow-{run_id}"]

    ran = [ti for ti in task_instances if ti["state"] == "success"]
    assert ran and all(ti["state"] in ("success", "skipped") for ti in task_instances), cluster.describe_run(
        DAG_ID, run_id)
    workers = {ti["task_id"] + f"[{ti['map_index']}]": cluster.worker_of(ti["id"]) for ti in ran}
    assert set(workers.values()) <= set(WORKERS), f"tasks not run by a Celery worker of ours: {workers}"
    assert all(ti.get("hostname") for ti in ran)
    print(f"task instances per Celery worker: {workers}")
    if set(workers.values()) != set(WORKERS):   # likely, not guaranteed: Celery hands tasks to whoever asks
        warnings.warn(f"every task of the run went to one worker: {workers}", stacklevel=1)


def test_a_shard_killed_midway_leaves_the_previous_night_then_the_retry_publishes(cluster, celery_night,
                                                                                 expected):
    """Kill -9 the process of a shard task in the middle of writing its leaves, then retry it.

    Deterministic midway: the test holds an EXCLUSIVE lock on ``rebalance.proposal_stage``,
    which a shard's transaction touches after it has created its leaf tables and COPYed its
    rows into them, so the shard tasks are caught inside their transactions, waiting. One of
    them (titled ``airflow worker -- <ti id>`` by Airflow) is SIGKILLed; the worker's
    supervisor reports the failure, the task goes up for retry. The rows of the previous run of
    the date must be untouched (run id included) while the run is not done, and the killed
    shard must have left no leaf behind; the retry is then started at once by clearing the task
    through the REST API and the run must succeed with the same rows as a single-process run.
    """
    previous_run_id, _ = celery_night
    engine = warehouse.get_engine(cluster.warehouse_url)
    before = night_rows(engine, ignore=set())
    assert set(before["fund_summary"]["run_id"]) == {f"airflow-{previous_run_id}"}

    holder = engine.connect()
    held = holder.begin()
    try:
        holder.execute(sa.text("LOCK TABLE rebalance.proposal_stage IN EXCLUSIVE MODE"))
        run_id = cluster.trigger(DAG_ID, night_conf(cluster))
        victim = _wait_for_shard_waiting_on_the_stage(cluster, engine, run_id)
        process = cluster.task_process(victim["id"])
        assert process is not None, f"no process titled 'airflow worker -- {victim['id']}'"
        owner = cluster.worker_owning(process.pid)
        assert owner in WORKERS, f"the task's process {process.pid} belongs to no worker of ours"
        print(f"killing {victim['task_id']}[{victim['map_index']}] try {victim['try_number']}: "
              f"process {process.pid} of worker {owner}")
        process.send_signal(signal.SIGKILL)
        killed = _wait_for_ti_state(cluster, run_id, victim, {"up_for_retry", "failed"}, timeout=90)
        # midway: the night is not done, and the previous night's rows are exactly as they were
        assert cluster.run_state(DAG_ID, run_id) in ("running", "queued")
        assert_frames_identical(night_rows(engine, ignore=set()), before)
    finally:
        held.rollback()
        holder.close()
    with engine.connect() as conn:   # the killed shard's transaction left nothing (its leaves rolled back)
        sealed = conn.execute(sa.text(
            "SELECT count(*) FROM rebalance.night_shard WHERE run_id = :r AND shard = :s"),
            {"r": f"airflow-{run_id}", "s": victim["map_index"]}).scalar()
    assert sealed == 0

    assert killed["state"] == "up_for_retry", f"{victim['task_id']} has retries: {killed}"
    cluster.api("POST", f"/api/v2/dags/{DAG_ID}/clearTaskInstances", {
        "dry_run": False, "dag_run_id": run_id, "task_ids": [[victim["task_id"], victim["map_index"]]],
        "only_failed": False, "reset_dag_runs": True})
    state = cluster.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT)
    assert state == "success", f"{cluster.describe_run(DAG_ID, run_id)}\n{cluster.logs()}"
    retried = next(ti for ti in cluster.task_instances(DAG_ID, run_id)
                   if (ti["task_id"], ti["map_index"]) == (victim["task_id"], victim["map_index"]))
    assert retried["try_number"] > victim["try_number"] and retried["state"] == "success"
    assert_same_night(night_rows(engine), expected)
    with engine.connect() as conn:
        run_ids = conn.execute(sa.text("SELECT DISTINCT run_id FROM rebalance.fund_summary WHERE as_of_date = :d"),
                               {"d": AS_OF}).scalars().all()
        orphans = conn.execute(sa.text(
            "SELECT count(*) FROM rebalance.proposal_trade t LEFT JOIN rebalance.proposal p USING (proposal_id) "
            "WHERE p.proposal_id IS NULL")).scalar()
        leftovers = conn.execute(sa.text("SELECT count(*) FROM rebalance.night_leaf")).scalar()
    assert run_ids == [f"airflow-{run_id}"] and orphans == 0 and leftovers == 0


def assert_frames_identical(actual: dict[str, pd.DataFrame], expected: dict[str, pd.DataFrame]) -> None:
    for table, want in expected.items():
        pd.testing.assert_frame_equal(actual[table], want, obj=table)


def _wait_for_shard_waiting_on_the_stage(cluster, engine, run_id: str, timeout: float = 240) -> dict:
    """A running decide_shard task instance once a shard's session waits for proposal_stage."""
    database = engine.url.database
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cluster.check_alive()
        with engine.connect() as conn:
            waiting = conn.execute(sa.text(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE a.datname = :db AND l.locktype = 'relation' AND NOT l.granted "
                "AND l.relation = 'rebalance.proposal_stage'::regclass"), {"db": database}).scalar()
        running = [ti for ti in cluster.task_instances(DAG_ID, run_id)
                   if ti["state"] == "running" and ti["task_id"] == "decide_shard"]
        if waiting and running:
            return sorted(running, key=lambda ti: ti["map_index"])[0]
        state = cluster.run_state(DAG_ID, run_id)
        if state in ("success", "failed"):
            raise ClusterError(f"run {run_id} ended ({state}) without a shard waiting:\n"
                               f"{cluster.describe_run(DAG_ID, run_id)}")
        time.sleep(1)
    raise ClusterError(f"no shard of {run_id} waited for proposal_stage in {timeout} s:\n"
                       f"{cluster.describe_run(DAG_ID, run_id)}\n{cluster.logs()}")


def _wait_for_ti_state(cluster, run_id: str, ti: dict, states: set[str], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    current = ti
    while time.monotonic() < deadline:
        with contextlib.suppress(StopIteration):
            current = next(t for t in cluster.task_instances(DAG_ID, run_id)
                           if (t["task_id"], t["map_index"]) == (ti["task_id"], ti["map_index"]))
            if current["state"] in states:
                return current
        time.sleep(1)
    raise ClusterError(f"{ti['task_id']} still {current['state']} {timeout} s after its process was killed:\n"
                       f"{cluster.describe_run(DAG_ID, run_id)}\n{cluster.logs()}")
