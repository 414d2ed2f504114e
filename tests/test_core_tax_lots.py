"""Tax-lot selection, realized gains and wash sales, hand-computed (as of 2014-01-03)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from rebalance_core.tax_lots import realize_gains, summarize_gains

AS_OF = dt.date(2014, 1, 3)
LOTS = pd.DataFrame([
    # lot, quantity, unit cost, acquired → held at 100 today
    {"lot_id": "L1", "quantity": 100.0, "unit_cost": 80.0, "acquired_date": dt.date(2012, 1, 3)},   # +20 long
    {"lot_id": "L2", "quantity": 100.0, "unit_cost": 120.0, "acquired_date": dt.date(2013, 10, 1)},  # −20 short
    {"lot_id": "L3", "quantity": 100.0, "unit_cost": 90.0, "acquired_date": dt.date(2013, 12, 20)},  # +10 short, 14 days
]).assign(fund_id="F", security_id="EQ")


def sell(quantity: float, method: str | None = None, lots: pd.DataFrame = LOTS):
    trades = pd.DataFrame([{"proposal_id": "P", "fund_id": "F", "security_id": "EQ", "side": "SELL",
                            "quantity": quantity, "price": 100.0}])
    funds = pd.DataFrame({"fund_id": ["F"], "tax_lot_method": [method]})
    return realize_gains(AS_OF, trades, lots, funds)


def test_highest_cost_first_by_default():
    # 150 sold: L2 100 × (100 − 120) = −2,000 short; then L3 50 × (100 − 90) = +500 short.
    trades, used = sell(150)
    t = trades.iloc[0]
    assert t["est_realized_gain"] == pytest.approx(-1_500)
    assert (t["est_realized_gain_short"], t["est_realized_gain_long"]) == pytest.approx((-1_500, 0))
    assert used[["lot_id", "quantity", "term"]].values.tolist() == [["L2", 100, "short"], ["L3", 50, "short"]]
    # A loss sale 14 days after buying L3: a wash sale.
    assert bool(t["wash_sale"])


def test_fifo_sells_the_oldest_lot_first():
    # L1 100 × 20 = +2,000 long; L2 50 × −20 = −1,000 short.
    t = sell(150, "fifo")[0].iloc[0]
    assert (t["est_realized_gain_long"], t["est_realized_gain_short"]) == pytest.approx((2_000, -1_000))
    assert not bool(t["wash_sale"])   # net gain: no loss to disallow


def test_min_gain_takes_losses_then_long_term_gains():
    # 250 sold: L2 (short loss) 100 → −2,000; then long-term gains before short-term:
    # L1 100 → +2,000 long; then L3 50 → +500 short. HIFO would have sold L3 before L1.
    trades, used = sell(250, "min_gain")
    assert used["lot_id"].tolist() == ["L2", "L1", "L3"]
    t = trades.iloc[0]
    assert (t["est_realized_gain_short"], t["est_realized_gain_long"]) == pytest.approx((-1_500, 2_000))


def test_buy_after_a_recent_loss_sale_is_flagged_and_totals_roll_up():
    trades = pd.DataFrame([
        {"proposal_id": "P", "fund_id": "F", "security_id": "EQ", "side": "SELL", "quantity": 100.0, "price": 100.0},
        {"proposal_id": "P", "fund_id": "F", "security_id": "BD", "side": "BUY", "quantity": 10.0, "price": 50.0},
    ])
    recent = pd.DataFrame({"fund_id": ["F"], "security_id": ["BD"]})
    funds = pd.DataFrame({"fund_id": ["F"], "tax_lot_method": ["fifo"]})
    out, _ = realize_gains(AS_OF, trades, LOTS, funds, recent_loss_sales=recent)
    assert out.set_index("security_id")["wash_sale"].to_dict() == {"EQ": False, "BD": True}
    proposals = summarize_gains(pd.DataFrame({"proposal_id": ["P"]}), out)
    p = proposals.iloc[0]
    assert p["est_realized_gain"] == pytest.approx(2_000) and p["wash_sale_trades"] == 1


def test_without_lots_gains_are_unknown_not_zero():
    trades, used = sell(10, lots=LOTS.iloc[0:0])
    assert pd.isna(trades.iloc[0]["est_realized_gain"]) and used.empty


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(deadline=None)
@given(
    costs=st.lists(st.floats(1, 300), min_size=1, max_size=6),
    sizes=st.lists(st.integers(1, 500), min_size=6, max_size=6),
    ages=st.lists(st.integers(0, 900), min_size=6, max_size=6),
    sold=st.integers(1, 2000),
    price=st.floats(1, 300),
    method=st.sampled_from(["hifo", "fifo", "min_gain"]),
)
def test_gains_are_the_chosen_lots_arithmetic(costs, sizes, ages, sold, price, method):
    lots = pd.DataFrame({
        "fund_id": "F", "security_id": "EQ", "lot_id": [f"L{i}" for i in range(len(costs))],
        "quantity": [float(q) for q in sizes[: len(costs)]], "unit_cost": costs,
        "acquired_date": [AS_OF - dt.timedelta(days=a) for a in ages[: len(costs)]],
    })
    trades = pd.DataFrame([{"proposal_id": "P", "fund_id": "F", "security_id": "EQ", "side": "SELL",
                            "quantity": float(sold), "price": price}])
    out, used = realize_gains(AS_OF, trades, lots, pd.DataFrame({"fund_id": ["F"], "tax_lot_method": [method]}))
    assert used["quantity"].sum() == pytest.approx(min(sold, lots["quantity"].sum()))
    merged = used.merge(lots[["lot_id", "quantity"]].rename(columns={"quantity": "held"}), on="lot_id")
    assert (merged["quantity"] <= merged["held"] + 1e-9).all()
    arithmetic = (used["quantity"] * (price - used["unit_cost"])).sum()
    if sold <= lots["quantity"].sum():
        assert out.iloc[0]["est_realized_gain"] == pytest.approx(arithmetic, abs=1e-6)
    else:   # not all of the sale is in lots on file: unknown, not a partial figure
        assert pd.isna(out.iloc[0]["est_realized_gain"])
    assert used["realized_gain"].sum() == pytest.approx(arithmetic, abs=1e-6)
    if method == "hifo" and len(used) < len(lots):
        untouched = lots[~lots["lot_id"].isin(used["lot_id"])]
        assert untouched["unit_cost"].max() <= used["unit_cost"].min() + 1e-9


def test_selling_the_only_recent_lot_at_a_loss_is_not_a_wash_sale():
    # The lot bought 14 days ago is the one sold, entirely: no replacement shares remain.
    trades, _ = sell(100, lots=LOTS[LOTS["lot_id"] == "L2"].assign(acquired_date=dt.date(2013, 12, 20)))
    assert trades.iloc[0]["est_realized_gain"] == pytest.approx(-2_000)
    assert not bool(trades.iloc[0]["wash_sale"])


def test_a_sale_larger_than_the_lots_on_file_has_an_unknown_gain():
    trades, used = sell(350)   # 300 shares in lots
    assert pd.isna(trades.iloc[0]["est_realized_gain"]) and used["quantity"].sum() == 300
