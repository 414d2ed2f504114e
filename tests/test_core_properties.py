"""Invariants of the proposal engine over random funds (hypothesis).

For every generated book: no short positions after trading; cash never negative, and at or
above the buffer whenever the proposal buys; whole lots (except closing a position);
no trade under the minimum notional; costs paid out of cash; turnover within its cap; and after-trade weights at their destination within
what lot rounding can explain.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from frames import AS_OF, funds_frame, run_engine
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

TOL = 1e-6


@st.composite
def books(draw):
    n_funds = draw(st.integers(1, 4))
    n_sec = draw(st.integers(1, 6))
    securities = [f"S{i}" for i in range(n_sec)]
    prices = draw(st.lists(st.floats(0.5, 500), min_size=n_sec, max_size=n_sec))
    lots = draw(st.lists(st.sampled_from([1.0, 1.0, 10.0, 100.0]), min_size=n_sec, max_size=n_sec))
    fund_rows, targets, positions, cash = [], [], [], []
    for f in range(n_funds):
        fid = f"F{f}"
        fund_rows.append({
            "fund_id": fid,
            "rebalance_to": draw(st.sampled_from(["target", "band"])),
            "abs_band": draw(st.sampled_from([0.0, 0.01, 0.05])),
            "rel_band": draw(st.sampled_from([np.nan, 0.25])),
            "min_trade_notional": draw(st.sampled_from([0.0, 100.0, 5000.0])),
            "cash_buffer": draw(st.sampled_from([0.0, 0.01, 0.05])),
            "allow_fractional": draw(st.booleans()),
            "commission_bps": draw(st.sampled_from([np.nan, 5.0])),
            "commission_per_share": draw(st.sampled_from([np.nan, 0.01])),
            "max_turnover": draw(st.sampled_from([np.nan, np.nan, 0.02])),
        })
        chosen = draw(st.lists(st.sampled_from(securities), min_size=1, max_size=n_sec, unique=True))
        raw = draw(st.lists(st.floats(0.05, 1.0), min_size=len(chosen), max_size=len(chosen)))
        cash_target = draw(st.sampled_from([0.0, 0.0, 0.03]))
        weights = np.array(raw) / sum(raw) * (1 - cash_target)
        targets += [{"fund_id": fid, "security_id": s, "target_weight": w} for s, w in zip(chosen, weights, strict=True)]
        if cash_target:
            targets.append({"fund_id": fid, "security_id": "CASH", "target_weight": cash_target})
        held = draw(st.lists(st.sampled_from(securities), min_size=0, max_size=n_sec, unique=True))
        for s in held:
            positions.append({"fund_id": fid, "security_id": s, "quantity": float(draw(st.integers(0, 20_000)))})
        # No micro-dollar funds: quantities under 1e-9 of a share are treated as no trade.
        cash.append({"fund_id": fid, "currency": "USD",
                     "amount": draw(st.one_of(st.just(0.0), st.floats(1.0, 200_000)))})
    return (
        funds_frame(*fund_rows),
        pd.DataFrame(targets),
        pd.DataFrame(positions, columns=["fund_id", "security_id", "quantity"]),
        pd.DataFrame({"security_id": securities, "close_price": prices, "currency": "USD"}),
        pd.DataFrame(cash),
        pd.DataFrame({"security_id": securities, "lot_size": lots, "tradable": True,
                      "half_spread_bps": draw(st.sampled_from([0.0, 10.0])),
                      "adv": draw(st.sampled_from([np.nan, 50_000.0]))}),
    )


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books())
def test_proposal_invariants(book):
    funds, targets, positions, prices, cash, securities = book
    drift, summary, _, proposals, trades = run_engine(funds, targets, positions, prices, cash, securities=securities)
    target(float(len(trades)), label="trades")   # steer the search towards books that trade
    # Every proposal carries its trades and no trade is without a proposal (none of either
    # when nothing drifted); then each invariant below holds over every trade there is.
    assert proposals.set_index("fund_id")["trade_count"].to_dict() == trades.groupby("fund_id").size().to_dict()
    assert set(trades["proposal_id"]) == set(proposals["proposal_id"])
    trades = trades.astype(dict.fromkeys(("quantity", "notional", "est_cost"), "float64"))   # typed when empty too
    rows = drift[drift["security_id"] != "CASH"].merge(
        trades[["fund_id", "security_id", "side", "quantity", "notional"]].rename(columns={"quantity": "traded"}),
        on=["fund_id", "security_id"], how="left")
    traded = rows["traded"].fillna(0.0)
    rows["after"] = rows["quantity"] + np.where(rows["side"] == "BUY", traded, -traded)
    assert (rows["after"] >= -TOL).all(), "a trade sells more than is held"

    policy = funds.set_index("fund_id")
    lot = trades["security_id"].map(securities.set_index("security_id")["lot_size"])
    fractional = trades["fund_id"].map(policy["allow_fractional"]).astype(bool)
    held = trades.merge(drift[["fund_id", "security_id", "quantity"]].rename(columns={"quantity": "held"}),
                        on=["fund_id", "security_id"], how="left")["held"]
    closes = (trades["side"] == "SELL") & np.isclose(trades["quantity"].to_numpy(), held.to_numpy())
    whole = np.isclose(trades["quantity"] / lot, np.round(trades["quantity"] / lot))
    assert (fractional | whole | closes).all(), "a quantity is not a whole number of lots"

    minimum = trades["fund_id"].map(policy["min_trade_notional"])
    assert (trades["notional"] >= minimum - TOL).all(), "a trade is under the minimum notional"

    nav = summary.set_index("fund_id")["nav"]
    capped = proposals["fund_id"].map(policy["max_turnover"])
    assert (proposals["turnover"] <= capped.fillna(np.inf) + 1e-9).all(), "turnover over its cap"
    assert (trades["est_cost"] >= 0).all()
    for p in proposals.itertuples():  # per-proposal checks (a test may loop; the engine does not)
        assert p.cash_after >= -TOL, "cash goes negative"
        buys = trades[(trades["fund_id"] == p.fund_id) & (trades["side"] == "BUY")]
        if len(buys):
            assert p.cash_after >= policy.loc[p.fund_id, "cash_buffer"] * nav[p.fund_id] - 1e-4, "buffer eaten"


@settings(deadline=None)
@given(books())
def test_unconstrained_target_funds_land_exactly_on_target(book):
    """Fractional, no minimum, no buffer, cash targets honoured: weights after = targets."""
    funds, targets, positions, prices, cash, securities = book
    funds = funds.assign(rebalance_to="target", allow_fractional=True, min_trade_notional=0.0, cash_buffer=0.0,
                         abs_band=0.0, rel_band=np.nan, commission_bps=np.nan, commission_per_share=np.nan,
                         max_turnover=np.nan)
    securities = securities.assign(half_spread_bps=0.0, adv=np.nan)
    drift, _, _, proposals, trades = run_engine(funds, targets, positions, prices, cash, securities=securities)
    after = drift[drift["security_id"] != "CASH"].merge(
        trades[["fund_id", "security_id", "weight_after"]], on=["fund_id", "security_id"], how="left")
    traded_funds = set(proposals["fund_id"])
    after = after[after["fund_id"].isin(traded_funds)]
    weight_after = after["weight_after"].fillna(after["current_weight"])
    assert np.allclose(weight_after, after["target_weight"], atol=1e-9)
    # The engine decided for the date it was given (not the machine's clock).
    assert set(drift["as_of_date"]) == {AS_OF} and set(proposals["as_of_date"]) <= {AS_OF}
