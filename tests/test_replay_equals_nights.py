"""Property: N replayed nights equal N nightly runs when every proposal is approved and
executed as proposed.

A sample wealth book with every extension on (models and a model change, restrictions, tax
lots and harvests, an index ETF with baskets, an index event and shares outstanding, a fund
with a compliance rule and a tracking limit, flows, straight-through and four-eyes funds).
The nightly side is ``run_nightly`` on PostgreSQL; between nights every proposal is approved
(two people where four eyes apply), the next date's folder gets the desk's executions.csv
filling every order, and its positions, cash and lots are written as the previous date's
after the approved trades, computed from the warehouse's rows. The
replay (``rebalance simulate``) runs the same dates from the first date's book. Each night's
fund statuses, triggers, NAVs, proposals and trades must be the same.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from conftest import write_executions

from rebalance_core.schema import APPROVED, PENDING, PENDING_SECOND
from rebalance_pipeline import sample, steps, warehouse
from rebalance_pipeline.simulate import run_simulation

START = dt.date(2014, 3, 3)
NIGHTS = 4


def _q(engine, sql: str, **params) -> pd.DataFrame:
    with engine.connect() as conn:
        return warehouse.read_frame(conn, sql, params)


def _approve_everything(engine, as_of: dt.date) -> list[str]:
    """Every proposal of the night approved (a second person where four eyes apply); the
    approved proposals' ids."""
    for stage, by in ((PENDING, "alice"), (PENDING_SECOND, "bob")):
        pending = _q(engine, "SELECT proposal_id FROM rebalance.proposal WHERE as_of_date = :d AND status = :s",
                     d=as_of, s=stage)["proposal_id"]
        for proposal_id in pending:
            warehouse.decide(engine, proposal_id, APPROVED, by)
    approved = _q(engine, "SELECT proposal_id FROM rebalance.proposal WHERE as_of_date = :d AND status = :s",
                  d=as_of, s=APPROVED)["proposal_id"]
    return approved.tolist()


def _book_after(engine, landing, as_of: dt.date, next_day: dt.date) -> None:
    """Write ``next_day``'s positions, cash and tax lots: ``as_of``'s after its approved trades
    (cash in the base currency, USD: notional and costs paid, the day's flows and cash
    creations, fund_summary.flow, received after the close; sold lots closed, a lot per buy)."""
    folder, new = landing / as_of.isoformat(), landing / next_day.isoformat()
    positions = pd.read_csv(folder / "positions.csv", dtype={"fund_id": str, "security_id": str})
    cash = pd.read_csv(folder / "cash.csv", dtype={"fund_id": str})
    lots = pd.read_csv(folder / "tax_lots.csv", dtype={"fund_id": str, "security_id": str, "lot_id": str})
    trades = _q(engine, "SELECT p.fund_id, t.security_id, t.side, t.quantity::float8 AS quantity, "
                        "t.price::float8 AS price, t.notional::float8 AS notional, t.est_cost::float8 AS est_cost "
                        "FROM rebalance.proposal_trade t JOIN rebalance.proposal p USING (proposal_id) "
                        "WHERE p.as_of_date = :d AND p.status = 'approved'", d=as_of)
    closed = _q(engine, "SELECT p.fund_id, l.security_id, l.lot_id, l.quantity::float8 AS sold "
                        "FROM rebalance.proposal_trade_lot l JOIN rebalance.proposal p USING (proposal_id) "
                        "WHERE p.as_of_date = :d AND p.status = 'approved'", d=as_of)
    flows = _q(engine, "SELECT fund_id, flow::float8 AS amount FROM rebalance.fund_summary "
               "WHERE as_of_date = :d AND flow IS NOT NULL", d=as_of)

    sign = np.where(trades["side"] == "BUY", 1.0, -1.0)
    moved = pd.concat([positions[["fund_id", "security_id", "quantity"]],
                       trades.assign(quantity=sign * trades["quantity"])[["fund_id", "security_id", "quantity"]]])
    positions = moved.groupby(["fund_id", "security_id"], as_index=False)["quantity"].sum()
    positions = positions[positions["quantity"].abs() > 1e-9]
    spent = trades.assign(amount=-(sign * trades["notional"] + trades["est_cost"]))[["fund_id", "amount"]]
    cash = pd.concat([cash[["fund_id", "amount"]], spent, flows]).groupby("fund_id", as_index=False)["amount"].sum()

    key = ["fund_id", "security_id", "lot_id"]
    lots = lots.merge(closed.groupby(key, as_index=False)["sold"].sum(), on=key, how="left")
    lots["quantity"] = lots["quantity"] - lots["sold"].fillna(0.0)
    buys = trades[trades["side"] == "BUY"]
    opened = pd.DataFrame({"fund_id": buys["fund_id"], "security_id": buys["security_id"],
                           "lot_id": f"SIM-{as_of:%Y%m%d}", "quantity": buys["quantity"], "unit_cost": buys["price"],
                           "acquired_date": as_of.isoformat()})
    lots = pd.concat([lots[lots["quantity"] > 1e-9].drop(columns="sold"), opened], ignore_index=True)

    stamp = next_day.isoformat()
    positions.assign(as_of_date=stamp)[["as_of_date", "fund_id", "security_id", "quantity"]].to_csv(
        new / "positions.csv", index=False)
    cash.assign(as_of_date=stamp, currency="USD")[["as_of_date", "fund_id", "currency", "amount"]].to_csv(
        new / "cash.csv", index=False)
    lots.to_csv(new / "tax_lots.csv", index=False)


