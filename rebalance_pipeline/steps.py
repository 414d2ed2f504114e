"""The nightly pipeline as five steps: ingest, validate, drift, propose, publish.

The Airflow DAG runs each step as a task (frames kept in the warehouse between tasks);
``run_nightly`` runs them in one process (frames kept in memory) for the CLI, tests and
benchmarks. Both call these same functions.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

import rebalance_core as core
from rebalance_core.schema import STATUS_BLOCKED, STATUS_IN_BAND, STATUS_PROPOSED
from rebalance_pipeline import landing, publish, validation, warehouse
from rebalance_pipeline.workspace import MemoryWorkspace, WarehouseWorkspace, Workspace

log = logging.getLogger(__name__)

REFERENCE_STEMS = ("funds", "targets", "securities", "asset_classes")
DAILY_STEMS = ("prices", "positions", "cash", "flows", "fx_rates", "tax_lots")


@dataclass
class NightlyRun:
    """What every step needs: the business date, the run's id, where things are."""

    as_of: dt.date
    run_id: str
    engine: Engine
    workspace: Workspace
    landing_dir: Path | None = None
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @classmethod
    def for_task(cls, as_of: dt.date, run_id: str, engine: Engine, landing_dir: Path | None = None) -> NightlyRun:
        """A run whose frames live in the warehouse (one Airflow task per step)."""
        return cls(as_of, run_id, engine, WarehouseWorkspace(engine, run_id), landing_dir)


def new_run_id(as_of: dt.date, source: str = "cli") -> str:
    return f"{source}-{as_of.isoformat()}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}"


# --------------------------------------------------------------------- steps
def ingest(run: NightlyRun) -> dict:
    """Read and type the date's folder; resolve reference data against its history."""
    frames, sources = landing.read_landing(run.landing_dir, run.as_of)
    with run.engine.connect() as conn:
        for stem in REFERENCE_STEMS:
            key = warehouse.REFERENCE_TABLES[stem][1]
            # The date's own version is the file in its folder, or none: a rerun without the
            # file falls back to the latest earlier version (publish drops the stale one).
            history = warehouse.reference_as_of(conn, stem, run.as_of, include_same_day=False)
            if stem in frames:
                run.workspace.put(f"file_{stem}", frames[stem])
                history = history[~history[key].isin(frames[stem][key])]
                effective = pd.concat([frames[stem], history], ignore_index=True) if len(history) else frames[stem]
            else:
                effective = history
            run.workspace.put(f"ref_{stem}", _typed_reference(stem, effective))
    for stem in ("funds", "targets"):
        if run.workspace.get(f"ref_{stem}").empty:
            raise landing.StructuralError(
                f"{stem}.csv", f"not in this date's folder and no earlier version is in the warehouse "
                f"(the first date loaded must bring {stem}.csv)")
    for stem in DAILY_STEMS:
        if stem in frames:
            run.workspace.put(f"file_{stem}", frames[stem])
    run.workspace.put("meta", pd.DataFrame({"key": ["sources"], "value": [json.dumps(sources)]}))
    counts = {stem: len(frame) for stem, frame in frames.items()}
    log.info("ingested %s for %s: %s", run.landing_dir, run.as_of, counts)
    return counts


def validate(run: NightlyRun) -> dict:
    """Great Expectations on the inputs; faults become blocked funds with a reason."""
    frames = _inputs(run)
    outcome = validation.validate(frames)
    blocked = core.blocked_funds(outcome.faults, frames["positions"], frames["targets"])
    run.workspace.put("validation_results", outcome.results)
    run.workspace.put("blocked", blocked)
    failed = outcome.results[~outcome.results["success"]]
    for row in failed.itertuples():
        log.warning("check failed: %s %s (%d rows): %s", row.dataset, row.check, row.failed_rows, row.detail)
    return {"checks": len(outcome.results), "failed_checks": len(failed), "blocked_funds": len(blocked)}


