"""The DAGs through a real Airflow: import, lint, and `airflow dags test` on a real warehouse."""

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
from conftest import PROJECT, small_landing

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
}))
"""
    out = subprocess.run([sys.executable, "-c", script], env=airflow_env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["errors"] == {}
    assert info["max_active_runs"] == 1
    assert info["timezone"] == "America/New_York"
    assert info["tasks"] == ["resolve_business_date", "ingest", "validate", "drift", "propose", "publish"]
    assert info["retries"]["validate"] == 0 and info["retries"]["ingest"] == 0
    assert info["outlets"] == ["rebalance_proposals"]


def test_ruff_airflow3_rules_pass():
    ruff = shutil.which("ruff", path=str(BIN)) or shutil.which("ruff")
    out = subprocess.run([ruff, "check", "--select", "AIR3", "dags", "plugins"], cwd=PROJECT, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout


def _dags_test(env, landing, date: str):
    return subprocess.run([str(BIN / "airflow"), "dags", "test", "rebalance_nightly", date],
                          env={**env, "REBALANCE_LANDING_DIR": str(landing)}, capture_output=True, text=True,
                          timeout=600)


def test_dags_test_processes_the_given_business_date(airflow_env, engine, landing):
    small_landing(landing, dt.date(2014, 1, 3))
    result = _dags_test(airflow_env, landing, "2014-01-03")
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT as_of_date, fund_id, status, run_id FROM rebalance.fund_summary "
                                    "ORDER BY fund_id")).all()
        artifacts = conn.execute(sa.text("SELECT count(*) FROM rebalance.run_artifact")).scalar()
        proposal = conn.execute(sa.text("SELECT fund_id, status FROM rebalance.proposal")).all()
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
