"""`rebalance simulate` is the night over several dates: reference files merge by key as the
night merges them, the tracking trigger can fire (index levels and price history reach the
replay), and returns are time-weighted (a subscription is not performance)."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import pandas as pd
import pytest
from conftest import write
from frames import funds_frame
from test_simulation_replays_night import DATES, FUND, HOLDINGS, build_landing

from rebalance_core.calendar import sessions_between
from rebalance_core.simulation import simulate
from rebalance_pipeline.simulate import run_simulation


def test_a_one_row_funds_csv_changes_that_fund_only_in_the_replay(landing, tmp_path):
    build_landing(landing)
    # The second date brings a funds.csv of one row: FLOW's commission rises, nothing else changes.
    write(landing / DATES[1].isoformat(), "funds.csv", [{**FUND, "fund_id": "FLOW", "commission_bps": 50}])
    result, _ = run_simulation(landing, DATES[0], DATES[-1], tmp_path / "sim", max_charts=0)
    days = result.daily.groupby("fund_id")["as_of_date"].nunique()
    assert days.to_dict() == dict.fromkeys(HOLDINGS, 3)
    trades = result.trades[result.trades["as_of_date"] >= DATES[1]]
    bps = (trades.groupby("fund_id")["est_cost"].sum() / trades.groupby("fund_id")["notional"].sum() * 1e4).round(6)
    assert bps.to_dict() == {"FLOW": 50.0}

    # A replay that starts after the one-row version merges every earlier folder: all funds.
    later, _ = run_simulation(landing, DATES[-1], DATES[-1], tmp_path / "later", max_charts=0)
    assert set(later.daily["fund_id"]) == set(HOLDINGS)


def test_the_tracking_trigger_fires_in_a_replay(landing, tmp_path):
    """Thirty days of prices before the replayed date give the ex-ante tracking error its
    covariance; a fund off its targets beyond its max_tracking_error rebalances (trigger
    ``tracking``) in the replay as it would in the night."""
    days = sessions_between(dt.date(2014, 1, 2), dt.date(2014, 2, 28))[:31]
    rng = np.random.default_rng(3)
    path = np.exp(np.cumsum(rng.normal(0, 0.02, size=(len(days), 2)), axis=0)) * 100
    for i, day in enumerate(days):
        write(landing / day.isoformat(), "prices.csv",
              [{"as_of_date": day.isoformat(), "security_id": s, "close_price": round(float(path[i, j]), 4),
                "currency": "USD"} for j, s in enumerate(("EQ", "BD"))])
    last = days[-1]
    folder = landing / last.isoformat()
    write(folder, "positions.csv", [{"as_of_date": last.isoformat(), "fund_id": f, "security_id": "EQ",
                                     "quantity": 100} for f in ("TE", "NOTE")])
    write(folder, "cash.csv", [{"as_of_date": last.isoformat(), "fund_id": f, "currency": "USD", "amount": 0.0}
                               for f in ("TE", "NOTE")])
    calendar_fund = {**FUND, "policy": "calendar", "frequency": "annual", "abs_band": None, "allow_fractional": "true"}
    write(folder, "funds.csv", [{**calendar_fund, "fund_id": "TE", "max_tracking_error": 0.001},
                                {**calendar_fund, "fund_id": "NOTE", "max_tracking_error": None}])
    write(folder, "targets.csv", [{"fund_id": f, "security_id": s, "target_weight": 0.5}
                                  for f in ("TE", "NOTE") for s in ("EQ", "BD")])
    result, _ = run_simulation(landing, last, last, tmp_path / "sim", max_charts=0)
    assert result.proposals[["fund_id", "trigger"]].values.tolist() == [["TE", "tracking"]]


def test_a_subscription_is_not_performance():
    """Two funds on one book; one receives 10 % of its NAV in cash every day and invests it at
    target. Their time-weighted returns are the same (the old return, end NAV over start NAV,
    counted the subscriptions as gain)."""
    days = sessions_between(dt.date(2014, 1, 2), dt.date(2014, 1, 10))[:5]
    prices = {d: (100.0 * (1 + 0.03 * i), 100.0 * (1 - 0.01 * i)) for i, d in enumerate(days)}
    funds = funds_frame(*({"fund_id": f, "policy": "threshold", "abs_band": 0.001, "allow_fractional": True}
                          for f in ("FLOWING", "STILL")))
    targets = pd.DataFrame({"fund_id": np.repeat(["FLOWING", "STILL"], 2), "security_id": ["A", "B"] * 2,
                            "target_weight": 0.5})

    def load_day(as_of):
        a, b = prices[as_of]
        frames = {"prices": pd.DataFrame({"security_id": ["A", "B"], "close_price": [a, b], "currency": "USD"}),
                  "flows": pd.DataFrame({"fund_id": ["FLOWING"], "amount": [2_000.0 * (1.1 ** days.index(as_of))]})}
        if as_of == days[0]:
            frames.update(funds=funds, targets=targets)
        return frames

    positions = pd.DataFrame({"fund_id": np.repeat(["FLOWING", "STILL"], 2), "security_id": ["A", "B"] * 2,
                              "quantity": 100.0})
    cash = pd.DataFrame({"fund_id": ["FLOWING", "STILL"], "currency": "USD", "amount": 0.0})
    result = simulate(days, load_day, positions, cash)
    s = result.summary.set_index("fund_id")
    nav = result.daily.pivot(index="as_of_date", columns="fund_id", values="nav")
    assert nav["FLOWING"].iloc[-1] > 1.4 * nav["STILL"].iloc[-1]        # the flows did arrive
    assert s.loc["FLOWING", "return"] == pytest.approx(s.loc["STILL", "return"], abs=1e-12)
    # And the return is the book's: the on-target mix of A and B, chained.
    mix = np.prod([0.5 * prices[d][0] / prices[p][0] + 0.5 * prices[d][1] / prices[p][1]
                   for p, d in itertools.pairwise(days)]) - 1
    assert s.loc["STILL", "return"] == pytest.approx(mix, abs=1e-12)
    daily = result.daily.set_index(["fund_id", "as_of_date"])
    assert np.isnan(daily.loc[("FLOWING", days[0]), "daily_return"])
    assert daily.loc["FLOWING", "flow"].iloc[0] == pytest.approx(2_000.0)
