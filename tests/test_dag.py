"""The DAGs through a real Airflow: import and `airflow dags test` on a real warehouse.

(The Airflow 3 lint of dags/ and plugins/, ruff's AIR3 rules, runs in `make lint`.)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import PROJECT, build_once, copy_of, small_landing

pytestmark = pytest.mark.airflow
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory, database_url):
    home = tmp_path_factory.mktemp("airflow-home")
    env = {**os.environ,
           "AIRFLOW_HOME": str(home),
           "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "GX_ANALYTICS_ENABLED": "False",
           "REBALANCE_WAREHOUSE_URL": database_url}
    migrated = subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    return env


def test_dags_import_cleanly_with_the_promised_settings(airflow_env):
    script = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag()
dag = bag.dags["rebalance_nightly"]
print(json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "max_active_runs": dag.max_active_runs,
    "timezone": str(dag.timetable.timezone),
    "tasks": [t.task_id for t in dag.topological_sort()],
    "retries": {t.task_id: t.retries for t in dag.tasks},
    "outlets": [o.name for o in dag.get_task("publish").outlets],
    "export_after": sorted(dag.get_task("export_approved_orders").upstream_task_ids),
    "pcf_after": sorted(dag.get_task("write_pcf").upstream_task_ids),
}))
"""
    out = subprocess.run([sys.executable, "-c", script], env=airflow_env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["errors"] == {}
    assert info["max_active_runs"] == 1
    assert info["timezone"] == "America/New_York"
    assert info["tasks"][:5] == ["resolve_business_date", "ingest", "validate_shard", "decide_shard", "publish"]
    assert set(info["tasks"][5:]) == {"export_approved_orders", "write_pcf"}
    assert info["export_after"] == ["publish", "resolve_business_date"]
    assert info["pcf_after"] == ["publish", "resolve_business_date"]
    assert info["retries"]["validate_shard"] == 0 and info["retries"]["ingest"] == 0
    assert info["retries"]["decide_shard"] == 1
    assert info["outlets"] == ["rebalance_proposals"]


def _dags_test(env, landing, date: str):
    return subprocess.run([str(BIN / "airflow"), "dags", "test", "rebalance_nightly", date],
                          env={**env, "REBALANCE_LANDING_DIR": str(landing)}, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def nightly_run(airflow_env, warehouses, tmp_path_factory):
    """`airflow dags test rebalance_nightly 2014-01-03` once for the module (the test of the
    night and the test of the report that follows it both start from it): the three
    hand-sized funds, and a proposal approved the day before and not exported yet, which
    the run's export sends. Its result is the process's and the outbox."""
    def build(engine, landing):
        small_landing(landing, dt.date(2014, 1, 3))
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO rebalance.proposal (proposal_id, as_of_date, fund_id, status, trigger, nav, turnover,"
                " trade_count, run_id, reviewed_by, reviewed_at) VALUES ('F9-20140102-x', '2014-01-02', 'F9',"
                " 'approved', 'threshold', 1000, 0.1, 1, 'r', 'ops.alice', now())"))
            conn.execute(sa.text(
                "INSERT INTO rebalance.proposal_trade (as_of_date, proposal_id, security_id, side, quantity, price,"
                " currency, notional, reason) VALUES ('2014-01-02', 'F9-20140102-x', 'EQ', 'SELL', 1, 100, 'USD',"
                " 100, 'band_breach')"))
        outbox = landing.parent / "outbox"
        result = _dags_test({**airflow_env, "REBALANCE_OUTBOX_DIR": str(outbox),
                             "REBALANCE_WAREHOUSE_URL": engine.url.render_as_string(hide_password=False)},
                            landing, "2014-01-03")
        return result, outbox

    yield from build_once(warehouses, tmp_path_factory, build)


def test_dags_test_processes_the_given_business_date(nightly_run, warehouses, database_url, monkeypatch, landing):
    engine = copy_of(nightly_run, warehouses, database_url, monkeypatch, landing)
    result, outbox = nightly_run.result
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT as_of_date, fund_id, status, run_id FROM rebalance.fund_summary "
                                    "ORDER BY fund_id")).all()
        artifacts = conn.execute(sa.text("SELECT count(*) FROM rebalance.run_artifact")).scalar()
        proposal = conn.execute(sa.text("SELECT fund_id, status FROM rebalance.proposal WHERE fund_id <> 'F9'")).all()
        exports = conn.execute(sa.text("SELECT proposal_id, file_name, order_count, run_id "
                                       "FROM rebalance.order_export")).all()
    assert [(e.proposal_id, e.file_name, e.order_count) for e in exports] == [
        ("F9-20140102-x", "2014-01-02/orders_F9_F9-20140102-x.csv", 1)]
    assert exports[0].run_id.startswith("airflow-")
    assert (outbox / exports[0].file_name).read_text().splitlines()[1].startswith("F9,EQ,SELL,1,MARKET,,DAY,USD,")
    assert {r.as_of_date for r in rows} == {dt.date(2014, 1, 3)}
    assert [(r.fund_id, r.status) for r in rows] == [("F1", "proposed"), ("F2", "in_band"), ("F3", "in_band")]
    assert all(r.run_id.startswith("airflow-") for r in rows)
    assert artifacts == 0 and [tuple(p) for p in proposal] == [("F1", "pending_review")]


