"""
### Rebalance nightly

Reads `$REBALANCE_LANDING_DIR/<YYYY-MM-DD>/`, validates it with Great Expectations, computes
every fund's drift and writes rebalancing proposals to the warehouse (`rebalance` schema).
Runs at 18:30 New York time on NYSE trading days (`TradingDayTimetable` in `plugins/`):
weekends and exchange holidays have no run.

`resolve_business_date` → `ingest` → `validate_shard` ×N → `decide_shard` ×N → `publish`
→ `export_approved_orders` and `write_pcf`, each a thin call to `rebalance_pipeline`.

* **Business date**: the `as_of_date` param if given, else the run's logical date
  (see `rebalance_pipeline/dates.py`). `airflow dags test rebalance_nightly 2014-01-03`
  processes 2014-01-03.
* **Shards**: funds are split into `shards` groups (param; default `$REBALANCE_SHARDS`, else
  chosen by the night's size: about a million positions each, at least one per core of the
  ingest worker). `validate_shard` and `decide_shard` are mapped over them, so whatever
  executor the deployment runs (LocalExecutor, CeleryExecutor, KubernetesExecutor) spreads
  them. XCom carries only dates, the run id and shard numbers; frames go through
  `rebalance.run_artifact`. Great Expectations is imported only by `ingest` and
  `validate_shard`.
* **Structural faults** (missing/unreadable file or column, wrong as_of_date) fail `ingest`
  with file, row and column in the log; nothing is written for the date.
* **Row faults** block only the funds they touch; see `rebalance.fund_summary.blocked_reason`
  and `rebalance.validation_result`.
* **All or nothing**: each shard writes leaf tables nobody reads yet; `publish` attaches them
  in one transaction. A failed or killed shard leaves the date's previous night whole; a
  retried shard rewrites its own leaves. Reruns are idempotent; approved or rejected
  proposals are never changed.
* **export_approved_orders** (after `publish`) writes the orders of every approved proposal
  of the business date or earlier that was not exported yet, one CSV per proposal, to
  `$REBALANCE_OUTBOX_DIR/<YYYY-MM-DD>/orders_<fund_id>_<proposal_id>.csv`, and records it in
  `rebalance.order_export`: exactly once, so a retry or rerun sends nothing twice. With the
  param `blocks`, one batch of block orders (one per security, side and currency across
  accounts) and its allocation file instead (`block_orders_<batch>.csv`,
  `block_allocations_<batch>.csv`), exactly once in the same ledger.
* **write_pcf** (after `publish`) writes the night's ETF baskets (creation and redemption
  of one creation unit, `rebalance.basket`) to `$REBALANCE_PCF_DIR/<YYYY-MM-DD>/<fund_id>.csv`
  (default `$REBALANCE_HOME/pcf`); a retry or rerun rewrites the same files atomically.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task
from rebalance_assets import PROPOSALS_ASSET  # plugins/: the assets both DAGs share
from rebalance_timetable import TradingDayTimetable  # plugins/: trading days of the exchange calendar

from rebalance_pipeline.dates import SCHEDULE_TIMEZONE


def _run(run_info: dict):
    """The night of ``run_info`` (a shard descriptor or the run's info), frames in the warehouse."""
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
    default_args={"retries": 1, "retry_delay": pendulum.duration(seconds=30)},
    params={"as_of_date": Param(None, type=["null", "string"], format="date",
                                description="Business date to process (default: the run's logical date)"),
            "shards": Param(None, type=["null", "integer"], minimum=1, maximum=1024,
                            description="Shards of funds run as parallel tasks (default: $REBALANCE_SHARDS, "
                                        "else chosen by the night's size)"),
            "blocks": Param(False, type="boolean",
                            description="Export block orders (one per security, side and currency across "
                                        "accounts) with an allocation file, instead of one file per proposal")},
    tags=["rebalance"],
    doc_md=__doc__,
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
                "landing_dir": str(settings.landing_dir()), "shards": (params or {}).get("shards")}

    @task(retries=0)
    def ingest(run_info: dict) -> list[dict]:
        """Read the folder, check the night-level rows, split the funds: one descriptor per shard."""
        from rebalance_pipeline import steps

        plan = steps.ingest(_run(run_info), run_info.get("shards"))
        return [{**run_info, "shard": i, "shards": plan.shards} for i in range(plan.shards)]

    @task(retries=0, map_index_template="{{ shard_label }}")
    def validate_shard(shard: dict) -> dict:
        """Great Expectations on the shard's fund rows; its blocked funds."""
        from airflow.sdk import get_current_context

        from rebalance_pipeline import steps

        get_current_context()["shard_label"] = f"shard {shard['shard']} of {shard['shards']}"
        steps.validate_shard(_run(shard), shard["shard"])
        return shard

    @task(map_index_template="{{ shard_label }}")
    def decide_shard(shard: dict) -> dict:
        """The shard's drift and proposals, written to leaf tables of its own (a retry rewrites them)."""
        from airflow.sdk import get_current_context

        from rebalance_pipeline import steps

        get_current_context()["shard_label"] = f"shard {shard['shard']} of {shard['shards']}"
        return steps.decide_shard(_run(shard), shard["shard"])

    @task(outlets=[PROPOSALS_ASSET])
    def publish(run_info: dict, decided: list[dict], outlet_events=None) -> dict:
        """One transaction: the shards' leaves become the date's partitions, proposals merged."""
        from dataclasses import asdict

        from rebalance_pipeline import steps

        report = steps.publish_step(_run(run_info))
        # The asset event says which night it was: rebalance_reporting reports on that date.
        outlet_events[PROPOSALS_ASSET].extra = {"as_of_date": run_info["as_of_date"], "run_id": run_info["run_id"]}
        return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in asdict(report).items()}

    @task
    def export_approved_orders(run_info: dict, params=None) -> dict:
        """Order files for approvals up to the business date not exported yet (exactly once);
        block orders with allocations when the ``blocks`` param is set."""
        import datetime as dt

        from rebalance_pipeline import export, settings, warehouse

        report = export.export_approved_orders(warehouse.get_engine(), settings.outbox_dir(),
                                               up_to=dt.date.fromisoformat(run_info["as_of_date"]),
                                               run_id=run_info["run_id"], blocks=bool((params or {}).get("blocks")))
        return {"as_of_date": run_info["as_of_date"], "outbox": str(report.outbox), "files": len(report.files),
                "proposals": report.proposals, "orders": report.orders,
                "skipped_already_exported": report.skipped_already_exported, "recovered": report.recovered,
                "discarded": report.discarded, "refused": [list(r) for r in report.refused],
                "blocks": report.blocks, "block_batch_id": report.block_batch_id}

    @task
    def write_pcf(run_info: dict) -> dict:
        """The night's ETF baskets as PCF files, $REBALANCE_PCF_DIR/<YYYY-MM-DD>/<fund_id>.csv."""
        import datetime as dt

        from rebalance_pipeline import settings, warehouse
        from rebalance_pipeline.pcf import write_pcf as write

        report = write(warehouse.get_engine(), dt.date.fromisoformat(run_info["as_of_date"]), settings.pcf_dir())
        return {"as_of_date": run_info["as_of_date"], "root": str(report.root), "files": len(report.files),
                "refused": report.refused}

    run_info = resolve_business_date()
    decided = decide_shard.expand(shard=validate_shard.expand(shard=ingest(run_info)))
    published = publish(run_info, decided)
    published >> export_approved_orders(run_info)
    published >> write_pcf(run_info)


rebalance_nightly()
