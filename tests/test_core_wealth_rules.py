"""Restrictions and tax-loss harvesting in the pure core, with the arithmetic written out."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from frames import AS_OF, book, combine, funds_frame

from rebalance_core.night import NightInputs, decide_night

D0 = dt.date(2014, 1, 3)


def night(funds, targets, positions, prices, cash, as_of=AS_OF, **extra) -> tuple:
    decision = decide_night(as_of, NightInputs(prices=prices, positions=positions, cash=cash, funds=funds,
                                               targets=targets, **extra))
    trades = {(t.security_id, t.side): t for t in decision.trades.itertuples()}
    return decision, trades


def restrictions(*rows):
    return pd.DataFrame(rows, columns=["fund_id", "security_id", "rule", "substitute_id"])


# ---------------------------------------------------------------- restrictions
def test_exclude_with_a_substitute_sells_it_and_buys_the_substitute_whatever_the_policy():
    # A and B 50/50 and on target: nothing would trade. Excluding A (substitute C at 50):
    # its 0.5 target goes to C, so A's 50 shares (5,000) are sold and C's 100 bought.
    targets, positions, prices, cash = book("F", {"A": (50, 100, 0.5), "B": (50, 100, 0.5), "C": (0, 50, 0)})
    funds = funds_frame({"fund_id": "F", "policy": "calendar", "frequency": "annual"})
    decision, trades = night(funds, targets, positions, prices, cash,
                             restrictions=restrictions(("F", "A", "exclude", "C")))
    assert decision.summary.set_index("fund_id").loc["F", "trigger"] == "restriction"
    assert set(trades) == {("A", "SELL"), ("C", "BUY")}
    assert trades[("A", "SELL")].quantity == 50 and trades[("C", "BUY")].quantity == 100
    assert {t.reason for t in trades.values()} == {"restriction"}
    note = decision.proposals.iloc[0]["restriction_note"]
    assert note == "exclude A: sold"
    # The drift rows show the targets the fund may follow: C has A's 0.5, A none.
    drift = decision.drift.set_index("security_id")["target_weight"]
    assert drift["C"] == 0.5 and drift["A"] == 0.0


def test_exclude_without_a_substitute_spreads_its_target_over_the_others_in_proportion():
    # A 0.5, B 0.3, D 0.2; A excluded: B gets 0.3 + 0.5 × 0.3/0.5 = 0.6, D 0.2 + 0.5 × 0.2/0.5 = 0.4.
    # NAV 10,000 at 100 a share: sell A 50, buy B 30 (3,000 → 6,000) and D 20 (2,000 → 4,000).
    targets, positions, prices, cash = book("F", {"A": (50, 100, 0.5), "B": (30, 100, 0.3), "D": (20, 100, 0.2)})
    funds = funds_frame({"fund_id": "F"})
    decision, trades = night(funds, targets, positions, prices, cash,
                             restrictions=restrictions(("F", "A", "exclude", None)))
    assert {k: t.quantity for k, t in trades.items()} == {("A", "SELL"): 50, ("B", "BUY"): 30, ("D", "BUY"): 20}
    target = decision.drift.set_index("security_id")["target_weight"]
    assert target["B"] == pytest.approx(0.6) and target["D"] == pytest.approx(0.4)


def test_an_excluded_security_not_held_only_moves_the_targets():
    targets, positions, prices, cash = book("F", {"A": (0, 100, 0.5), "B": (100, 100, 0.5)})
    funds = funds_frame({"fund_id": "F", "policy": "calendar", "frequency": "annual"})
    decision, trades = night(funds, targets, positions, prices, cash,
                             restrictions=restrictions(("F", "A", "exclude", None)))
    assert trades == {} and decision.summary.iloc[0]["trigger"] is None


def test_no_buy_keeps_an_underweight_holding_and_the_others_share_the_rest():
    # B is far below target and may not be bought: it stays at 1,000 (10 %); A and D share
    # the other 90 % in their target ratio 0.4 : 0.2, so A → 60 %, D → 30 %.
    targets, positions, prices, cash = book("F", {"A": (70, 100, 0.4), "B": (10, 100, 0.4), "D": (20, 100, 0.2)})
    funds = funds_frame({"fund_id": "F"})
    decision, trades = night(funds, targets, positions, prices, cash,
                             restrictions=restrictions(("F", "B", "no_buy", None)))
    assert ("B", "BUY") not in trades
    assert trades[("A", "SELL")].quantity == 10 and trades[("D", "BUY")].quantity == 10
    assert decision.proposals.iloc[0]["restriction_note"] == "no_buy B: not bought (its target asks to)"
    assert trades[("A", "SELL")].reason == "band_breach" and trades[("D", "BUY")].reason == "restriction"


def test_no_sell_keeps_an_overweight_holding():
    # A is 8,000 of 12,000 (67 %) against 50 % and may not be sold: it stays, and B takes
    # what is left of the fund (1 − 8,000/12,000 = 1/3 = 4,000): the 2,000 of cash buys 20 B.
    targets, positions, prices, cash = book("F", {"A": (80, 100, 0.5), "B": (20, 100, 0.5)}, cash=2000.0)
    funds = funds_frame({"fund_id": "F"})
    decision, trades = night(funds, targets, positions, prices, cash,
                             restrictions=restrictions(("F", "A", "no_sell", None)))
    assert set(trades) == {("B", "BUY")} and trades[("B", "BUY")].quantity == 20
    assert decision.proposals.iloc[0]["restriction_note"] == "no_sell A: not sold (its target asks to)"


def test_restrictions_of_one_fund_leave_another_alone():
    a = book("F", {"A": (80, 100, 0.5), "B": (20, 100, 0.5)})
    b = book("G", {"A": (80, 100, 0.5), "B": (20, 100, 0.5)})
    targets, positions, prices, cash = combine(a, b)
    funds = funds_frame({"fund_id": "F"}, {"fund_id": "G"})
    decision, _ = night(funds, targets, positions, prices, cash,
                        restrictions=restrictions(("F", "A", "no_sell", None)))
    g = decision.trades[decision.trades["fund_id"] == "G"].set_index("security_id")
    assert g.loc["A", "side"] == "SELL" and g.loc["A", "quantity"] == 30


# ---------------------------------------------------------------- tax-loss harvesting
HARVEST_FUND = {"fund_id": "H", "policy": "threshold", "harvest_loss_pct": 0.10, "harvest_min_loss": 500.0,
                "commission_bps": 10.0}
SUBSTITUTES = pd.DataFrame([("X", "W", 0), ("X", "Y", 1)], columns=["security_id", "substitute_id", "rank"])


def harvest_book(extra_lots=(), x_price=80.0):
    # X: 100 shares at 80 = 8,000; Z: 80 at 100 = 8,000; NAV 16,000 on a 50/50 target: in band.
    targets, positions, prices, cash = book("H", {"X": (100, x_price, 0.5), "Z": (80, 100, 0.5), "Y": (0, 50, 0),
                                                  "W": (0, 40, 0)})
    lots = pd.DataFrame([("H", "X", "L1", 60.0, 100.0, dt.date(2013, 1, 10)),
                         ("H", "X", "L2", 40.0, 85.0, dt.date(2013, 6, 1)),
                         ("H", "Z", "L3", 80.0, 90.0, dt.date(2012, 6, 1)), *extra_lots],
                        columns=["fund_id", "security_id", "lot_id", "quantity", "unit_cost", "acquired_date"])
    return targets, positions, prices, cash, lots


def test_a_harvest_sells_the_qualifying_lots_and_buys_the_first_substitute_it_may_buy():
    """At 80, lot L1 (cost 100) qualifies: 80 <= 100 × (1 − 0.10) = 90; L2 (cost 85) does not:
    80 > 76.5. L1 loses 60 × (80 − 100) = −1,200, beyond the 500 minimum. Sale: 60 × 80 =
    4,800, commission 10 bp = 4.80, proceeds 4,795.20. W (rank 0) may not be bought (no_buy),
    so Y (rank 1) at 50: 95 shares cost 4,750 + 4.75 = 4,754.75 <= 4,795.20; 96 would cost
    4,804.80. The sale is short-term (held 358 days): est_harvested_loss = −1,200."""
    targets, positions, prices, cash, lots = harvest_book()
    decision, trades = night(funds_frame(HARVEST_FUND), targets, positions, prices, cash, tax_lots=lots,
                             substitutes=SUBSTITUTES, restrictions=restrictions(("H", "W", "no_buy", None)))
    assert set(trades) == {("X", "SELL"), ("Y", "BUY")}
    sell, buy = trades[("X", "SELL")], trades[("Y", "BUY")]
    assert sell.quantity == 60 and sell.reason == "tax" and sell.est_cost == pytest.approx(4.80)
    assert buy.quantity == 95 and buy.reason == "tax" and buy.harvest_of == "X"
    assert buy.est_cost == pytest.approx(4.75)
    assert sell.est_realized_gain == pytest.approx(-1200) and sell.est_realized_gain_short == pytest.approx(-1200)
    assert list(decision.lots["lot_id"]) == ["L1"]
    proposal = decision.proposals.iloc[0]
    assert proposal["trigger"] == "tax" and proposal["est_harvested_loss"] == pytest.approx(-1200)
    assert proposal["tax_trade_count"] == 2 and proposal["wash_sale_trades"] == 0
    assert proposal["cash_after"] == pytest.approx(4795.20 - 4754.75)


def test_no_harvest_when_the_loss_is_below_the_minimum_or_the_substitutes_cannot_be_bought():
    targets, positions, prices, cash, lots = harvest_book(x_price=89.0)   # L1 loses 60 × 11 = 660
    small = funds_frame({**HARVEST_FUND, "harvest_min_loss": 700.0})
    _, trades = night(small, targets, positions, prices, cash, tax_lots=lots, substitutes=SUBSTITUTES)
    assert trades == {}
    _, trades = night(funds_frame(HARVEST_FUND), targets, positions, prices, cash, tax_lots=lots,
                      substitutes=SUBSTITUTES, restrictions=restrictions(("H", "W", "no_buy", None),
                                                                         ("H", "Y", "exclude", None)))
    assert trades == {}


def test_no_harvest_when_a_lot_was_bought_ten_days_ago():
    recent = ("H", "X", "L9", 5.0, 81.0, AS_OF - dt.timedelta(days=10))
    targets, positions, prices, cash, lots = harvest_book(extra_lots=[recent])
    positions.loc[positions["security_id"] == "X", "quantity"] = 105.0
    _, trades = night(funds_frame(HARVEST_FUND), targets, positions, prices, cash, tax_lots=lots,
                      substitutes=SUBSTITUTES)
    assert trades == {}


def test_no_harvest_into_a_substitute_sold_at_a_loss_in_the_last_30_days():
    targets, positions, prices, cash, lots = harvest_book()
    loss_sales = pd.DataFrame([("H", "W")], columns=["fund_id", "security_id"])
    _, trades = night(funds_frame(HARVEST_FUND), targets, positions, prices, cash, tax_lots=lots,
                      substitutes=SUBSTITUTES, recent_loss_sales=loss_sales)
    assert trades[("Y", "BUY")].harvest_of == "X"     # W would wash its own loss sale: Y instead


def after_harvest(days: int, y_price: float = 50.0, z_price: float = 150.0):
    """The book ``days`` after the harvest above was approved and executed: X 40 (L2), Y 95
    (bought at 50), Z up to ``z_price`` so the fund breaches and wants more of the X/Y pair."""
    as_of = D0 + dt.timedelta(days=days)
    targets, positions, prices, cash = book("H", {"X": (40, 80, 0.5), "Y": (95, y_price, 0), "Z": (80, z_price, 0.5)},
                                            cash=40.45)
    lots = pd.DataFrame([("H", "X", "L2", 40.0, 85.0, dt.date(2013, 6, 1)),
                         ("H", "Y", "H1", 95.0, 50.0, D0),
                         ("H", "Z", "L3", 80.0, 90.0, dt.date(2012, 6, 1))],
                        columns=["fund_id", "security_id", "lot_id", "quantity", "unit_cost", "acquired_date"])
    pairs = pd.DataFrame([("H", "X", "Y", D0)], columns=["fund_id", "security_id", "substitute_id", "harvested_on"])
    window = pd.DataFrame([("H", "X")] if days <= 30 else [], columns=["fund_id", "security_id"])
    return as_of, dict(prices=prices, positions=positions, cash=cash, targets=targets, tax_lots=lots,
                       substitutes=SUBSTITUTES, open_harvests=pairs, recent_loss_sales=window)


def test_the_pair_shares_the_target_and_is_judged_together():
    # Day 20, Z back at 100: X 3,200 + Y 4,750 = 7,950 of 15,990.45 (49.7 %) against X's 0.5
    # target, inside the 5-point band; each holding has its share of the target by value.
    as_of, frames = after_harvest(20, z_price=100.0)
    decision = decide_night(as_of, NightInputs(funds=funds_frame(HARVEST_FUND), **frames))
    drift = decision.drift.set_index("security_id")
    assert drift.loc["X", "target_weight"] == pytest.approx(0.5 * 3200 / 7950)
    assert drift.loc["Y", "target_weight"] == pytest.approx(0.5 * 4750 / 7950)
    assert not drift.loc["Y", "breached"] and decision.trades.empty   # Y alone has no target, yet it stays


def test_no_rebuy_of_the_harvested_security_on_day_20_allowed_on_day_31():
    # Z at 150 breaches (12,000 of 19,990.45 = 60 %): the fund rebalances to target and the
    # X/Y pair is to be bought up. On day 20 buying X would wash the harvest: only Y is bought.
    as_of, frames = after_harvest(20)
    decision = decide_night(as_of, NightInputs(funds=funds_frame(HARVEST_FUND), **frames))
    trades = decision.trades.set_index(["security_id", "side"])
    assert ("X", "BUY") not in trades.index and ("Y", "BUY") in trades.index
    assert not decision.trades["wash_sale"].any()
    assert "wash sale avoided, not bought: X" in decision.proposals.iloc[0]["notes"]
    # A fund that only flags wash sales buys X and the trade is flagged.
    flagging = funds_frame({**HARVEST_FUND, "wash_sale_rule": "flag"})
    flagged = decide_night(as_of, NightInputs(funds=flagging, **frames)).trades.set_index(["security_id", "side"])
    assert bool(flagged.loc[("X", "BUY"), "wash_sale"])
    # Day 31: Y has a short-term gain (52 > 50), so no swap back, and X may be bought again.
    as_of, frames = after_harvest(31, y_price=52.0)
    decision = decide_night(as_of, NightInputs(funds=funds_frame(HARVEST_FUND), **frames))
    trades = decision.trades.set_index(["security_id", "side"])
    assert ("X", "BUY") in trades.index and trades.loc[("X", "BUY"), "reason"] != "tax"
    assert not decision.trades["wash_sale"].any()


def test_the_swap_back_after_31_days_without_a_short_term_gain():
    """Day 31, Y at 49 (below its 50 cost: a 95-share loss of 95, no short-term gain): sell
    all 95 Y = 4,655, commission 4.655, proceeds 4,650.345; X at 80 with 10 bp: 58 shares cost
    4,640 + 4.64 = 4,644.64 <= 4,650.345 (59 would cost 4,724.72). Z at 100 keeps the fund in band."""
    as_of, frames = after_harvest(31, y_price=49.0, z_price=100.0)
    decision = decide_night(as_of, NightInputs(funds=funds_frame(HARVEST_FUND), **frames))
    trades = {(t.security_id, t.side): t for t in decision.trades.itertuples()}
    assert set(trades) == {("Y", "SELL"), ("X", "BUY")}
    assert trades[("Y", "SELL")].quantity == 95 and trades[("Y", "SELL")].harvest_of == "X"
    assert trades[("X", "BUY")].quantity == 58 and trades[("X", "BUY")].harvest_of is None
    assert trades[("Y", "SELL")].est_realized_gain == pytest.approx(-95.0)
    proposal = decision.proposals.iloc[0]
    assert proposal["trigger"] == "tax" and proposal["est_harvested_loss"] == 0.0
    # Day 30: not yet.
    as_of, frames = after_harvest(30, y_price=49.0, z_price=100.0)
    frames["recent_loss_sales"] = frames["recent_loss_sales"].iloc[0:0]
    assert decide_night(as_of, NightInputs(funds=funds_frame(HARVEST_FUND), **frames)).trades.empty


def test_a_fund_without_harvest_settings_never_harvests():
    targets, positions, prices, cash, lots = harvest_book()
    plain = funds_frame({"fund_id": "H", "policy": "threshold"})
    _, trades = night(plain, targets, positions, prices, cash, tax_lots=lots, substitutes=SUBSTITUTES)
    assert trades == {}


def test_harvests_across_many_funds_are_decided_at_once():
    books = [harvest_book() for _ in range(3)]
    frames = []
    for i, (targets, positions, prices, cash, lots) in enumerate(books):
        fid = f"H{i}"
        frames.append((targets.assign(fund_id=fid), positions.assign(fund_id=fid), prices, cash.assign(fund_id=fid),
                       lots.assign(fund_id=fid)))
    targets, positions, prices, cash, lots = (pd.concat(p, ignore_index=True) for p in zip(*frames, strict=True))
    funds = funds_frame(*[{**HARVEST_FUND, "fund_id": f"H{i}"} for i in range(3)])
    decision, _ = night(funds, targets, positions, prices.drop_duplicates("security_id"), cash, tax_lots=lots,
                        substitutes=SUBSTITUTES)
    assert len(decision.proposals) == 3
    assert np.allclose(decision.proposals["est_harvested_loss"], -1200)
