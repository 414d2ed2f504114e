"""rebalance_nightly: landing files of one business date to proposals ready for review.

ingest -> validate -> drift -> propose -> publish, each a thin call to
``rebalance_pipeline.steps``, then export_approved_orders (``rebalance_pipeline.export``).
Tasks hand each other only the business date and the run id (XCom); the frames between
them are kept in the warehouse (``rebalance.run_artifact``).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, Param, dag, task
from rebalance_timetable import TradingDayTimetable  # plugins/: trading days of the exchange calendar

from rebalance_pipeline.dates import SCHEDULE_TIMEZONE

# Reporting DAGs schedule on this: it is updated when a night's proposals are published.
PROPOSALS_ASSET = Asset(name="rebalance_proposals", uri="rebalance://warehouse/rebalance/proposal",
                        group="rebalance")

DOC = """
### Rebalance nightly

Reads `$REBALANCE_LANDING_DIR/<YYYY-MM-DD>/`, validates it with Great Expectations, computes
every fund's drift and writes rebalancing proposals to the warehouse (`rebalance` schema) in
one transaction. Runs at 18:30 New York time on NYSE trading days (`TradingDayTimetable` in
`plugins/`): weekends and exchange holidays have no run.

* **Business date**: the `as_of_date` param if given, else the run's logical date
  (see `rebalance_pipeline/dates.py`). `airflow dags test rebalance_nightly 2014-01-03`
  processes 2014-01-03.
* **Structural faults** (missing/unreadable file or column, wrong as_of_date) fail `ingest`
  with file, row and column in the log; nothing is written for the date.
* **Row faults** block only the funds they touch; see `rebalance.fund_summary.blocked_reason`
  and `rebalance.validation_result`.
* Reruns are idempotent; approved or rejected proposals are never changed.
* **export_approved_orders** (after `publish`) writes the orders of every approved proposal
  of the business date or earlier that was not exported yet, one CSV per proposal, to
  `$REBALANCE_OUTBOX_DIR/<YYYY-MM-DD>/orders_<fund_id>_<proposal_id>.csv`, and records it in
  `rebalance.order_export`: exactly once, so a retry or rerun sends nothing twice.
"""


def _run(run_info: dict):
    from pathlib import Path

    import pendulum as pdl

    from rebalance_pipeline import steps, warehouse

    return steps.NightlyRun.for_task(pdl.parse(run_info["as_of_date"]).date(), run_info["run_id"],
                                     warehouse.get_engine(), Path(run_info["landing_dir"]))


@dag(
    dag_id="rebalance_nightly",
    schedule=TradingDayTimetable("18:30", SCHEDULE_TIMEZONE, "XNYS"),
    start_date=pendulum.datetime(2014, 1, 1, tz=SCHEDULE_TIMEZONE),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": pendulum.duration(minutes=2)},
    params={"as_of_date": Param(None, type=["null", "string"], format="date",
                                description="Business date to process (default: the run's logical date)")},
    tags=["rebalance"],
    doc_md=DOC,
)
def rebalance_nightly():
    @task(retries=0)
    def resolve_business_date(params=None, logical_date=None, dag_run=None) -> dict:
        """Fix the business date once; a manual run on a closed day is skipped unless a date is given."""
        from airflow.sdk.exceptions import AirflowSkipException

        from rebalance_core.calendar import is_trading_day
        from rebalance_pipeline import settings, warehouse
        from rebalance_pipeline.dates import resolve_as_of_date

        given = (params or {}).get("as_of_date")
        as_of = resolve_as_of_date(given, logical_date, getattr(dag_run, "run_after", None))
        if not given and not is_trading_day(as_of):
            raise AirflowSkipException(f"{as_of} is not a trading day")
        warehouse.migrate(warehouse.get_engine())
        return {"as_of_date": as_of.isoformat(), "run_id": f"airflow-{dag_run.run_id}",
                "landing_dir": str(settings.landing_dir())}

    @task(retries=0)
    def ingest(run_info: dict) -> dict:
        from rebalance_pipeline import steps

        steps.ingest(_run(run_info))
        return run_info

    @task(retries=0)
    def validate(run_info: dict) -> dict:
        from rebalance_pipeline import steps

        steps.validate(_run(run_info))
        return run_info

    @task
    def drift(run_info: dict) -> dict:
        from rebalance_pipeline import steps

        steps.drift(_run(run_info))
        return run_info

    @task
    def propose(run_info: dict) -> dict:
        from rebalance_pipeline import steps

        steps.propose(_run(run_info))
        return run_info

    @task(outlets=[PROPOSALS_ASSET])
    def publish(run_info: dict, outlet_events=None) -> dict:
        from dataclasses import asdict

        from rebalance_pipeline import steps

        report = steps.publish_step(_run(run_info))
        # The asset event says which night it was: rebalance_reporting reports on that date.
        outlet_events[PROPOSALS_ASSET].extra = {"as_of_date": run_info["as_of_date"], "run_id": run_info["run_id"]}
        return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in asdict(report).items()}

    @task
    def export_approved_orders(run_info: dict) -> dict:
        """Order files for approvals up to the business date not exported yet (exactly once)."""
        import datetime as dt

        from rebalance_pipeline import export, settings, warehouse

        report = export.export_approved_orders(warehouse.get_engine(), settings.outbox_dir(),
                                               up_to=dt.date.fromisoformat(run_info["as_of_date"]),
                                               run_id=run_info["run_id"])
        return {"as_of_date": run_info["as_of_date"], "outbox": str(report.outbox), "files": len(report.files),
                "proposals": report.proposals, "orders": report.orders,
                "skipped_already_exported": report.skipped_already_exported, "recovered": report.recovered,
                "discarded": report.discarded, "refused": [list(r) for r in report.refused]}

    run_info = resolve_business_date()
    publish(propose(drift(validate(ingest(run_info))))) >> export_approved_orders(run_info)


rebalance_nightly()
