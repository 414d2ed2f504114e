"""The night's one write: inputs, validation results, drift, proposals and fund summary.

Everything for one business date is written in a single transaction under the date's
advisory lock:

- daily inputs and validation results are replaced for the date (delete, then COPY);
- reference files that came with the date become the version valid from that date (a
  rerun without one removes the date's version: the latest earlier one applies);
- pending proposals of the date are replaced (COPY of the new ones); approved or rejected
  ones are never touched:
  a rerun that computes the same trades for a reviewed fund finds the same proposal id (the
  id is a hash of the trades) and adds nothing, while different trades arrive as a new
  pending proposal beside the reviewed one;
- pending proposals of earlier dates for the funds computed tonight become ``superseded``;
- the run's scratch artifacts are deleted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rebalance_core.drift import DRIFT_COLUMNS
from rebalance_pipeline.warehouse import copy_frame, date_lock

DAILY_INPUTS = {
    # file stem: (table, columns)
    "prices": ("rebalance.price", ["as_of_date", "source_row", "security_id", "close_price", "currency"]),
    "positions": ("rebalance.position", ["as_of_date", "source_row", "fund_id", "security_id", "quantity"]),
    "cash": ("rebalance.cash_balance", ["as_of_date", "source_row", "fund_id", "currency", "amount"]),
    "flows": ("rebalance.flow", ["as_of_date", "source_row", "fund_id", "amount"]),
    "fx_rates": ("rebalance.fx_rate", ["as_of_date", "source_row", "currency", "base_currency", "rate"]),
    "tax_lots": ("rebalance.tax_lot", ["as_of_date", "source_row", "fund_id", "security_id", "lot_id", "quantity",
                                       "unit_cost", "acquired_date"]),
}
REFERENCE_INPUTS = {
    "funds": ("rebalance.fund_ref", ["valid_from", "source_row", "fund_id", "name", "base_currency", "policy",
                                     "frequency", "abs_band", "rel_band", "rebalance_to", "min_trade_notional",
                                     "cash_buffer", "allow_fractional", "calendar", "band_fraction", "commission_bps",
                                     "commission_per_share", "max_turnover", "max_cost_bps", "tax_lot_method",
                                     "min_trade_pct_nav"]),
    "targets": ("rebalance.target_ref", ["valid_from", "source_row", "fund_id", "security_id", "target_weight"]),
    "securities": ("rebalance.security_ref", ["valid_from", "source_row", "security_id", "lot_size", "asset_class",
                                              "tradable", "half_spread_bps", "adv"]),
    "asset_classes": ("rebalance.asset_class_ref", ["valid_from", "source_row", "asset_class", "abs_band", "rel_band",
                                                    "half_spread_bps"]),
}
SUMMARY_COLUMNS = ["as_of_date", "fund_id", "name", "base_currency", "policy", "nav", "cash", "cash_weight",
                   "max_abs_drift", "breached", "breach_count", "trigger", "status", "blocked_reason", "proposal_id",
                   "run_id", "flow"]
PROPOSAL_COLUMNS = ["proposal_id", "as_of_date", "fund_id", "trigger", "nav", "turnover", "est_cost",
                    "est_realized_gain", "trade_count", "cash_before", "cash_after", "run_id", "flow", "notes",
                    "est_realized_gain_short", "est_realized_gain_long", "wash_sale_trades"]
TRADE_COLUMNS = ["proposal_id", "security_id", "side", "quantity", "price", "currency", "notional", "weight_before",
                 "weight_after", "target_weight", "est_cost", "est_realized_gain", "reason",
                 "est_realized_gain_short", "est_realized_gain_long", "wash_sale"]
LOT_COLUMNS = ["proposal_id", "security_id", "lot_id", "quantity", "unit_cost", "acquired_date", "realized_gain",
               "term"]
VALIDATION_COLUMNS = ["as_of_date", "run_id", "dataset", "check", "success", "failed_rows", "detail"]


@dataclass(frozen=True)
class NightOutput:
    as_of: dt.date
    run_id: str
    started_at: dt.datetime | None
    daily_inputs: dict[str, pd.DataFrame]
    reference_files: dict[str, pd.DataFrame]
    validation_results: pd.DataFrame
    drift: pd.DataFrame
    summary: pd.DataFrame
    proposals: pd.DataFrame
    trades: pd.DataFrame
    trade_lots: pd.DataFrame


@dataclass(frozen=True)
class PublishReport:
    as_of: dt.date
    run_id: str
    funds: int
    proposed: int
    blocked: int
    trades: int
    new_proposals: int
    kept_existing: int
    superseded: int


def publish_night(engine: Engine, night: NightOutput) -> PublishReport:
    d = {"d": night.as_of}
    with engine.begin() as conn:
        date_lock(conn, night.as_of)

        for stem, (table, columns) in DAILY_INPUTS.items():
            conn.execute(sa.text(f"DELETE FROM {table} WHERE as_of_date = :d"), d)
            if stem in night.daily_inputs:
                copy_frame(conn, table, night.daily_inputs[stem].assign(as_of_date=night.as_of), columns)
        for stem, (table, columns) in REFERENCE_INPUTS.items():
            conn.execute(sa.text(f"DELETE FROM {table} WHERE valid_from = :d"), d)
            if stem in night.reference_files:
                copy_frame(conn, table, night.reference_files[stem].assign(valid_from=night.as_of).reindex(
                    columns=columns), columns)

        conn.execute(sa.text("DELETE FROM rebalance.validation_result WHERE as_of_date = :d AND run_id = :r"),
                     {**d, "r": night.run_id})
        copy_frame(conn, "rebalance.validation_result",
                   night.validation_results.assign(as_of_date=night.as_of, run_id=night.run_id), VALIDATION_COLUMNS)

        conn.execute(sa.text("DELETE FROM rebalance.fund_drift WHERE as_of_date = :d"), d)
        copy_frame(conn, "rebalance.fund_drift", night.drift, DRIFT_COLUMNS)

        for child in ("proposal_trade", "proposal_trade_lot"):
            conn.execute(sa.text(
                f"DELETE FROM rebalance.{child} t USING rebalance.proposal p WHERE t.proposal_id = p.proposal_id"
                " AND p.as_of_date = :d AND p.status = 'pending_review'"), d)
        # A pending proposal that a rerun finds again keeps the time it was first published
        # (approval latency counts from there).
        first_published = conn.execute(sa.text(
            "DELETE FROM rebalance.proposal WHERE as_of_date = :d AND status = 'pending_review' "
            "RETURNING proposal_id, created_at"), d).all()
        # Ids are hashes of the trades (and carry the date): an id that still exists after the
        # delete is a reviewed proposal with exactly these trades, which stays as it is.
        kept = set(conn.execute(sa.text("SELECT proposal_id FROM rebalance.proposal WHERE as_of_date = :d"),
                                d).scalars())
        new_proposals = night.proposals[~night.proposals["proposal_id"].isin(kept)]
        new = copy_frame(conn, "rebalance.proposal", new_proposals.assign(run_id=night.run_id), PROPOSAL_COLUMNS)
        if first_published:
            conn.execute(sa.text(
                "UPDATE rebalance.proposal p SET created_at = f.created_at "
                "FROM unnest(CAST(:ids AS text[]), CAST(:at AS timestamptz[])) AS f (proposal_id, created_at) "
                "WHERE p.proposal_id = f.proposal_id"),
                {"ids": [r.proposal_id for r in first_published], "at": [r.created_at for r in first_published]})
        copy_frame(conn, "rebalance.proposal_trade",
                   night.trades[night.trades["proposal_id"].isin(new_proposals["proposal_id"])], TRADE_COLUMNS)
        copy_frame(conn, "rebalance.proposal_trade_lot",
                   night.trade_lots[night.trade_lots["proposal_id"].isin(new_proposals["proposal_id"])], LOT_COLUMNS)
        superseded = conn.execute(sa.text(
            "UPDATE rebalance.proposal p SET status = 'superseded' "
            "WHERE p.status = 'pending_review' AND p.as_of_date < :d "
            "AND p.fund_id IN (SELECT fund_id FROM rebalance.fund_drift WHERE as_of_date = :d)"), d).rowcount

        conn.execute(sa.text("DELETE FROM rebalance.fund_summary WHERE as_of_date = :d"), d)
        copy_frame(conn, "rebalance.fund_summary", night.summary.assign(run_id=night.run_id), SUMMARY_COLUMNS)

        counts = night.summary["status"].value_counts()
        conn.execute(sa.text(
            "INSERT INTO rebalance.pipeline_run (run_id, as_of_date, started_at, funds, funds_proposed, funds_blocked,"
            " trades) VALUES (:r, :d, :s, :f, :p, :b, :t) ON CONFLICT (run_id) DO UPDATE SET"
            " published_at = now(), funds = EXCLUDED.funds, funds_proposed = EXCLUDED.funds_proposed,"
            " funds_blocked = EXCLUDED.funds_blocked, trades = EXCLUDED.trades"),
            {"r": night.run_id, **d, "s": night.started_at, "f": len(night.summary),
             "p": int(counts.get("proposed", 0)), "b": int(counts.get("blocked", 0)), "t": len(night.trades)})
        conn.execute(sa.text("DELETE FROM rebalance.run_artifact WHERE run_id = :r"), {"r": night.run_id})

    return PublishReport(
        as_of=night.as_of, run_id=night.run_id, funds=len(night.summary),
        proposed=int(counts.get("proposed", 0)), blocked=int(counts.get("blocked", 0)), trades=len(night.trades),
        new_proposals=new, kept_existing=len(night.proposals) - new, superseded=superseded)