def _night(engine, as_of: dt.date) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    summary = _q(engine, "SELECT fund_id, status, trigger, nav::float8 AS nav, proposal_id FROM rebalance.fund_summary "
                         "WHERE as_of_date = :d ORDER BY fund_id", d=as_of)
    proposals = _q(engine, "SELECT proposal_id, fund_id, trigger, turnover::float8 AS turnover, "
                           "est_cost::float8 AS est_cost FROM rebalance.proposal WHERE as_of_date = :d "
                           "ORDER BY proposal_id", d=as_of)
    trades = _q(engine, "SELECT t.proposal_id, t.security_id, t.side, t.quantity::float8 AS quantity, "
                        "t.notional::float8 AS notional, t.reason FROM rebalance.proposal_trade t "
                        "JOIN rebalance.proposal p USING (proposal_id) WHERE p.as_of_date = :d "
                        "ORDER BY 1, 2, 3", d=as_of)
    return summary, proposals, trades


def test_replayed_nights_equal_the_nightly_runs_when_every_proposal_is_executed(engine, landing, tmp_path):
    dates = sample.generate(landing, START, days=NIGHTS, funds=8, holdings=8, models=2, tax_lot_share=0.5,
                            flow_share=0.5, restriction_share=0.5)
    # In-kind creations move the basket, which this test's executor does not compute; the cash
    # orders (flows) and the baskets (the PCF) stay on.
    for day in dates:
        path = landing / day.isoformat() / "creations.csv"
        if path.exists():
            pd.read_csv(path).assign(settlement="cash").to_csv(path, index=False)

    nights = []
    for as_of, next_day in zip(dates, [*dates[1:], None], strict=True):
        steps.run_nightly(as_of, landing, engine, shards=2)
        nights.append(_night(engine, as_of))
        approved = _approve_everything(engine, as_of)
        if next_day is not None:
            _book_after(engine, landing, as_of, next_day)
            # The order desk reports every order filled at the proposed price the next day
            # (executions.csv): the fund state closes the approvals, as the replay assumes.
            write_executions(engine, landing / next_day.isoformat(), approved)

    result, _ = run_simulation(landing, dates[0], dates[-1], tmp_path / "sim", max_charts=0)
    seen = {"proposed": 0, "triggers": set()}
    for as_of, (summary, proposals, trades) in zip(dates, nights, strict=True):
        daily = result.daily[result.daily["as_of_date"] == as_of].sort_values("fund_id", ignore_index=True)
        assert daily["fund_id"].tolist() == summary["fund_id"].tolist(), as_of
        assert daily["status"].tolist() == summary["status"].tolist(), as_of
        assert daily["trigger"].fillna("").tolist() == summary["trigger"].fillna("").tolist(), as_of
        assert daily["nav"].to_numpy() == pytest.approx(summary["nav"].to_numpy(), rel=1e-9)

        replayed = result.proposals[result.proposals["as_of_date"] == as_of].sort_values("proposal_id",
                                                                                         ignore_index=True)
        assert replayed["proposal_id"].tolist() == proposals["proposal_id"].tolist(), as_of
        assert replayed["trigger"].tolist() == proposals["trigger"].tolist()
        for column in ("turnover", "est_cost"):
            assert replayed[column].to_numpy(dtype=float) == pytest.approx(proposals[column].to_numpy(), abs=1e-6)
        traded = result.trades[result.trades["as_of_date"] == as_of].sort_values(
            ["proposal_id", "security_id", "side"], ignore_index=True)
        assert traded[["proposal_id", "security_id", "side", "reason"]].values.tolist() == \
            trades[["proposal_id", "security_id", "side", "reason"]].values.tolist()
        for column in ("quantity", "notional"):
            assert traded[column].to_numpy(dtype=float) == pytest.approx(trades[column].to_numpy(), abs=1e-4)
        seen["proposed"] += len(proposals)
        seen["triggers"] |= set(proposals["trigger"])
    # The property is only tested if the nights did trade, for several reasons.
    assert seen["proposed"] >= NIGHTS and {"model_change", "index_event", "tax", "cash_flow"} <= seen["triggers"], seen
