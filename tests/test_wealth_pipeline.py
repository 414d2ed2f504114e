"""Restrictions and tax-loss harvesting through the nightly run: real PostgreSQL, real GX.

One harvesting account (H) lives through a harvest, its approval, a blocked rebuy inside the
wash-sale window and the swap back after it; a restricted account (R) sells what it
excludes; an account with a bad restriction row (BAD) is blocked with the reason.
The arithmetic of H's harvest is written out in tests/test_core_wealth_rules.py.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from conftest import record_export, write

from rebalance_pipeline import steps
from rebalance_pipeline.warehouse import decide, read_frame

D0 = dt.date(2014, 1, 6)
D21 = D0 + dt.timedelta(days=21)   # inside the 30 days after the harvest
D31 = D0 + dt.timedelta(days=31)   # the first day the swap back may happen
FUND = {"name": "x", "base_currency": "USD", "policy": "threshold", "frequency": "daily", "abs_band": 0.05,
        "rel_band": None, "rebalance_to": "target", "min_trade_notional": 0, "cash_buffer": 0,
        "allow_fractional": "false"}


def q(engine, sql, **params) -> pd.DataFrame:
    """Rows with numbers as floats and NULL text as ''."""
    with engine.connect() as conn:
        frame = read_frame(conn, sql, params)
    for column in frame.columns:
        if column in ("quantity", "est_harvested_loss", "realized_gain", "target_weight"):
            frame[column] = frame[column].astype(float)
        elif column in ("harvest_of", "restriction_note", "notes"):
            frame[column] = frame[column].astype(object).where(frame[column].notna(), "")
    return frame


def day(root, as_of, prices, books, lots, cash=None, reference=True):
    folder = root / as_of.isoformat()
    d = as_of.isoformat()
    write(folder, "prices.csv", [{"as_of_date": d, "security_id": s, "close_price": p, "currency": "USD"}
                                 for s, p in prices.items()])
    write(folder, "positions.csv", [{"as_of_date": d, "fund_id": f, "security_id": s, "quantity": n}
                                    for f, held in books.items() for s, n in held.items()])
    write(folder, "cash.csv", [{"as_of_date": d, "fund_id": f, "currency": "USD", "amount": (cash or {}).get(f, 0.0)}
                               for f in books])
    write(folder, "tax_lots.csv", [{"fund_id": f, "security_id": s, "lot_id": i, "quantity": n, "unit_cost": c,
                                    "acquired_date": a} for f, s, i, n, c, a in lots])
    if reference:
        write(folder, "funds.csv", [
            {"fund_id": "H", **FUND, "harvest_loss_pct": 0.10, "harvest_min_loss": 500, "commission_bps": 10},
            {"fund_id": "R", **FUND, "harvest_loss_pct": None, "harvest_min_loss": None, "commission_bps": None},
            {"fund_id": "BAD", **FUND, "harvest_loss_pct": None, "harvest_min_loss": None, "commission_bps": None}])
        write(folder, "targets.csv", [{"fund_id": f, "security_id": s, "target_weight": 0.5}
                                      for f in ("H", "R", "BAD") for s in ("X", "Z")])
        write(folder, "substitutes.csv", [{"security_id": "X", "substitute_id": "W", "rank": 1},
                                          {"security_id": "X", "substitute_id": "Y", "rank": 2}])
        write(folder, "restrictions.csv", [
            {"fund_id": "H", "security_id": "W", "rule": "no_buy", "substitute_id": None},
            {"fund_id": "R", "security_id": "X", "rule": "exclude", "substitute_id": "Y"},
            {"fund_id": "BAD", "security_id": "X", "rule": "no_trade", "substitute_id": None}])


OLD_LOTS = [("H", "X", "L1", 60, 100.0, "2013-01-10"), ("H", "X", "L2", 40, 85.0, "2013-06-01"),
            ("H", "Z", "L3", 80, 90.0, "2012-06-01")]


def test_harvest_approval_no_rebuy_in_the_window_and_the_swap_back(engine, landing):
    prices = {"X": 80.0, "Z": 100.0, "Y": 50.0, "W": 40.0}
    books = {"H": {"X": 100, "Z": 80}, "R": {"X": 100, "Z": 80}, "BAD": {"X": 100, "Z": 80}}
    day(landing, D0, prices, books, OLD_LOTS)
    steps.run_nightly(D0, landing, engine)

    summary = q(engine, "SELECT fund_id, status, trigger, blocked_reason FROM rebalance.fund_summary "
                        "ORDER BY fund_id").set_index("fund_id")
    assert summary.loc["BAD", "status"] == "blocked"
    assert "restrictions.csv row 4: rule 'no_trade' is not one of no_buy, no_sell, exclude, none" in \
        summary.loc["BAD", "blocked_reason"]
    # R's excluded X has no target left, so it breaches: the bands trigger R, the trades say why.
    assert summary.loc["H", "trigger"] == "tax" and summary.loc["R", "trigger"] == "threshold"
    proposals = q(engine, "SELECT fund_id, proposal_id, est_harvested_loss, restriction_note, tax_trade_count "
                          "FROM rebalance.proposal ORDER BY fund_id").set_index("fund_id")
    assert float(proposals.loc["H", "est_harvested_loss"]) == -1200.0
    assert proposals.loc["R", "restriction_note"] == "exclude X: sold"
    trades = q(engine, "SELECT p.fund_id, t.security_id, t.side, t.quantity, t.reason, t.harvest_of "
                       "FROM rebalance.proposal_trade t JOIN rebalance.proposal p USING (proposal_id) "
                       "ORDER BY 1, 2")
    assert trades.values.tolist() == [
        ["H", "X", "SELL", 60, "tax", ""], ["H", "Y", "BUY", 95, "tax", "X"],
        ["R", "X", "SELL", 100, "restriction", ""], ["R", "Y", "BUY", 160, "restriction", ""]]
    lots = q(engine, "SELECT lot_id, realized_gain, term FROM rebalance.proposal_trade_lot")
    assert lots.values.tolist() == [["L1", -1200, "short"]]

    # A rerun finds the same proposals and doubles nothing.
    steps.run_nightly(D0, landing, engine)
    assert q(engine, "SELECT count(*) AS n FROM rebalance.proposal")["n"].iloc[0] == 2

    harvest = proposals.loc["H", "proposal_id"]
    # What ops read: the CLI's proposal page and the HTML report.
    from typer.testing import CliRunner

    from rebalance_pipeline.cli import app
    shown = CliRunner().invoke(app, ["show", harvest], env={"COLUMNS": "160"}, catch_exceptions=False).output
    assert "tax-loss harvest: -1,200.00 USD of losses realized (2 tax trades)" in shown
    assert "tax (for X)" in shown
    restricted = CliRunner().invoke(app, ["show", proposals.loc["R", "proposal_id"]], env={"COLUMNS": "160"},
                                    catch_exceptions=False).output
    assert "restrictions: exclude X: sold" in restricted
    from rebalance_pipeline.reporting import build_drift_report
    report = build_drift_report(engine, D0, landing.parent / "reports").read_text()
    assert "Tax-loss harvesting" in report and "-1,200.00" in report

    decide(engine, harvest, "approved", "ops.alice")
    record_export(engine, harvest, f"{D0.isoformat()}T21:00:00+00:00")

    # Day 21: executed (X 40, Y 95), Z up to 150 so the fund breaches and buys the X/Y pair
    # up to its target: buying X would wash the harvest's loss, so only Y is bought.
    lots_after = [("H", "X", "L2", 40, 85.0, "2013-06-01"), ("H", "Y", "H1", 95, 50.0, D0.isoformat()),
                  ("H", "Z", "L3", 80, 90.0, "2012-06-01")]
    books_after = {"H": {"X": 40, "Y": 95, "Z": 80}}
    day(landing, D21, {**prices, "Z": 150.0}, books_after, lots_after, cash={"H": 40.45}, reference=False)
    steps.run_nightly(D21, landing, engine)
    trades = q(engine, "SELECT t.security_id, t.side, t.reason, t.wash_sale FROM rebalance.proposal_trade t "
                       "WHERE t.as_of_date = :d ORDER BY 1", d=D21)
    assert ("X", "BUY") not in {(s, side) for s, side, *_ in trades.values.tolist()}
    assert ("Y", "BUY") in {(s, side) for s, side, *_ in trades.values.tolist()}
    assert not trades["wash_sale"].any()
    notes = q(engine, "SELECT notes FROM rebalance.proposal WHERE as_of_date = :d", d=D21)["notes"].iloc[0]
    assert "not bought: X (loss sale in the last 30 days)" in notes
    # The pair shares X's target by value: X 3,200, Y 4,750 of the pair's 7,950.
    drift = q(engine, "SELECT security_id, target_weight FROM rebalance.fund_drift WHERE as_of_date = :d AND fund_id = 'H'",
              d=D21).set_index("security_id")["target_weight"].astype(float)
    assert drift["X"] == pytest.approx(0.5 * 3200 / 7950) and drift["Y"] == pytest.approx(0.5 * 4750 / 7950)

    # Day 31, Y below its cost (no short-term gain), Z back at 100: the swap back.
    day(landing, D31, {**prices, "Y": 49.0}, books_after, lots_after, cash={"H": 40.45}, reference=False)
    steps.run_nightly(D31, landing, engine)
    swap = q(engine, "SELECT t.security_id, t.side, t.quantity, t.reason, t.harvest_of "
                     "FROM rebalance.proposal_trade t WHERE t.as_of_date = :d ORDER BY 1", d=D31)
    assert swap.values.tolist() == [["X", "BUY", 58, "tax", ""], ["Y", "SELL", 95, "tax", "X"]]
    assert q(engine, "SELECT trigger FROM rebalance.proposal WHERE as_of_date = :d", d=D31)["trigger"].iloc[0] == "tax"


def test_open_harvests_come_from_approved_history_only(engine, landing):
    """A harvest that nobody approved opens no pair: the next night still sees Y as an
    untargeted holding (and the pending proposal is superseded)."""
    prices = {"X": 80.0, "Z": 100.0, "Y": 50.0, "W": 40.0}
    day(landing, D0, prices, {"H": {"X": 100, "Z": 80}}, OLD_LOTS)
    steps.run_nightly(D0, landing, engine)
    with engine.connect() as conn:
        from rebalance_pipeline import history
        assert history.open_harvests(conn, D21).empty
    harvest = q(engine, "SELECT proposal_id FROM rebalance.proposal")["proposal_id"].iloc[0]
    decide(engine, harvest, "approved", "ops.alice")
    with engine.connect() as conn:
        from rebalance_pipeline import history
        pairs = history.open_harvests(conn, D21)
    assert pairs.values.tolist() == [["H", "X", "Y", D0]]


def test_simulate_replays_harvests_and_compares_thresholds(engine, landing, tmp_path):
    """The replay decides with the nightly function: the same harvest on D0 (same proposal
    id), no rebuy of X inside the window; a 25 % threshold harvests nothing (80 > 75)."""
    from rebalance_pipeline.simulate import run_simulation

    prices = {"X": 80.0, "Z": 100.0, "Y": 50.0, "W": 40.0}
    day(landing, D0, prices, {"H": {"X": 100, "Z": 80}}, OLD_LOTS)
    for later, moved in ((D21, {"Z": 150.0}), (D31, {"Y": 49.0})):
        folder = landing / later.isoformat()
        write(folder, "prices.csv", [{"as_of_date": later.isoformat(), "security_id": s, "close_price": p,
                                      "currency": "USD"} for s, p in {**prices, **moved}.items()])
    steps.run_nightly(D0, landing, engine)
    nightly = q(engine, "SELECT proposal_id FROM rebalance.proposal WHERE fund_id = 'H'")["proposal_id"].iloc[0]

    result, _ = run_simulation(landing, D0, D31, tmp_path / "sim", max_charts=0)
    assert nightly in set(result.proposals["proposal_id"])
    h = result.summary.set_index("fund_id").loc["H"]
    assert h["harvested_loss"] == pytest.approx(-1200.0)
    later_buys = result.trades[(result.trades["fund_id"] == "H") & (result.trades["side"] == "BUY")
                               & (pd.to_datetime(result.trades["as_of_date"]).dt.date == D21)]
    assert "X" not in set(later_buys["security_id"]) and "Y" in set(later_buys["security_id"])

    strict, _ = run_simulation(landing, D0, D31, tmp_path / "strict", max_charts=0,
                               fund_settings={"harvest_loss_pct": "0.25"})
    assert strict.summary.set_index("fund_id").loc["H", "harvested_loss"] == 0.0


def test_the_review_view_shows_harvests_and_restrictions(engine, landing):
    from review_testclient import browser, review_app

    prices = {"X": 80.0, "Z": 100.0, "Y": 50.0, "W": 40.0}
    day(landing, D0, prices, {"H": {"X": 100, "Z": 80}, "R": {"X": 100, "Z": 80}}, OLD_LOTS)
    steps.run_nightly(D0, landing, engine)
    ids = q(engine, "SELECT fund_id, proposal_id FROM rebalance.proposal").set_index("fund_id")["proposal_id"]
    with browser(review_app(), "viewer") as client:
        harvest = client.get(f"/rebalance/proposals/{ids['H']}").text
        restricted = client.get(f"/rebalance/proposals/{ids['R']}").text
    assert 'id="harvested-loss"' in harvest and "-1,200.00" in harvest and "tax (for X)" in harvest
    assert "Restrictions: exclude X: sold" in restricted