def drift(run: NightlyRun) -> dict:
    """Each fund's weights against its targets and bands."""
    frames = _inputs(run)
    funds = frames["funds"].drop_duplicates("fund_id")
    drift_rows = core.compute_drift(run.as_of, funds, frames["targets"], frames["positions"], frames["prices"],
                                    frames["cash"], frames.get("fx_rates"), securities=frames.get("securities"),
                                    asset_class_bands=frames.get("asset_classes"))
    summary = core.summarize_funds(drift_rows)
    # A fund whose NAV cannot be computed cannot be sized, whatever validation said.
    blocked = run.workspace.get("blocked")
    unvalued = summary.loc[summary["nav"].isna() & ~summary["fund_id"].isin(blocked["fund_id"]), "fund_id"]
    if len(unvalued):
        extra = pd.DataFrame({"fund_id": unvalued,
                              "blocked_reason": "NAV cannot be computed (a holding has no usable price or fx rate, "
                                                "or the fund is worth nothing)"})
        run.workspace.put("blocked", pd.concat([blocked, extra], ignore_index=True))
    # Approved orders the market has not seen by tonight's close are not in tonight's
    # positions: a new proposal would trade the same drift again. Such funds wait.
    waiting = _awaiting_execution(run)
    waiting = waiting[waiting["fund_id"].isin(summary["fund_id"])
                      & ~waiting["fund_id"].isin(run.workspace.get("blocked")["fund_id"])]
    if len(waiting):
        run.workspace.put("blocked", pd.concat([run.workspace.get("blocked"), waiting], ignore_index=True))
    run.workspace.put("drift", drift_rows)
    run.workspace.put("summary", summary)
    return {"funds": len(summary), "rows": len(drift_rows), "breached_funds": int(summary["breached"].sum())}


def propose(run: NightlyRun) -> dict:
    """Triggers and trades for the funds that are due and not blocked."""
    frames = _inputs(run)
    funds = frames["funds"].drop_duplicates("fund_id")
    drift_rows, summary = run.workspace.get("drift"), run.workspace.get("summary")
    blocked = run.workspace.get("blocked")
    flows = frames.get("flows")
    triggers = core.resolve_triggers(run.as_of, funds, summary)
    triggers = core.resolve_flow_triggers(drift_rows, summary, funds, flows, triggers)
    proposals, trades = core.propose(run.as_of, drift_rows, summary, funds, triggers,
                                     securities=frames.get("securities"), blocked=blocked, flows=flows)
    trades, lots_used = core.realize_gains(
        run.as_of, trades, frames.get("tax_lots"), funds,
        fx_rate=trades.merge(drift_rows[["fund_id", "security_id", "fx_rate"]], on=["fund_id", "security_id"],
                             how="left")["fx_rate"].set_axis(trades.index) if len(trades) else None,
        recent_loss_sales=_recent_loss_sales(run) if frames.get("tax_lots") is not None else None)
    if len(proposals):
        proposals = core.summarize_gains(proposals, trades)
    run.workspace.put("trade_lots", lots_used)
    summary = summary.assign(flow=summary["fund_id"].map(
        flows.groupby("fund_id")["amount"].sum()) if flows is not None else None)
    run.workspace.put("proposals", proposals)
    run.workspace.put("trades", trades)
    run.workspace.put("fund_summary", _fund_summary(run.as_of, funds, summary, triggers, blocked, proposals))
    return {"proposals": len(proposals), "trades": len(trades)}


def publish_step(run: NightlyRun) -> publish.PublishReport:
    """Write the night in one transaction (see ``rebalance_pipeline.publish``)."""
    ws = run.workspace
    night = publish.NightOutput(
        as_of=run.as_of, run_id=run.run_id, started_at=run.started_at,
        daily_inputs={s: ws.get(f"file_{s}") for s in DAILY_STEMS if ws.has(f"file_{s}")},
        reference_files={s: ws.get(f"file_{s}") for s in REFERENCE_STEMS if ws.has(f"file_{s}")},
        validation_results=ws.get("validation_results"),
        drift=ws.get("drift"),
        summary=ws.get("fund_summary"),
        proposals=ws.get("proposals"),
        trades=ws.get("trades"),
        trade_lots=ws.get("trade_lots"),
    )
    report = publish.publish_night(run.engine, night)
    log.info("published %s", report)
    return report


def run_nightly(as_of: dt.date, landing_dir: Path, engine: Engine, run_id: str | None = None,
                on_step=None) -> publish.PublishReport:
    """The whole night in one process, frames in memory."""
    run = NightlyRun(as_of, run_id or new_run_id(as_of), engine, MemoryWorkspace(), Path(landing_dir))
    for name, step in (("ingest", ingest), ("validate", validate), ("drift", drift), ("propose", propose)):
        result = step(run)
        if on_step:
            on_step(name, result)
    report = publish_step(run)
    if on_step:
        on_step("publish", report)
    return report