def test_dags_test_fails_on_a_structural_fault_with_file_row_and_column(airflow_env, engine, landing):
    folder = small_landing(landing, dt.date(2014, 1, 3))
    (folder / "cash.csv").write_text("as_of_date,fund_id,currency,amount\n2014-01-03,F1,USD\n")
    result = _dags_test(airflow_env, landing, "2014-01-03")
    assert result.returncode != 0
    assert "cash.csv, row 2, column 'amount'" in result.stdout + result.stderr
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM rebalance.fund_summary")).scalar() == 0


def test_trading_day_timetable_skips_weekends_and_exchange_holidays(airflow_env):
    script = """
import datetime as dt, json, sys
sys.path.insert(0, "plugins")
from airflow.timetables.base import DataInterval, TimeRestriction
from rebalance_timetable import TradingDayTimetable
tt = TradingDayTimetable("18:30", "America/New_York", "XNYS")
out = {}
for last in ["2014-01-17", "2014-04-17", "2014-11-26", "2014-07-02"]:
    due = tt.run_time(dt.date.fromisoformat(last))
    info = tt.next_dagrun_info(last_automated_data_interval=DataInterval.exact(due),
                               restriction=TimeRestriction(earliest=None, latest=None, catchup=True))
    out[last] = info.run_after.in_timezone("America/New_York").isoformat()
first = tt.next_dagrun_info(last_automated_data_interval=None, restriction=TimeRestriction(
    earliest=tt.run_time(dt.date(2014, 1, 1)) - dt.timedelta(hours=20), latest=None, catchup=True))
out["first"] = first.run_after.in_timezone("America/New_York").isoformat()
out["roundtrip"] = TradingDayTimetable.deserialize(tt.serialize()) == tt
print(json.dumps(out))
"""
    result = subprocess.run([sys.executable, "-c", script], env=airflow_env, cwd=PROJECT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["2014-01-17"] == "2014-01-21T18:30:00-05:00"   # Martin Luther King Day on Monday the 20th
    assert out["2014-04-17"] == "2014-04-21T18:30:00-04:00"   # Good Friday, then the weekend
    assert out["2014-11-26"] == "2014-11-28T18:30:00-05:00"   # Thanksgiving on the 27th
    assert out["2014-07-02"] == "2014-07-03T18:30:00-04:00"   # early close still a session; 4 July is not
    assert out["first"] == "2014-01-02T18:30:00-05:00"        # 1 January is a holiday
    assert out["roundtrip"] is True


def test_reporting_dag_imports_on_the_nightly_asset(airflow_env):
    script = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag()
dag, nightly = bag.dags["rebalance_reporting"], bag.dags["rebalance_nightly"]
outlet = nightly.get_task("publish").outlets[0]
print(json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "assets": [[a.name, a.uri] for a in getattr(dag.timetable.asset_condition, "objects",
                                                [dag.timetable.asset_condition])],
    "outlet": [outlet.name, outlet.uri],
    "max_active_runs": dag.max_active_runs,
    "catchup": dag.catchup,
    "start_tz": str(dag.timezone),
    "tasks": [t.task_id for t in dag.topological_sort()],
    "mapped": [t.task_id for t in dag.tasks if type(t).__name__.endswith("MappedOperator")],
    "params": sorted(dag.params.keys()),
    "doc": bool(dag.doc_md),
}))
"""
    out = subprocess.run([sys.executable, "-c", script], env=airflow_env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["errors"] == {}
    assert info["assets"] == [info["outlet"]] == [["rebalance_proposals", "rebalance://warehouse/rebalance/proposal"]]
    assert (info["max_active_runs"], info["catchup"], info["doc"]) == (1, False, True)
    assert info["start_tz"] == "America/New_York"
    assert info["tasks"] == ["resolve_report_dates", "build_data_docs", "build_drift_report"]
    # one build per date (dynamic task mapping)
    assert sorted(info["mapped"]) == ["build_data_docs", "build_drift_report"]
    assert info["params"] == ["as_of_date", "history_days"]


def test_reporting_dag_writes_the_report_of_the_published_night(nightly_run, airflow_env, warehouses, database_url,
                                                                monkeypatch, landing, tmp_path):
    copy_of(nightly_run, warehouses, database_url, monkeypatch, landing)   # the night of 2014-01-03, published
    nightly = nightly_run.result[0]
    assert nightly.returncode == 0, (nightly.stdout + nightly.stderr)[-4000:]
    # publish's asset event carries the night's date (what an asset-triggered report run reads)
    script = """
import json
from airflow.models.asset import AssetEvent, AssetModel
from airflow.utils.session import create_session
with create_session() as session:
    event = (session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
             .filter(AssetModel.name == "rebalance_proposals").order_by(AssetEvent.id.desc()).first())
    print(json.dumps({"extra": event.extra, "dag": event.source_dag_id, "task": event.source_task_id}))
