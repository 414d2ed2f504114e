"""`rebalance simulate` replays the nightly decision: same inputs, same proposals, trade for trade.

One landing folder of three dates with what the replay used to leave out: a holding priced
in EUR (fx_rates.csv), a fund with no cash.csv row, a flow it cannot absorb, asset-class
bands (asset_classes.csv), and a fund blocked by a bad price. Each date is run by the
nightly pipeline (real PostgreSQL, real GX) and simulated from that date's book; both must
propose the same trades. Then a multi-day replay carries the book forward correctly.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from conftest import write

from rebalance_pipeline import steps
from rebalance_pipeline.simulate import run_simulation

DATES = [dt.date(2014, 1, 2), dt.date(2014, 1, 3), dt.date(2014, 1, 6)]
PRICES = {"EQ": (100.0, 108.0, 95.0), "BD": (100.0, 99.0, 101.0), "EUX": (50.0, 56.0, 47.0),
          "GLD": (20.0, 19.0, 23.0), "BAD": (10.0, -1.0, 10.0)}
FUND = {"name": "x", "base_currency": "USD", "policy": "threshold", "frequency": "daily", "abs_band": 0.05,
        "rel_band": None, "rebalance_to": "target", "min_trade_notional": 0, "cash_buffer": 0,
        "allow_fractional": "false", "commission_bps": 2}
HOLDINGS = {  # fund: {security: quantity}, targets {security: weight}
    "EURF": ({"EQ": 500, "EUX": 1200}, {"EQ": 0.5, "EUX": 0.5}),
    "NOCASH": ({"EQ": 700, "BD": 300}, {"EQ": 0.6, "BD": 0.4}),
    "ZEROCASH": ({"EQ": 700, "BD": 300}, {"EQ": 0.6, "BD": 0.4}),
    "FLOW": ({"EQ": 600, "BD": 400}, {"EQ": 0.6, "BD": 0.4}),
    # Gold at 55 % of a 50 % target: outside the fund's 3 pp band, inside the commodity class's 20 pp.
    "CLS": ({"GLD": 2750}, {"GLD": 0.5, "CASH": 0.5}),
    "BLK": ({"EQ": 500, "BAD": 5000}, {"EQ": 0.5, "BAD": 0.5}),
}


def build_landing(root):
    for day, as_of in enumerate(DATES):
        folder = root / as_of.isoformat()
        d = as_of.isoformat()
        write(folder, "prices.csv", [{"as_of_date": d, "security_id": s, "close_price": p[day],
                                      "currency": "EUR" if s == "EUX" else "USD"} for s, p in PRICES.items()])
        write(folder, "positions.csv", [{"as_of_date": d, "fund_id": f, "security_id": s, "quantity": q}
                                        for f, (held, _) in HOLDINGS.items() for s, q in held.items()])
        write(folder, "cash.csv", [{"as_of_date": d, "fund_id": f, "currency": "USD",
                                    "amount": 45_000.0 if f == "CLS" else 1000.0}
                                   for f in HOLDINGS if f not in ("NOCASH", "ZEROCASH")]
              + [{"as_of_date": d, "fund_id": "ZEROCASH", "currency": "USD", "amount": 0.0},
                 {"as_of_date": d, "fund_id": "EURF", "currency": "EUR", "amount": 500.0}])
        write(folder, "fx_rates.csv", [{"currency": "EUR", "base_currency": "USD", "rate": (1.10, 1.12, 1.08)[day]}])
        write(folder, "flows.csv", [{"fund_id": "FLOW", "amount": (40_000.0, 0.0, -30_000.0)[day]}])
        if day == 0:
            write(folder, "funds.csv", [{**FUND, "fund_id": f, "abs_band": 0.03 if f == "CLS" else 0.05}
                                        for f in HOLDINGS])
            write(folder, "targets.csv", [{"fund_id": f, "security_id": s, "target_weight": w}
                                          for f, (_, targets) in HOLDINGS.items() for s, w in targets.items()])
            write(folder, "securities.csv", [{"security_id": s, "lot_size": 1, "asset_class": c, "tradable": "true"}
                                             for s, c in (("EQ", "equity"), ("EUX", "equity"), ("BD", "bond"),
                                                          ("GLD", "commodity"), ("BAD", "equity"))])
            # Commodities get a wide band: CLS's gold drift is judged against 20 pp, not 5.
            write(folder, "asset_classes.csv", [{"asset_class": "commodity", "abs_band": 0.20, "rel_band": None,
                                                 "half_spread_bps": 5}])
    return root


def _nightly(engine, as_of):
    with engine.connect() as conn:
        proposals = pd.read_sql(
            "SELECT proposal_id, fund_id, trigger FROM rebalance.proposal WHERE as_of_date = %(d)s "
            "AND status = 'pending_review' ORDER BY fund_id", conn, params={"d": as_of})
        trades = pd.read_sql(
            "SELECT t.proposal_id, t.security_id, t.side, t.quantity::float8 AS quantity, "
            "t.notional::float8 AS notional, t.est_cost::float8 AS est_cost, t.reason FROM rebalance.proposal_trade t "
            "JOIN rebalance.proposal p USING (proposal_id) WHERE p.as_of_date = %(d)s "
            "AND p.status = 'pending_review' ORDER BY 1, 2", conn, params={"d": as_of})
        status = pd.read_sql("SELECT fund_id, status FROM rebalance.fund_summary WHERE as_of_date = %(d)s",
                             conn, params={"d": as_of}).set_index("fund_id")["status"]
    return proposals, trades, status


def test_a_simulated_day_proposes_what_the_night_proposes(engine, landing, tmp_path):
    build_landing(landing)
    for as_of in DATES:
        steps.run_nightly(as_of, landing, engine, shards=2)
        night_proposals, night_trades, status = _nightly(engine, as_of)

        result, _ = run_simulation(landing, as_of, as_of, tmp_path / f"sim-{as_of}", max_charts=0)
        sim_proposals = result.proposals.sort_values("fund_id", ignore_index=True)
        sim_trades = result.trades.sort_values(["proposal_id", "security_id"], ignore_index=True)

        assert sim_proposals["proposal_id"].tolist() == night_proposals["proposal_id"].tolist(), as_of
        assert sim_proposals["trigger"].tolist() == night_proposals["trigger"].tolist()
        assert sim_trades[["proposal_id", "security_id", "side", "reason"]].equals(
            night_trades[["proposal_id", "security_id", "side", "reason"]])
        for column in ("quantity", "notional", "est_cost"):
            assert sim_trades[column].to_numpy() == pytest.approx(night_trades[column].to_numpy(), abs=1e-6)
        if as_of == DATES[1]:   # BAD's price is -1: the night blocks BLK, the replay does not trade it
            assert status["BLK"] == "blocked"
            assert "BLK" not in set(sim_proposals["fund_id"])

    # The case list is only a test if each case happened (and CLS stayed in its class band).
    with engine.connect() as conn:
        triggers = pd.read_sql("SELECT fund_id, trigger FROM rebalance.proposal", conn)
    assert {"EURF", "NOCASH", "FLOW"} <= set(triggers["fund_id"])
    assert "cash_flow" in set(triggers.loc[triggers["fund_id"] == "FLOW", "trigger"])
    assert "CLS" not in set(triggers["fund_id"])


def _all_proposed_funds(engine):
    with engine.connect() as conn:
        return pd.read_sql("SELECT DISTINCT fund_id FROM rebalance.proposal", conn)["fund_id"].tolist()


def test_a_replay_carries_the_book_in_base_currency(landing, tmp_path):
    build_landing(landing)
    result, _ = run_simulation(landing, DATES[0], DATES[-1], tmp_path / "sim", max_charts=0)
    daily = result.daily.set_index(["fund_id", "as_of_date"])["nav"]
    # A fund with a EUR holding has a NAV every day (fx applied), not NaN.
    assert daily.loc["EURF"].notna().all()
    # A fund without a cash.csv row keeps its sale proceeds exactly like its twin with a 0 row.
    assert daily.loc["NOCASH"].to_numpy() == pytest.approx(daily.loc["ZEROCASH"].to_numpy(), rel=1e-12)
    assert result.summary.set_index("fund_id").loc["NOCASH", "rebalances"] >= 1
    # EURF's EUR cash counts at the day's rate: on day 1, 1,000 USD + 500 EUR x 1.10.
    eurf = 500 * 100.0 + 1200 * 50.0 * 1.10 + 1000.0 + 500 * 1.10
    assert daily.loc[("EURF", DATES[0])] == pytest.approx(eurf)
