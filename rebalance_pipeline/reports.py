"""Read-side queries over the warehouse for the morning review (CLI and demo)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy.engine import Engine

from rebalance_pipeline.warehouse import read_frame


def latest_date(engine: Engine) -> dt.date | None:
    with engine.connect() as conn:
        frame = read_frame(conn, "SELECT max(as_of_date) AS d FROM rebalance.fund_summary")
    return frame["d"].iloc[0] if len(frame) else None


def status_counts(engine: Engine, as_of: dt.date) -> pd.DataFrame:
    with engine.connect() as conn:
        return read_frame(conn, "SELECT status, count(*) AS funds, sum(nav) AS nav FROM rebalance.fund_summary "
                                "WHERE as_of_date = :d GROUP BY status ORDER BY status", {"d": as_of})


def fund_summary(engine: Engine, as_of: dt.date, status: str | None = None, limit: int = 50) -> pd.DataFrame:
    with engine.connect() as conn:
        return read_frame(conn,
                          "SELECT s.fund_id, s.policy, s.nav, s.max_abs_drift, s.breach_count, s.trigger, s.status,"
                          " s.blocked_reason, s.proposal_id, p.status AS proposal_status, p.turnover "
                          "FROM rebalance.fund_summary s LEFT JOIN rebalance.proposal p USING (proposal_id) "
                          "WHERE s.as_of_date = :d AND (CAST(:st AS text) IS NULL OR s.status = :st) "
                          "ORDER BY s.max_abs_drift DESC NULLS LAST, s.fund_id LIMIT :n",
                          {"d": as_of, "st": status, "n": limit})


def proposals(engine: Engine, as_of: dt.date | None = None, status: str | None = None,
              limit: int = 100) -> pd.DataFrame:
    with engine.connect() as conn:
        return read_frame(conn,
                          "SELECT proposal_id, as_of_date, fund_id, status, trigger, flow, turnover, trade_count,"
                          " est_cost, est_realized_gain, wash_sale_trades, reviewed_by "
                          "FROM rebalance.proposal WHERE (CAST(:d AS date) IS NULL OR as_of_date = :d)"
                          " AND (CAST(:st AS text) IS NULL OR status = :st) "
                          "ORDER BY as_of_date DESC, turnover DESC, proposal_id LIMIT :n",
                          {"d": as_of, "st": status, "n": limit})


def proposal_trades(engine: Engine, proposal_id: str) -> pd.DataFrame:
    with engine.connect() as conn:
        return read_frame(conn,
                          "SELECT security_id, side, quantity, price, notional, weight_before, weight_after,"
                          " target_weight, est_cost, est_realized_gain, wash_sale, reason FROM rebalance.proposal_trade "
                          "WHERE proposal_id = :id ORDER BY notional DESC", {"id": proposal_id})


def top_trades(engine: Engine, as_of: dt.date, limit: int = 10) -> pd.DataFrame:
    with engine.connect() as conn:
        return read_frame(conn,
                          "SELECT p.fund_id, t.security_id, t.side, t.quantity, t.notional, t.weight_before,"
                          " t.weight_after, t.target_weight, t.reason, p.proposal_id "
                          "FROM rebalance.proposal_trade t JOIN rebalance.proposal p USING (proposal_id) "
                          "WHERE p.as_of_date = :d AND p.status <> 'superseded' "
                          "ORDER BY t.notional DESC LIMIT :n", {"d": as_of, "n": limit})


def validation_failures(engine: Engine, as_of: dt.date) -> pd.DataFrame:
    with engine.connect() as conn:
        return read_frame(conn,
                          "SELECT DISTINCT ON (dataset, \"check\") dataset, \"check\", failed_rows, detail "
                          "FROM rebalance.validation_result WHERE as_of_date = :d AND NOT success "
                          "ORDER BY dataset, \"check\", checked_at DESC", {"d": as_of})