"""
    out = subprocess.run([sys.executable, "-c", script], env=airflow_env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    event = json.loads(out.stdout.strip().splitlines()[-1])
    assert (event["dag"], event["task"]) == ("rebalance_nightly", "publish")
    assert event["extra"]["as_of_date"] == "2014-01-03" and event["extra"]["run_id"].startswith("airflow-")

    reports = tmp_path / "reports"
    # A Sunday with no param and no triggering event: the latest night on or before it.
    result = subprocess.run([str(BIN / "airflow"), "dags", "test", "rebalance_reporting", "2014-01-05"],
                            env={**airflow_env, "REBALANCE_REPORTS_DIR": str(reports)}, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert sorted(p.name for p in reports.iterdir()) == ["data-docs", "drift_report_2014-01-03.html"]
    assert (reports / "data-docs" / "2014-01-03" / "index.html").is_file()   # the night's GX Data Docs
    html = (reports / "drift_report_2014-01-03.html").read_text()
    assert "Rebalance drift report: 2014-01-03" in html and html.count("data:image/png;base64,") == 3
    assert 'id="funds">3<' in html and 'id="funds-proposed">1<' in html and 'id="proposals-pending_review">1<' in html
    assert "<h3>Decisions taken on 2014-01-03</h3>" in html

    # A second night published, and the first one again (a rerun): one run that consumed the
    # three events, as the scheduler hands them to a run queued behind max_active_runs=1 or
    # after a catch-up, writes one report per night, each by its own mapped task.
    small_landing(landing, dt.date(2014, 1, 6), with_reference=False)
    second = _dags_test({**airflow_env, "REBALANCE_OUTBOX_DIR": str(tmp_path / "outbox")}, landing, "2014-01-06")
    assert second.returncode == 0, (second.stdout + second.stderr)[-4000:]
    shutil.rmtree(reports)
    result = subprocess.run([sys.executable, "-c", CONSUMING_RUN], env={**airflow_env, "REBALANCE_REPORTS_DIR": str(reports)},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    run = json.loads(result.stdout.strip().splitlines()[-1])
    assert run["state"] == "success" and len(run["consumed"]) == 3
    assert sorted(extra["as_of_date"] for extra in run["consumed"]) == ["2014-01-03", "2014-01-03", "2014-01-06"]
    assert run["resolved"] == ["success"]
    assert run["mapped"] == [[0, "2014-01-03", "success"], [1, "2014-01-06", "success"]]
    assert sorted(p.name for p in reports.iterdir()) == ["data-docs", "drift_report_2014-01-03.html",
                                                         "drift_report_2014-01-06.html"]
    assert sorted(p.name for p in (reports / "data-docs").iterdir()) == ["2014-01-03", "2014-01-06"]
    assert "Rebalance drift report: 2014-01-06" in (reports / "drift_report_2014-01-06.html").read_text()


# `airflow dags test` never hands a run asset events; the scheduler links the events a run
# consumed to it (DagRun.consumed_asset_events), which the tasks read as
# triggering_asset_events. This does the same to the run `dag.test()` creates, then runs it.
CONSUMING_RUN = """
import json
import airflow.models.dagrun as dagrun_module
from airflow.dag_processing.dagbag import DagBag
from airflow.models.asset import AssetEvent, AssetModel
from airflow.models.taskinstance import TaskInstance
from airflow.utils.session import create_session

with create_session() as session:   # the two nights the test just published, and the first again
    published = (session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                 .filter(AssetModel.name == "rebalance_proposals").order_by(AssetEvent.id.desc()).limit(2).all())
    first = published[-1]
    rerun = AssetEvent(asset_id=first.asset_id, extra=dict(first.extra), source_dag_id=first.source_dag_id,
                       source_task_id=first.source_task_id, source_run_id="a-rerun")
    session.add(rerun)
    session.flush()
    consumed_ids = [event.id for event in published] + [rerun.id]

create = dagrun_module.get_or_create_dagrun


def consuming(**kwargs):
    run = create(**kwargs)
    session = kwargs["session"]
    run.consumed_asset_events.extend(session.query(AssetEvent).filter(AssetEvent.id.in_(consumed_ids)).all())
    session.commit()
    return run


dagrun_module.get_or_create_dagrun = consuming
run = DagBag().dags["rebalance_reporting"].test(logical_date=None)
with create_session() as session:
    tis = (session.query(TaskInstance).filter(TaskInstance.dag_id == "rebalance_reporting",
                                              TaskInstance.run_id == run.run_id).all())
    consumed = [event.extra for event in session.merge(run).consumed_asset_events]
    print(json.dumps({
        "state": str(run.state),
        "consumed": consumed,
        "resolved": [str(ti.state) for ti in tis if ti.task_id == "resolve_report_dates"],
        "mapped": sorted([ti.map_index, ti.rendered_map_index, str(ti.state)] for ti in tis
                         if ti.task_id == "build_drift_report"),
    }))
"""
