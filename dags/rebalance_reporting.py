"""rebalance_reporting: the HTML drift report of each night, once its proposals are published.

Scheduled on the ``rebalance_proposals`` Asset that ``rebalance_nightly``'s publish task
updates (its event's extra carries the night's ``as_of_date``). resolve_report_dates ->
build_data_docs -> build_drift_report, each mapped (dynamic task mapping) over the dates: a run that consumed
several publish events reports on every night among them. Tasks hand each other only the
dates and the reports' paths (XCom).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, get_current_context, task
from rebalance_assets import PROPOSALS_ASSET  # plugins/: the assets both DAGs share

from rebalance_pipeline.dates import SCHEDULE_TIMEZONE

DOC = """
### Rebalance reporting

Writes the drift report of each business date it resolves, a self-contained HTML page (charts
embedded, no external URLs), to `$REBALANCE_REPORTS_DIR/drift_report_<YYYY-MM-DD>.html` (default
`$REBALANCE_HOME/reports`). Runs whenever `rebalance_nightly` publishes a night (Asset
`rebalance_proposals`).

* **Business dates**: the `as_of_date` param if given (just that date), else every
  distinct `as_of_date` of the triggering asset events (the nights just published: a run
  that consumed several events, after a catch-up or a backfill of the nightly or while
  `max_active_runs=1` held the previous run, writes one report per night), else the latest
  date in the warehouse on or before the run's logical date: `airflow dags test
  rebalance_reporting 2014-01-03` reports on 2014-01-03, or the last night before it.
* **One mapped `build_data_docs` and `build_drift_report` per date** (dynamic task mapping, map
  index = the date): the night's Great Expectations results as GX Data Docs at
  `$REBALANCE_REPORTS_DIR/data-docs/<YYYY-MM-DD>/index.html` (built from the results the
  night's publish stored in `rebalance.validation_gx_result`; no network), then the report,
  which links each blocked fund to them.
* **Reads** the reporting views of the warehouse (`rebalance.fund_drift_history`,
  `proposal_history`, `approval_latency`): a `rebalance_reader` login is enough.
* Same command without Airflow: `rebalance report-html --date YYYY-MM-DD`.
"""


@dag(
    dag_id="rebalance_reporting",
    schedule=[PROPOSALS_ASSET],
    start_date=pendulum.datetime(2014, 1, 1, tz=SCHEDULE_TIMEZONE),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": pendulum.duration(minutes=2)},
    params={
        "as_of_date": Param(None, type=["null", "string"], format="date",
                            description="Business date to report on (default: the published night)"),
        "history_days": Param(60, type="integer", minimum=1, maximum=2000,
                              description="Business dates in the turnover and cost trend"),
    },
    tags=["rebalance"],
    doc_md=DOC,
)
def rebalance_reporting():
    @task(retries=0)
    def resolve_report_dates(params=None, logical_date=None, dag_run=None,
                             triggering_asset_events=None) -> list[str]:
        """Fix the business dates once: param, else the asset events' dates, else the warehouse's latest."""
        from rebalance_pipeline import reporting, warehouse

        engine = warehouse.get_engine()
        reporting.require_views(engine)  # reads only: no migration from a reporting job
        try:
            events = list(triggering_asset_events[PROPOSALS_ASSET]) if triggering_asset_events else []
        except KeyError:
            events = []
        dates = reporting.resolve_report_dates(engine, (params or {}).get("as_of_date"),
                                               [event.extra for event in events], logical_date,
                                               getattr(dag_run, "run_after", None))
        return [day.isoformat() for day in dates]

    @task(map_index_template="{{ report_date }}")
    def build_drift_report(as_of_date: str, params=None) -> str:
        """Write the HTML report of one date; return its path."""
        import datetime as dt

        from rebalance_pipeline import reporting, settings, warehouse

        get_current_context()["report_date"] = as_of_date  # names the mapped task instance
        path = reporting.build_drift_report(warehouse.get_engine(), dt.date.fromisoformat(as_of_date),
                                            settings.reports_dir(), int((params or {}).get("history_days") or 60))
        return str(path)

    @task(map_index_template="{{ report_date }}")
    def build_data_docs(as_of_date: str) -> str:
        """Render the night's Great Expectations results as Data Docs; return the index's path."""
        import datetime as dt

        from rebalance_pipeline import data_docs, settings, warehouse

        get_current_context()["report_date"] = as_of_date
        return str(data_docs.build_data_docs(warehouse.get_engine(), dt.date.fromisoformat(as_of_date),
                                             settings.reports_dir()))

    dates = resolve_report_dates()
    # Data Docs first: the drift report links a blocked fund to them when they are there.
    build_data_docs.expand(as_of_date=dates) >> build_drift_report.expand(as_of_date=dates)


rebalance_reporting()
