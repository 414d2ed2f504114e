"""Read-side queries over the warehouse for the morning review (CLI and demo)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rebalance_pipeline.warehouse import read_frame


def latest_date(engine: Engine, on_or_before: dt.date | None = None) -> dt.date | None:
    """The latest published night (on or before a date, if given)."""
    with engine.connect() as conn:
        frame = read_frame(conn, "SELECT max(as_of_date) AS d FROM rebalance.fund_summary "
                                 "WHERE CAST(:d AS date) IS NULL OR as_of_date <= :d", {"d": on_or_before})
    value = frame["d"].iloc[0] if len(frame) else None
    return None if value is None or pd.isna(value) else value


def night_exists(engine: Engine, as_of: dt.date) -> bool:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT EXISTS (SELECT FROM rebalance.fund_summary WHERE as_of_date = :d)"),
                            {"d": as_of}).scalar_one()


def night_run(engine: Engine, as_of: dt.date) -> dict | None:
    """The run that published the night (the latest, after reruns)."""
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT run_id, published_at, funds, funds_proposed, funds_blocked, trades "
                                   "FROM rebalance.pipeline_run WHERE as_of_date = :d "
                                   "ORDER BY published_at DESC LIMIT 1"), {"d": as_of}).mappings().first()
    return dict(row) if row else None


def state_counts(engine: Engine, as_of: dt.date) -> pd.DataFrame:
    """Funds per state (``rebalance_pipeline.fund_states``: the HTML report's and the review
    view's definition) with their NAV per base currency: state, funds, nav."""
    from rebalance_pipeline import formatting
    from rebalance_pipeline.fund_states import FUND_STATES, fund_states

    with engine.connect() as conn:
        funds = read_frame(conn, "SELECT status, breached, breach_count, trigger, policy, base_currency, nav "
                                 "FROM rebalance.fund_summary WHERE as_of_date = :d", {"d": as_of})
    funds = funds.assign(state=fund_states(funds), nav=pd.to_numeric(funds["nav"], errors="coerce"))
    rows = []
    for state in FUND_STATES:
        mine = funds[funds["state"] == state]
        if mine.empty and state == "breached":
            continue  # rare: a row only when it happens (as in the HTML report)
        nav = mine.groupby(mine["base_currency"].fillna("?"))["nav"].sum(min_count=1)
        rows.append({"state": state, "funds": len(mine),
                     "nav": "; ".join(formatting.money(v, c) for c, v in nav.items() if not pd.isna(v))})
    return pd.DataFrame(rows, columns=["state", "funds", "nav"])


def pending_count(engine: Engine, as_of: dt.date) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM rebalance.proposal WHERE as_of_date = :d "
                                    "AND status = 'pending_review'"), {"d": as_of}).scalar_one()


def approval_counts(engine: Engine, as_of: dt.date) -> dict[str, int]:
    """The night's proposals approved by their fund's rule (``rule:auto``, straight-through)
    and by people, counted apart."""
    from rebalance_core.approval import AUTO_APPROVER

    with engine.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT count(*) FILTER (WHERE reviewed_by = :rule) AS by_rule, "
            " count(*) FILTER (WHERE reviewed_by <> :rule) AS by_people "
            "FROM rebalance.proposal WHERE as_of_date = :d AND status = 'approved'"),
            {"d": as_of, "rule": AUTO_APPROVER}).mappings().one()
    return {"by_rule": int(row["by_rule"]), "by_people": int(row["by_people"])}


def fund_count(engine: Engine, as_of: dt.date, status: str | None = None) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM rebalance.fund_summary WHERE as_of_date = :d "
                                    "AND (CAST(:st AS text) IS NULL OR status = :st)"),
                            {"d": as_of, "st": status}).scalar_one()


def trade_count(engine: Engine, as_of: dt.date) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM rebalance.proposal_trade t JOIN rebalance.proposal p "
                                    "USING (proposal_id) WHERE p.as_of_date = :d AND p.status <> 'superseded'"),
                            {"d": as_of}).scalar_one()


def proposal_count(engine: Engine, as_of: dt.date | None = None, status: str | None = None) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM rebalance.proposal "
                                    "WHERE (CAST(:d AS date) IS NULL OR as_of_date = :d)"
                                    " AND (CAST(:st AS text) IS NULL OR status = :st)"),
                            {"d": as_of, "st": status}).scalar_one()


def fund_summary(engine: Engine, as_of: dt.date, status: str | None = None, limit: int | None = 50) -> pd.DataFrame:
    with engine.connect() as conn:
        return read_frame(conn,
                          "SELECT s.fund_id, s.policy, s.nav, s.max_abs_drift, s.breach_count, s.trigger, s.status,"
                          " s.blocked_reason, s.proposal_id, p.status AS proposal_status, p.turnover "
                          "FROM rebalance.fund_summary s LEFT JOIN rebalance.proposal p USING (proposal_id) "
                          "WHERE s.as_of_date = :d AND (CAST(:st AS text) IS NULL OR s.status = :st) "
                          "ORDER BY s.max_abs_drift DESC NULLS LAST, s.fund_id LIMIT :n",
                          {"d": as_of, "st": status, "n": limit})


def expired_approvals(engine: Engine, as_of: dt.date) -> pd.DataFrame:
    """Funds whose approval expired unexecuted on the night (fund_state), with the reason."""
    with engine.connect() as conn:
        return read_frame(conn, "SELECT fund_id, closed_proposal_id AS proposal_id, note FROM rebalance.fund_state "
                                "WHERE as_of_date = :d AND closed_on = :d AND closed_outcome = 'expired' "
                                "ORDER BY fund_id", {"d": as_of})


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


def compliance_exceptions(engine: Engine, as_of: dt.date) -> pd.DataFrame:
    """Funds whose holdings fail a compliance rule on ``as_of`` (fund_id, rule, value,
    limit_value, detail): judged every night, traded or not; empty before V016."""
    from rebalance_pipeline.warehouse import query_sql

    with engine.connect() as conn:
        if conn.execute(sa.text("SELECT to_regclass('rebalance.compliance_result')")).scalar() is None:
            return pd.DataFrame(columns=["fund_id", "rule", "value", "limit_value", "detail"])
        return read_frame(conn, query_sql("compliance_exceptions"), {"d": as_of})
