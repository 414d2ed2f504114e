"""Drift and bands, with the arithmetic written out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from frames import AS_OF, book, combine, funds_frame, run_engine

import rebalance_core as core


def test_weights_nav_and_drift_of_a_60_40_fund_drifted_to_70_30():
    # EQ 700 × 100 = 70,000; BD 300 × 100 = 30,000; cash 0 → NAV 100,000.
    targets, positions, prices, cash = book("F1", {"EQ": (700, 100, 0.6), "BD": (300, 100, 0.4)})
    drift, summary, *_ = run_engine(funds_frame({"fund_id": "F1"}), targets, positions, prices, cash)
    rows = drift.set_index("security_id")
    assert rows.loc["EQ", "current_weight"] == pytest.approx(0.70)
    assert rows.loc["EQ", "drift"] == pytest.approx(0.10)
    assert rows.loc["BD", "drift"] == pytest.approx(-0.10)
    assert rows.loc["CASH", "market_value"] == 0
    assert summary.loc[0, "nav"] == pytest.approx(100_000)
    assert summary.loc[0, "max_abs_drift"] == pytest.approx(0.10)
    assert bool(summary.loc[0, "breached"]) and summary.loc[0, "breach_count"] == 2


@pytest.mark.parametrize(
    ("target", "current", "breaches"),
    [
        # 5/25: tolerance = min(5 pp, 25 % × target).
        (0.10, 0.126, True),    # band ±2.5 pp → 12.6 % is outside
        (0.10, 0.124, False),   # 12.4 % is inside
        (0.10, 0.074, True),    # and on the low side
        (0.10, 0.076, False),
        (0.40, 0.451, True),    # target 40 % → ±5 pp: 45.1 % breaches
        (0.40, 0.449, False),
        (0.40, 0.349, True),
        (0.20, 0.251, True),    # the cut-over: 25 % × 20 % = 5 pp, both bands agree
        (0.20, 0.249, False),
        (0.16, 0.201, True),    # below the cut-over the relative band (4 pp) rules
        (0.16, 0.199, False),
    ],
)
def test_5_25_rule_on_both_sides_of_the_cut_over(target, current, breaches):
    nav = 1_000_000.0
    # One security at `current` weight, the rest in a filler security at its target.
    holdings = {"A": (current * nav / 100, 100, target), "Z": ((1 - current) * nav / 100, 100, 1 - target)}
    targets, positions, prices, cash = book("F", holdings)
    funds = funds_frame({"fund_id": "F", "abs_band": 0.05, "rel_band": 0.25})
    drift = core.compute_drift(AS_OF, funds, targets, positions, prices, cash)
    row = drift.set_index("security_id").loc["A"]
    assert bool(row["breached"]) is breaches
    tolerance = min(0.05, 0.25 * target)
    assert row["band_upper"] == pytest.approx(target + tolerance)
    assert row["band_lower"] == pytest.approx(target - tolerance)


def test_a_held_security_with_no_target_always_breaches_and_cash_never_does():
    targets, positions, prices, cash = book("F", {"A": (990, 100, 1.0), "ODD": (1, 100, 0.0)}, cash=50_000)
    drift = core.compute_drift(AS_OF, funds_frame({"fund_id": "F", "abs_band": 0.5}), targets, positions, prices, cash)
    rows = drift.set_index("security_id")
    assert bool(rows.loc["ODD", "breached"])          # 0.07 % held, target 0, band ±50 pp: still a breach
    assert not bool(rows.loc["CASH", "breached"])     # 33 % cash vs 0 target is the residual
    assert rows.loc["CASH", "current_weight"] == pytest.approx(50_000 / 149_100)


def test_targeted_but_not_held_security_appears_with_zero_quantity():
    targets, positions, prices, cash = book("F", {"A": (1000, 100, 0.5), "B": (0, 20, 0.5)})
    drift = core.compute_drift(AS_OF, funds_frame({"fund_id": "F"}), targets, positions, prices, cash)
    b = drift.set_index("security_id").loc["B"]
    assert b["quantity"] == 0 and b["market_value"] == 0 and b["drift"] == pytest.approx(-0.5)


def test_cash_target_row_and_fx_conversion():
    targets, positions, prices, cash = book("F", {"A": (100, 10, 0.9)}, cash=100, cash_target=0.1)
    prices.loc[prices["security_id"] == "A", "currency"] = "EUR"
    fx = pd.DataFrame({"currency": ["EUR"], "base_currency": ["USD"], "rate": [1.1]})
    drift = core.compute_drift(AS_OF, funds_frame({"fund_id": "F"}), targets, positions, prices, cash, fx)
    rows = drift.set_index("security_id")
    assert rows.loc["A", "market_value"] == pytest.approx(1100)        # 100 × 10 EUR × 1.1
    assert rows.loc["CASH", "target_weight"] == pytest.approx(0.1)
    assert rows.loc["CASH", "current_weight"] == pytest.approx(100 / 1200)


def test_missing_price_or_rate_makes_nav_unknown_not_smaller():
    targets, positions, prices, cash = book("F", {"A": (100, 10, 0.5), "B": (100, 10, 0.5)})
    prices.loc[prices["security_id"] == "B", "close_price"] = np.nan
    drift = core.compute_drift(AS_OF, funds_frame({"fund_id": "F"}), targets, positions, prices, cash)
    assert np.isnan(core.summarize_funds(drift).loc[0, "nav"])


def test_all_funds_in_one_call():
    books = [book(f"F{i}", {"A": (100 + i, 10, 0.5), "B": (100, 10, 0.5)}) for i in range(50)]
    funds = funds_frame(*({"fund_id": f"F{i}"} for i in range(50)))
    drift = core.compute_drift(AS_OF, funds, *combine(*books))
    assert drift["fund_id"].nunique() == 50 and len(drift) == 150


def test_asset_class_bands_override_the_funds_bands():
    # Fund band ±5 pp; fixed income overridden to ±2 pp. BD at 37 % vs 40 % breaches only
    # under the override; EQ (equity, no override) at 63 % vs 60 % stays inside ±5 pp.
    targets, positions, prices, cash = book("F", {"EQ": (630, 100, 0.6), "BD": (370, 100, 0.4)})
    securities = pd.DataFrame({"security_id": ["EQ", "BD"], "asset_class": ["equity", "fixed_income"]})
    overrides = pd.DataFrame({"asset_class": ["fixed_income"], "abs_band": [0.02], "rel_band": [np.nan]})
    drift = core.compute_drift(AS_OF, funds_frame({"fund_id": "F"}), targets, positions, prices, cash,
                               securities=securities, asset_class_bands=overrides).set_index("security_id")
    assert bool(drift.loc["BD", "breached"]) and drift.loc["BD", "band_lower"] == pytest.approx(0.38)
    assert not bool(drift.loc["EQ", "breached"]) and drift.loc["EQ", "band_upper"] == pytest.approx(0.65)