# --------------------------------------------------------------------- helpers
def _awaiting_execution(run: NightlyRun) -> pd.DataFrame:
    """Funds with an approved proposal of an earlier date whose orders were not exported
    before this date's close (so tonight's positions cannot reflect them), with the reason."""
    import sqlalchemy as sa

    from rebalance_core.calendar import session_close

    with run.engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT DISTINCT ON (p.fund_id) p.fund_id, p.proposal_id, p.as_of_date, e.exported_at "
            "FROM rebalance.proposal p LEFT JOIN rebalance.order_export e USING (proposal_id) "
            "WHERE p.status = 'approved' AND p.as_of_date < :d AND (e.exported_at IS NULL OR e.exported_at >= :close) "
            "ORDER BY p.fund_id, p.as_of_date DESC"),
            {"d": run.as_of, "close": session_close(run.as_of).to_pydatetime()}).all()
    reasons = [f"awaiting execution: approved proposal {r.proposal_id} ({r.as_of_date}) "
               + ("has not been exported" if r.exported_at is None else "was exported after this date's close")
               + "; no new proposal until the positions reflect its orders" for r in rows]
    return pd.DataFrame({"fund_id": [r.fund_id for r in rows], "blocked_reason": reasons})


def _recent_loss_sales(run: NightlyRun) -> pd.DataFrame:
    """Approved sells at a loss in the 30 days before the date (for wash-sale flags)."""
    import sqlalchemy as sa

    with run.engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT DISTINCT p.fund_id, t.security_id FROM rebalance.proposal_trade t "
            "JOIN rebalance.proposal p USING (proposal_id) WHERE p.status = 'approved' AND t.side = 'SELL' "
            "AND t.est_realized_gain < 0 AND p.as_of_date >= :start AND p.as_of_date < :d"),
            {"start": run.as_of - dt.timedelta(days=30), "d": run.as_of}).all()
    return pd.DataFrame(rows, columns=["fund_id", "security_id"])


def _inputs(run: NightlyRun) -> dict[str, pd.DataFrame]:
    ws = run.workspace
    frames = {s: ws.get(f"file_{s}") for s in DAILY_STEMS if ws.has(f"file_{s}")}
    frames.update({s: ws.get(f"ref_{s}") for s in REFERENCE_STEMS})
    frames["funds"] = core.apply_presets(frames["funds"])
    for stem in ("securities", "asset_classes"):
        if frames[stem].empty:
            del frames[stem]
    if "securities" in frames and "asset_classes" in frames:
        # A security without its own half spread takes its asset class's.
        spread = frames["securities"]["asset_class"].map(
            frames["asset_classes"].drop_duplicates("asset_class").set_index("asset_class")["half_spread_bps"])
        frames["securities"] = frames["securities"].assign(
            half_spread_bps=frames["securities"]["half_spread_bps"].astype("float64").fillna(spread.astype("float64")))
    return frames


def _typed_reference(stem: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Reference rows from the warehouse come back as Decimal/None: give them the file types."""
    spec = landing.SPECS[stem]
    frame = frame.copy()
    for column in spec.all_columns:
        if column not in frame:
            frame[column] = None
    for column in (*spec.numeric, *spec.optional_numeric):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    for column in spec.boolean:
        frame[column] = frame[column].astype("object").where(frame[column].notna(), None)
    return frame


def _fund_summary(as_of, funds, summary, triggers, blocked, proposals) -> pd.DataFrame:
    out = summary.merge(funds[["fund_id", "name", "base_currency", "policy"]], on="fund_id", how="left")
    # Funds that appear only in faults (positions of a fund not in funds.csv) are listed too.
    unknown = blocked.loc[~blocked["fund_id"].isin(out["fund_id"]), ["fund_id"]]
    out = pd.concat([out, unknown], ignore_index=True) if len(unknown) else out
    out = out.merge(blocked, on="fund_id", how="left")
    out["trigger"] = out["fund_id"].map(triggers)
    out["proposal_id"] = out["fund_id"].map(proposals.set_index("fund_id")["proposal_id"]) if len(proposals) else None
    is_blocked = out["blocked_reason"].notna()
    out.loc[is_blocked, "trigger"] = None
    out["status"] = np.where(is_blocked, STATUS_BLOCKED,
                             np.where(out["proposal_id"].notna(), STATUS_PROPOSED, STATUS_IN_BAND))
    out["breached"] = out["breached"].fillna(False).astype(bool)
    out["breach_count"] = out["breach_count"].fillna(0).astype("int64")
    out["as_of_date"] = as_of
    return out.sort_values("fund_id", ignore_index=True)
