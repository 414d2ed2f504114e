"""Triggers and trade sizing, hand-computed."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from frames import AS_OF, book, combine, funds_frame, run_engine

import rebalance_core as core


def trades_by_security(trades: pd.DataFrame) -> dict[str, tuple[str, float]]:
    return {r.security_id: (r.side, r.quantity) for r in trades.itertuples()}


def test_60_40_drifted_to_70_30_trades_back_to_60_40():
    # NAV 100,000: EQ 70,000 → 60,000 (sell 100 @ 100), BD 30,000 → 40,000 (buy 100 @ 100).
    targets, positions, prices, cash = book("F1", {"EQ": (700, 100, 0.6), "BD": (300, 100, 0.4)})
    *_, proposals, trades = run_engine(funds_frame({"fund_id": "F1"}), targets, positions, prices, cash)
    assert trades_by_security(trades) == {"EQ": ("SELL", 100), "BD": ("BUY", 100)}
    p = proposals.iloc[0]
    assert p["trigger"] == "threshold"
    assert p["turnover"] == pytest.approx(20_000 / (2 * 100_000))   # Σ|trade| / (2 × NAV) = 0.10
    assert p["cash_after"] == pytest.approx(0)
    by = trades.set_index("security_id")
    assert by.loc["EQ", "weight_after"] == pytest.approx(0.6) and by.loc["BD", "weight_after"] == pytest.approx(0.4)
    assert set(trades["reason"]) == {"band_breach"}


def test_band_destination_trades_only_to_the_nearest_band_edge():
    # ±5 pp: EQ 70 % → 65 % (sell 50), BD 30 % → 35 % (buy 50).
    targets, positions, prices, cash = book("F1", {"EQ": (700, 100, 0.6), "BD": (300, 100, 0.4)})
    funds = funds_frame({"fund_id": "F1", "rebalance_to": "band"})
    *_, trades = run_engine(funds, targets, positions, prices, cash)
    assert trades_by_security(trades) == {"EQ": ("SELL", 50), "BD": ("BUY", 50)}


def test_band_destination_leaves_holdings_inside_their_band_alone():
    # A breaches (74 % vs 60 ± 5); B at 14 % vs 15 % is inside; C at 12 % vs 25 % breaches low.
    targets, positions, prices, cash = book("F", {"A": (740, 100, 0.60), "B": (140, 100, 0.15),
                                                  "C": (120, 100, 0.25)})
    funds = funds_frame({"fund_id": "F", "rebalance_to": "band"})
    *_, trades = run_engine(funds, targets, positions, prices, cash)
    # A to 65 % (sell 90), C to 20 % (buy 80); B untouched.
    assert trades_by_security(trades) == {"A": ("SELL", 90), "C": ("BUY", 80)}


def test_in_band_threshold_fund_proposes_nothing():
    targets, positions, prices, cash = book("F", {"EQ": (620, 100, 0.6), "BD": (380, 100, 0.4)})
    _, _summary, triggers, proposals, trades = run_engine(funds_frame({"fund_id": "F"}), targets, positions, prices, cash)
    assert triggers["F"] is None and proposals.empty and trades.empty


@pytest.mark.parametrize(
    ("as_of", "frequency", "due"),
    [
        (dt.date(2014, 1, 2), "monthly", True),     # 1 January is a holiday: the 2nd is the first session
        (dt.date(2014, 1, 3), "monthly", False),
        (dt.date(2014, 9, 2), "monthly", True),     # Labor Day on 1 September
        (dt.date(2014, 7, 1), "quarterly", True),
        (dt.date(2014, 8, 1), "quarterly", False),
        (dt.date(2015, 1, 2), "annual", True),
        (dt.date(2014, 1, 6), "weekly", True),      # a Monday
        (dt.date(2014, 1, 21), "weekly", True),     # Tuesday after Martin Luther King Day
        (dt.date(2014, 1, 22), "weekly", False),
        (dt.date(2014, 1, 3), "daily", True),
    ],
)
def test_calendar_policy_triggers_on_the_first_trading_day_of_the_period(as_of, frequency, due):
    targets, positions, prices, cash = book("F", {"EQ": (600, 100, 0.6), "BD": (399, 100, 0.4)}, cash=100)
    funds = funds_frame({"fund_id": "F", "policy": "calendar", "frequency": frequency, "abs_band": None})
    _, _, triggers, _proposals, trades = run_engine(funds, targets, positions, prices, cash, as_of=as_of)
    assert (triggers["F"] == "calendar") is due
    if due:  # 100 of cash → buy one BD (the only trade needed to reach 40 %)
        assert trades_by_security(trades) == {"BD": ("BUY", 1)}
        assert set(trades["reason"]) == {"calendar"}


@pytest.mark.parametrize(
    ("as_of", "drifted", "trigger"),
    [
        (dt.date(2014, 2, 3), True, "threshold"),   # first trading day of February and out of band
        (dt.date(2014, 2, 3), False, None),         # calendar date but in band
        (dt.date(2014, 2, 4), True, None),          # out of band but not a calendar date
    ],
)
def test_hybrid_checks_bands_only_on_calendar_dates(as_of, drifted, trigger):
    eq = 700 if drifted else 620
    targets, positions, prices, cash = book("F", {"EQ": (eq, 100, 0.6), "BD": (1000 - eq, 100, 0.4)})
    funds = funds_frame({"fund_id": "F", "policy": "hybrid", "frequency": "monthly"})
    _, _, triggers, *_ = run_engine(funds, targets, positions, prices, cash, as_of=as_of)
    assert triggers["F"] == trigger


def test_whole_lots_sells_round_to_nearest_buys_round_down():
    # NAV 100,000 at price 10. A: 7,000 sh (70 %) → 6,000 (sell 1,000: exact).
    # Lot 300: sell 1,000 → nearest lot 900; B buys 1,000 → down to 900.
    targets, positions, prices, cash = book("F", {"A": (7000, 10, 0.6), "B": (3000, 10, 0.4)})
    securities = pd.DataFrame({"security_id": ["A", "B"], "lot_size": [300.0, 300.0], "tradable": [True, True]})
    *_, trades = run_engine(funds_frame({"fund_id": "F"}), targets, positions, prices, cash, securities=securities)
    assert trades_by_security(trades) == {"A": ("SELL", 900), "B": ("BUY", 900)}


def test_fractional_fund_trades_exact_quantities():
    targets, positions, prices, cash = book("F", {"A": (700, 30, 0.6), "B": (300, 70, 0.4)})
    # NAV = 21,000 + 21,000 = 42,000; A → 25,200 (buy 140 sh), B → 16,800 (sell 60 sh).
    funds = funds_frame({"fund_id": "F", "allow_fractional": True})
    *_, trades = run_engine(funds, targets, positions, prices, cash)
    got = trades_by_security(trades)
    assert got["A"][0] == "BUY" and got["A"][1] == pytest.approx(140)
    assert got["B"][0] == "SELL" and got["B"][1] == pytest.approx(60)


def test_trades_below_the_minimum_notional_are_dropped():
    # NAV 100,000; A is 1 share (100) over target, B 1 share under; C far off.
    targets, positions, prices, cash = book("F", {"A": (301, 100, 0.3), "B": (299, 100, 0.3),
                                                  "C": (400, 100, 0.3)}, cash=0)
    targets.loc[targets["security_id"] == "C", "target_weight"] = 0.4
    funds = funds_frame({"fund_id": "F", "abs_band": 0.0005, "min_trade_notional": 150})
    *_, trades = run_engine(funds, targets, positions, prices, cash)
    assert set(trades["security_id"]) == set()  # every trade is 100 of notional, under 150
    funds = funds_frame({"fund_id": "F", "abs_band": 0.0005, "min_trade_notional": 100})
    *_, trades = run_engine(funds, targets, positions, prices, cash)
    assert trades_by_security(trades) == {"A": ("SELL", 1), "B": ("BUY", 1)}


def test_closing_a_position_sells_all_of_it_even_an_odd_lot():
    targets, positions, prices, cash = book("F", {"A": (1000, 100, 1.0), "OLD": (150, 10, 0.0)})
    securities = pd.DataFrame({"security_id": ["A", "OLD"], "lot_size": [1.0, 100.0], "tradable": [True, True]})
    *_, trades = run_engine(funds_frame({"fund_id": "F"}), targets, positions, prices, cash, securities=securities)
    assert trades_by_security(trades)["OLD"] == ("SELL", 150)


def test_never_spends_cash_the_fund_does_not_have():
    # A (90,000) cannot be sold: not tradable. B should be 50 % of 100,000 but cash is 10,000.
    targets, positions, prices, cash = book("F", {"A": (900, 100, 0.5), "B": (0, 100, 0.5)}, cash=10_000)
    securities = pd.DataFrame({"security_id": ["A", "B"], "lot_size": [1.0, 1.0], "tradable": [False, True]})
    *_, proposals, trades = run_engine(funds_frame({"fund_id": "F"}), targets, positions, prices, cash,
                                       securities=securities)
    assert trades_by_security(trades) == {"B": ("BUY", 100)}        # all 10,000 of cash, no more
    assert proposals.iloc[0]["cash_after"] == pytest.approx(0)


def test_cash_buffer_is_kept_when_buys_would_eat_it():
    # Same fund with a 5 % buffer: only 10,000 − 5,000 may be spent → buy 50 B.
    targets, positions, prices, cash = book("F", {"A": (900, 100, 0.5), "B": (0, 100, 0.5)}, cash=10_000)
    securities = pd.DataFrame({"security_id": ["A", "B"], "lot_size": [1.0, 1.0], "tradable": [False, True]})
    funds = funds_frame({"fund_id": "F", "cash_buffer": 0.05})
    *_, proposals, trades = run_engine(funds, targets, positions, prices, cash, securities=securities)
    assert trades_by_security(trades) == {"B": ("BUY", 50)}
    assert proposals.iloc[0]["cash_after"] == pytest.approx(5_000)


def test_cash_buffer_scales_targets_to_make_room():
    # 2 % buffer, no CASH target: A and B go to 49 % each of 100,000; 2,000 stays in cash.
    targets, positions, prices, cash = book("F", {"A": (1000, 100, 0.5), "B": (0, 100, 0.5)})
    funds = funds_frame({"fund_id": "F", "cash_buffer": 0.02})
    *_, proposals, trades = run_engine(funds, targets, positions, prices, cash)
    assert trades_by_security(trades) == {"A": ("SELL", 510), "B": ("BUY", 490)}
    assert proposals.iloc[0]["cash_after"] == pytest.approx(2_000)


def test_blocked_and_untriggered_funds_get_no_proposal_and_others_go_on():
    books = [book("F1", {"EQ": (700, 100, 0.6), "BD": (300, 100, 0.4)}),
             book("F2", {"EQ": (700, 100, 0.6), "BD": (300, 100, 0.4)}),
             book("F3", {"EQ": (600, 100, 0.6), "BD": (400, 100, 0.4)})]
    funds = funds_frame({"fund_id": "F1"}, {"fund_id": "F2"}, {"fund_id": "F3"})
    blocked = pd.DataFrame({"fund_id": ["F2"], "blocked_reason": ["prices.csv row 3: ..."]})
    *_, proposals, _ = run_engine(funds, *combine(*books), blocked=blocked)
    assert list(proposals["fund_id"]) == ["F1"]


def test_proposal_id_is_stable_for_the_same_trades_and_changes_with_them():
    targets, positions, prices, cash = book("F1", {"EQ": (700, 100, 0.6), "BD": (300, 100, 0.4)})
    funds = funds_frame({"fund_id": "F1"})
    first = run_engine(funds, targets, positions, prices, cash)[3].iloc[0]["proposal_id"]
    again = run_engine(funds, targets, positions, prices, cash)[3].iloc[0]["proposal_id"]
    positions.loc[positions["security_id"] == "EQ", "quantity"] = 710
    changed = run_engine(funds, targets, positions, prices, cash)[3].iloc[0]["proposal_id"]
    assert first == again != changed
    assert first.startswith("F1-20140103-")


def test_fault_mapping_blocks_every_fund_exposed_to_a_bad_security():
    faults = pd.DataFrame([
        {"dataset": "prices.csv", "check": "close_price_positive", "source_row": 3, "fund_id": None,
         "security_id": "BAD", "message": "BAD price -1 is not positive"},
        {"dataset": "positions.csv", "check": "quantity_not_negative", "source_row": 9, "fund_id": "F9",
         "security_id": None, "message": "quantity -5 of X is negative"},
    ])
    positions = pd.DataFrame({"fund_id": ["F1", "F2", "F3"], "security_id": ["BAD", "OK", "OK"]})
    targets = pd.DataFrame({"fund_id": ["F2", "F3"], "security_id": ["BAD", "OK"]})
    blocked = core.blocked_funds(faults, positions, targets).set_index("fund_id")["blocked_reason"]
    assert set(blocked.index) == {"F1", "F2", "F9"}
    assert blocked["F1"] == "prices.csv row 3: BAD price -1 is not positive"
    assert blocked["F9"] == "positions.csv row 9: quantity -5 of X is negative"


def test_daryanani_halfway_trims_a_breaching_class_to_half_the_band():
    # Target 60 %, 20 % relative band → no-trade zone 48–72 %. A class at 74 % is trimmed to
    # 60 + 12 / 2 = 66 % (sell 800 of 10,000 units at 1); the bond side at 26 % (band 32–48 %)
    # is bought back to 40 − 8 / 2 = 36 %... limited by cash: the 8,000 sold buy 8,000 of it.
    targets, positions, prices, cash = book("F", {"EQ": (7400, 1, 0.6), "BD": (2600, 1, 0.4)})
    funds = funds_frame({"fund_id": "F", "abs_band": None, "rel_band": 0.20, "rebalance_to": "halfway"})
    drift, *_ = run_engine(funds, targets, positions, prices, cash)
    eq = drift.set_index("security_id").loc["EQ"]
    assert (eq["band_lower"], eq["band_upper"]) == pytest.approx((0.48, 0.72))
    *_, trades = run_engine(funds, targets, positions, prices, cash)
    assert trades_by_security(trades) == {"EQ": ("SELL", 800), "BD": ("BUY", 800)}
    assert trades.set_index("security_id").loc["EQ", "weight_after"] == pytest.approx(0.66)


def test_band_fraction_overrides_the_destination():
    # Fraction 0.3 of a ±5 pp band: EQ at 70 % goes to 61.5 % (sell 85 shares).
    targets, positions, prices, cash = book("F1", {"EQ": (700, 100, 0.6), "BD": (300, 100, 0.4)})
    funds = funds_frame({"fund_id": "F1", "rebalance_to": "band", "band_fraction": 0.3})
    *_, trades = run_engine(funds, targets, positions, prices, cash)
    assert trades_by_security(trades)["EQ"] == ("SELL", 85)


def test_vanguard_preset_triggers_at_2pp_and_trades_back_to_1_75pp():
    # No band given: the preset's 2 pp applies. 63 % vs 60 % breaches; trade to 61.75 %:
    # sell 125 of 10,000 units at 1; the 37 % side (band 38–42 %) buys back to 38.25 %.
    targets, positions, prices, cash = book("F", {"EQ": (6300, 1, 0.6), "BD": (3700, 1, 0.4)})
    funds = core.apply_presets(funds_frame({"fund_id": "F", "abs_band": None, "rel_band": None,
                                            "rebalance_to": "vanguard"}))
    assert funds.loc[0, "abs_band"] == 0.02
    *_, trades = run_engine(funds, targets, positions, prices, cash)
    assert trades_by_security(trades) == {"EQ": ("SELL", 125), "BD": ("BUY", 125)}
    # 61.9 % is inside the 2 pp band: nothing to do.
    targets, positions, prices, cash = book("F", {"EQ": (6190, 1, 0.6), "BD": (3810, 1, 0.4)})
    *_, trades = run_engine(funds, targets, positions, prices, cash)
    assert trades.empty


def _with_flow(funds, targets, positions, prices, cash, flow: float, fund_id: str = "F"):
    flows = pd.DataFrame({"fund_id": [fund_id], "amount": [flow]})
    drift = core.compute_drift(AS_OF, funds, targets, positions, prices, cash)
    summary = core.summarize_funds(drift)
    triggers = core.resolve_triggers(AS_OF, funds, summary)
    triggers = core.resolve_flow_triggers(drift, summary, funds, flows, triggers)
    proposals, trades = core.propose(AS_OF, drift, summary, funds, triggers, flows=flows)
    return triggers, proposals, trades


def test_a_flow_the_bands_absorb_trades_nothing():
    # 60/40 on target, ±5 pp; +1,000 on 100,000 → 59.4 % / 39.6 %: inside the bands.
    targets, positions, prices, cash = book("F", {"EQ": (600, 100, 0.6), "BD": (400, 100, 0.4)})
    triggers, _proposals, trades = _with_flow(funds_frame({"fund_id": "F"}), targets, positions, prices, cash, 1_000)
    assert triggers["F"] is None and trades.empty


def test_a_subscription_goes_to_the_most_underweight_holding_first():
    # Targets A 50 / B 25 / C 25, held 55 / 30 / 15 (NAV 100,000), ±10 pp: C sits on its edge.
    # +10,000 → NAV 110,000: C is 13.6 %, outside 15–35 % → cash_flow. Room below target:
    # A 55,000 − 55,000 = 0, B over target, C 27,500 − 15,000 = 12,500 → all 10,000 into C.
    targets, positions, prices, cash = book("F", {"A": (550, 100, 0.5), "B": (300, 100, 0.25),
                                                  "C": (150, 100, 0.25)})
    funds = funds_frame({"fund_id": "F", "abs_band": 0.10})
    triggers, proposals, trades = _with_flow(funds, targets, positions, prices, cash, 10_000)
    assert triggers["F"] == "cash_flow"
    assert trades_by_security(trades) == {"C": ("BUY", 100)}
    assert set(trades["reason"]) == {"cash_flow"}
    p = proposals.iloc[0]
    assert (p["flow"], p["cash_before"], p["cash_after"]) == (10_000, 0, 0)


def test_a_redemption_is_raised_from_the_most_overweight_holding():
    # Targets 1/3 each, held 60 / 20 / 20 (NAV 100,000), ±30 pp, no cash: −10,000 cannot be
    # paid from cash → cash_flow. NAV after 90,000: A is 60,000 − 30,000 = 30,000 over
    # target, so A alone is sold for 10,000 (100 shares), and A at 55.6 % stays in band.
    third = 1 / 3
    targets, positions, prices, cash = book("F", {"A": (600, 100, third), "B": (200, 100, third),
                                                  "C": (200, 100, 1 - 2 * third)})
    funds = funds_frame({"fund_id": "F", "abs_band": 0.30})
    triggers, proposals, trades = _with_flow(funds, targets, positions, prices, cash, -10_000)
    assert triggers["F"] == "cash_flow"
    assert trades_by_security(trades) == {"A": ("SELL", 100)}
    assert proposals.iloc[0]["cash_after"] == pytest.approx(0)


def test_flows_come_first_and_may_cure_the_breach():
    # 60/40 drifted to 70/30 (a threshold breach) with +10,000 pending. The flow goes to BD,
    # the most underweight (44,000 − 30,000 of room): BUY 100 BD. After it EQ is 63.6 % and
    # BD 36.4 %, both inside ±5 pp, so nothing else trades: no EQ sale, no turnover wasted.
    targets, positions, prices, cash = book("F", {"EQ": (700, 100, 0.6), "BD": (300, 100, 0.4)})
    triggers, _proposals, trades = _with_flow(funds_frame({"fund_id": "F"}), targets, positions, prices, cash,
                                             10_000)
    assert triggers["F"] == "threshold"
    assert trades_by_security(trades) == {"BD": ("BUY", 100)}
    assert list(trades["reason"]) == ["cash_flow"]


def test_a_flow_and_a_remaining_breach_trade_together_netted():
    # 60/40 at 75/25 with +10,000: the flow fills BD (+10,000); EQ is still 68.2 % of
    # 110,000 → rebalance to 66,000 / 44,000: SELL 90 EQ, BD ends at 44,000 (+19,000 in all).
    targets, positions, prices, cash = book("F", {"EQ": (750, 100, 0.6), "BD": (250, 100, 0.4)})
    _triggers, proposals, trades = _with_flow(funds_frame({"fund_id": "F"}), targets, positions, prices, cash,
                                             10_000)
    assert trades_by_security(trades) == {"EQ": ("SELL", 90), "BD": ("BUY", 190)}
    assert proposals.iloc[0]["cash_after"] == pytest.approx(0)


def test_costs_are_estimated_per_trade_and_paid_from_cash():
    # Commission 10 bp + 0.01/share, half spread 5 bp. 60/40 at 70/30, no cash:
    # SELL 100 EQ: 10,000 × 15 bp + 1.00 = 16.00 → proceeds 9,984.
    # BUY 100 BD would need 10,016 → scaled to 99: 9,900 × 15 bp + 0.99 = 15.84, total 9,915.84.
    targets, positions, prices, cash = book("F1", {"EQ": (700, 100, 0.6), "BD": (300, 100, 0.4)})
    funds = funds_frame({"fund_id": "F1", "commission_bps": 10.0, "commission_per_share": 0.01})
    securities = pd.DataFrame({"security_id": ["EQ", "BD"], "lot_size": 1.0, "tradable": True, "half_spread_bps": 5.0})
    *_, proposals, trades = run_engine(funds, targets, positions, prices, cash, securities=securities)
    assert trades_by_security(trades) == {"EQ": ("SELL", 100), "BD": ("BUY", 99)}
    costs = trades.set_index("security_id")["est_cost"]
    assert costs["EQ"] == pytest.approx(16.00) and costs["BD"] == pytest.approx(15.84)
    p = proposals.iloc[0]
    assert p["est_cost"] == pytest.approx(31.84)
    assert p["cash_after"] == pytest.approx(10_000 - 9_900 - 31.84)   # 68.16


def test_market_impact_grows_with_the_square_root_of_participation():
    # 100 shares of a 1,000-share-a-day security: 1 % × sqrt(0.1) of 10,000 = 31.62.
    targets, positions, prices, cash = book("F1", {"EQ": (700, 100, 0.6), "BD": (300, 100, 0.4)})
    securities = pd.DataFrame({"security_id": ["EQ", "BD"], "lot_size": 1.0, "tradable": True,
                               "adv": [1_000.0, None]})
    *_, trades = run_engine(funds_frame({"fund_id": "F1", "allow_fractional": True}), targets, positions, prices,
                            cash, securities=securities)
    costs = trades.set_index("security_id")["est_cost"]
    assert costs["EQ"] == pytest.approx(10_000 * 0.01 * 0.1 ** 0.5) and costs["BD"] == 0


def test_turnover_cap_scales_the_rebalance_down():
    # Turnover 10 % against a 5 % cap: every trade halves (SELL 50 EQ, BUY 50 BD).
    targets, positions, prices, cash = book("F1", {"EQ": (700, 100, 0.6), "BD": (300, 100, 0.4)})
    funds = funds_frame({"fund_id": "F1", "max_turnover": 0.05})
    *_, proposals, trades = run_engine(funds, targets, positions, prices, cash)
    assert trades_by_security(trades) == {"EQ": ("SELL", 50), "BD": ("BUY", 50)}
    assert proposals.iloc[0]["turnover"] == pytest.approx(0.05)
    assert proposals.iloc[0]["notes"] == "scaled down to the fund's turnover cap"


def test_cost_cap_in_basis_points_of_nav():
    # 20 bp commission on 20,000 traded = 40 = 4 bp of NAV; cap 2 bp → half the trades.
    targets, positions, prices, cash = book("F1", {"EQ": (700, 100, 0.6), "BD": (300, 100, 0.4)})
    funds = funds_frame({"fund_id": "F1", "commission_bps": 20.0, "max_cost_bps": 2.0, "cash_buffer": 0.0})
    *_, proposals, trades = run_engine(funds, targets, positions, prices, cash)
    assert trades_by_security(trades)["EQ"] == ("SELL", 50)
    assert proposals.iloc[0]["notes"] == "scaled down to the fund's cost cap"


def test_frozen_holdings_stay_and_the_rest_is_rescaled_around_them():
    # A may not trade and is 50 % against a 30 % target. The tradable targets (35 % + 35 %)
    # are rescaled to the 50 % left: 25 % each. B (20 %, breaching) buys 50; C (30 %) sells 50.
    targets, positions, prices, cash = book("F", {"A": (500, 100, 0.30), "B": (200, 100, 0.35),
                                                  "C": (300, 100, 0.35)})
    securities = pd.DataFrame({"security_id": ["A", "B", "C"], "lot_size": 1.0, "tradable": [False, True, True]})
    *_, trades = run_engine(funds_frame({"fund_id": "F"}), targets, positions, prices, cash, securities=securities)
    assert trades_by_security(trades) == {"B": ("BUY", 50), "C": ("SELL", 50)}
    assert trades.set_index("security_id")["reason"].to_dict() == {"B": "band_breach", "C": "restriction"}


def test_minimum_trade_is_the_greater_of_notional_and_share_of_nav():
    # NAV 100,000; A and B are 1 share (100) off target. min 50 notional but 0.2 % of NAV = 200.
    targets, positions, prices, cash = book("F", {"A": (301, 100, 0.3), "B": (299, 100, 0.3),
                                                  "C": (400, 100, 0.4)})
    funds = funds_frame({"fund_id": "F", "abs_band": 0.0005, "min_trade_notional": 50, "min_trade_pct_nav": 0.002})
    *_, trades = run_engine(funds, targets, positions, prices, cash)
    assert trades.empty
    funds = funds_frame({"fund_id": "F", "abs_band": 0.0005, "min_trade_notional": 50, "min_trade_pct_nav": 0.001})
    *_, trades = run_engine(funds, targets, positions, prices, cash)
    assert trades_by_security(trades) == {"A": ("SELL", 1), "B": ("BUY", 1)}


def test_a_buffer_the_fund_cannot_reach_is_said_in_the_proposal():
    # 5 % buffer, no cash, A and B frozen; C (no target, 1 % of NAV) is sold: 1,000 of cash
    # against a 5,000 buffer, and nothing else may be sold.
    targets, positions, prices, cash = book("F", {"A": (900, 100, 0.5), "B": (90, 100, 0.5), "C": (10, 100, 0.0)})
    securities = pd.DataFrame({"security_id": ["A", "B", "C"], "lot_size": 1.0, "tradable": [False, False, True]})
    funds = funds_frame({"fund_id": "F", "cash_buffer": 0.05})
    *_, proposals, trades = run_engine(funds, targets, positions, prices, cash, securities=securities)
    assert trades_by_security(trades) == {"C": ("SELL", 10)}
    assert proposals.iloc[0]["notes"] == "cash stays below its buffer: nothing left to sell toward it"
