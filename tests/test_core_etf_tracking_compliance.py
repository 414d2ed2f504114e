"""ETF tracking and compliance in the core (no database): hand-computed arithmetic.

Books are priced at 100 a share with a NAV of 100,000 unless said otherwise, so 1 % of NAV
is 10 shares and every weight below is written out by hand.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from frames import AS_OF, funds_frame

from rebalance_core.calendar import sessions_between
from rebalance_core.night import NightInputs, decide_night
from rebalance_core.tracking import compute_tracking, ex_ante_tracking_error, realized_tracking_errors

# ------------------------------------------------------------------ realized tracking error
# 20 daily tracking differences alternating +0.1 % and -0.1 %: mean 0, sum of squared
# deviations 20 x (0.001)^2 = 2e-5, sample variance 2e-5 / 19, sd = sqrt(2e-5 / 19)
# = 0.00102598..., annualized x sqrt(252) = 0.0162868...
HAND_TE_20 = math.sqrt(2e-5 / 19) * math.sqrt(252)


def _history(fund: str, days: int, model: str | None = "IDX") -> pd.DataFrame:
    dates = sessions_between(AS_OF - dt.timedelta(days=120), AS_OF - dt.timedelta(days=1))[-days:]
    # Oldest first: +0.001, -0.001, ... so that with tonight's -0.001 the last 20 alternate.
    differences = [0.001 if (days - i) % 2 == 1 else -0.001 for i in range(days)]
    return pd.DataFrame({"as_of_date": dates, "fund_id": fund, "model_id": model,
                         "nav_per_share": 100.0, "index_level": 1000.0, "tracking_difference": differences})


def _tracking_night(history: pd.DataFrame) -> pd.DataFrame:
    # Tonight NAV 100,400 on 1,000 shares: 100.40 a share, +0.4 % over yesterday's 100.00;
    # the index 1,005 over 1,000: +0.5 %; tracking difference -0.1 %.
    funds = funds_frame({"fund_id": "ETF", "model_id": "IDX"})
    summary = pd.DataFrame({"fund_id": ["ETF"], "nav": [100_400.0]})
    drift = pd.DataFrame({"fund_id": ["ETF"], "security_id": ["CASH"], "drift": [0.0]})
    return compute_tracking(AS_OF, funds, summary, drift,
                            index_levels=pd.DataFrame({"model_id": ["IDX"], "level": [1005.0]}),
                            fund_shares=pd.DataFrame({"fund_id": ["ETF"], "shares_outstanding": [1000.0]}),
                            history=history)


def test_realized_tracking_error_of_a_series_with_a_known_standard_deviation():
    row = _tracking_night(_history("ETF", 19)).iloc[0]
    assert row["nav_per_share"] == pytest.approx(100.4)
    assert row["fund_return"] == pytest.approx(0.004)
    assert row["index_return"] == pytest.approx(0.005)
    assert row["tracking_difference"] == pytest.approx(-0.001)
    assert row["tracking_error_20d"] == pytest.approx(HAND_TE_20, rel=1e-9)
    assert row["tracking_error_20d"] == pytest.approx(0.0162868, rel=1e-5)   # the figure worked out above
    assert pd.isna(row["tracking_error_60d"])   # 20 differences known, not 60


def test_realized_tracking_error_is_null_until_enough_history():
    assert pd.isna(_tracking_night(_history("ETF", 18)).iloc[0]["tracking_error_20d"])   # 19 differences
    holes = _history("ETF", 19)
    holes.loc[3, "tracking_difference"] = np.nan   # a night without a difference in the window
    assert pd.isna(_tracking_night(holes).iloc[0]["tracking_error_20d"])
    # 59 earlier nights: 60 differences, the last 20 the same alternation, so TE 60d is the
    # sd of 30 x +0.001 and 30 x -0.001: sqrt(60e-6 / 59) x sqrt(252).
    row = _tracking_night(_history("ETF", 59)).iloc[0]
    assert row["tracking_error_20d"] == pytest.approx(HAND_TE_20, rel=1e-9)
    assert row["tracking_error_60d"] == pytest.approx(math.sqrt(60e-6 / 59) * math.sqrt(252), rel=1e-9)


def test_a_change_of_index_or_a_first_night_gives_no_return():
    first = _tracking_night(None).iloc[0]
    assert first["nav_per_share"] == pytest.approx(100.4) and pd.isna(first["fund_return"])
    moved = _tracking_night(_history("ETF", 5, model="OLD")).iloc[0]
    assert moved["fund_return"] == pytest.approx(0.004) and pd.isna(moved["index_return"])
    assert pd.isna(moved["tracking_difference"])


def test_realized_errors_take_each_funds_own_last_n_rows():
    tonight = pd.DataFrame({"fund_id": ["A", "B"], "as_of_date": pd.Timestamp(AS_OF),
                            "tracking_difference": [-0.001, 0.0]})
    earlier = pd.concat([_history("A", 19), _history("B", 25).assign(tracking_difference=0.002)])
    errors = realized_tracking_errors(tonight, earlier)
    assert errors[20]["A"] == pytest.approx(HAND_TE_20, rel=1e-9)
    # B: 19 x 0.002 and tonight's 0.000: mean 0.0019, squared deviations 19 x 1e-8 + 3.61e-6
    # = 3.8e-6, variance 3.8e-6 / 19 = 2e-7, sd 4.4721e-4, x sqrt(252).
    assert errors[20]["B"] == pytest.approx(math.sqrt(2e-7) * math.sqrt(252), rel=1e-9)


# ------------------------------------------------------------------ ex ante, a 2 x 2 case
# 20 daily returns of two securities, repeating every 4 days:
#   A: +1 %, -1 %, +1 %, -1 %        (mean 0)
#   B: +3 %, -1 %, +1 %, -3 %        (mean 0)
# Sample covariance (ddof 1, n = 20):
#   s_AA = 20 x 0.0001 / 19 = 0.002 / 19
#   s_BB = 5 x (0.0009 + 0.0001 + 0.0001 + 0.0009) / 19 = 0.01 / 19
#   s_AB = 5 x (0.0003 + 0.0001 + 0.0001 + 0.0003) / 19 = 0.004 / 19
# Shrinkage toward the diagonal: w_k = x_Ak x_Bk = 0.0003, 0.0001, 0.0001, 0.0003 (mean
# 0.0002, each 0.0001 away), so sum_k (w_k - mean)^2 = 20 x 1e-8 = 2e-7 and
#   Var(s_AB) = n / (n-1)^3 x 2e-7 = 20 x 2e-7 / 19^3
#   lambda = 2 Var(s_AB) / (2 s_AB^2) = (4e-6 / 19^3) / (1.6e-5 / 19^2) = 4e-6 / (19 x 1.6e-5) = 1/76
#   s*_AB = (1 - 1/76) s_AB = (75/76) x 0.004 / 19; the variances stay.
# Drift d = (+2 %, -2 %):
#   d' S* d = 0.0004 x (s_AA + s_BB - 2 s*_AB) = 0.0004 x (0.012 - 0.008 x 75/76) / 19
#   ex ante = sqrt(that x 252) = 0.0046669...
HAND_SAB = 0.004 / 19
HAND_VARIANCE = 0.0004 * (0.012 - 0.008 * 75 / 76) / 19
HAND_EX_ANTE = math.sqrt(HAND_VARIANCE * 252)
PATTERN_A = [0.01, -0.01, 0.01, -0.01]
PATTERN_B = [0.03, -0.01, 0.01, -0.03]


def _price_history(returns: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Earlier closes (returns - 1 dates before tonight, plus a starting close) and tonight's."""
    dates = sessions_between(AS_OF - dt.timedelta(days=90), AS_OF - dt.timedelta(days=1))[-returns:]
    a, b = [100.0], [100.0]
    for k in range(returns):
        a.append(a[-1] * (1 + PATTERN_A[k % 4]))
        b.append(b[-1] * (1 + PATTERN_B[k % 4]))
    earlier = pd.DataFrame({"as_of_date": np.repeat(dates, 2), "security_id": ["A", "B"] * len(dates),
                            "close_price": [p for pair in zip(a[:-1], b[:-1], strict=True) for p in pair]})
    tonight = pd.DataFrame({"security_id": ["A", "B"], "close_price": [a[-1], b[-1]], "currency": "USD"})
    return earlier, tonight


def test_ex_ante_tracking_error_of_a_hand_computed_2x2_case():
    earlier, tonight = _price_history(20)
    funds = funds_frame({"fund_id": "ETF", "max_tracking_error": 0.01})
    drift = pd.DataFrame({"fund_id": "ETF", "security_id": ["A", "B", "CASH"], "drift": [0.02, -0.02, 0.0]})
    row = compute_tracking(AS_OF, funds, pd.DataFrame({"fund_id": ["ETF"], "nav": [1e5]}), drift,
                           price_history=earlier, prices=tonight).iloc[0]
    assert row["ex_ante_tracking_error"] == pytest.approx(HAND_EX_ANTE, rel=1e-9)
    assert row["ex_ante_tracking_error"] == pytest.approx(0.0046669, rel=1e-4)   # the figure worked out above
    # Without the shrinkage (lambda 0) it would be sqrt(0.0004 x (0.012 - 0.008) / 19 x 252):
    assert row["ex_ante_tracking_error"] > math.sqrt(0.0004 * 0.004 / 19 * 252)
    # Vectorized across funds: a second fund with the opposite drift has the same figure, a
    # third holding only A has sqrt(0.02^2 x 0.002 / 19 x 252) (one security: nothing to shrink).
    returns = pd.DataFrame({"A": [PATTERN_A[k % 4] for k in range(20)], "B": [PATTERN_B[k % 4] for k in range(20)]})
    many = pd.DataFrame({"fund_id": ["F1", "F1", "F2", "F2", "F3"], "security_id": ["A", "B", "A", "B", "A"],
                         "drift": [0.02, -0.02, -0.02, 0.02, 0.02]})
    te = ex_ante_tracking_error(many, returns)
    assert te["F1"] == pytest.approx(HAND_EX_ANTE, rel=1e-9) and te["F2"] == pytest.approx(HAND_EX_ANTE, rel=1e-9)
    assert te["F3"] == pytest.approx(math.sqrt(0.0004 * 0.002 / 19 * 252), rel=1e-9)


def test_ex_ante_tracking_error_is_null_under_20_returns():
    earlier, tonight = _price_history(19)
    funds = funds_frame({"fund_id": "ETF", "max_tracking_error": 0.01})
    drift = pd.DataFrame({"fund_id": "ETF", "security_id": ["A", "B"], "drift": [0.02, -0.02]})
    row = compute_tracking(AS_OF, funds, pd.DataFrame({"fund_id": ["ETF"], "nav": [1e5]}), drift,
                           price_history=earlier, prices=tonight).iloc[0]
    assert pd.isna(row["ex_ante_tracking_error"])


# ------------------------------------------------------------------ the tracking trigger
def _etf_inputs(limit: float | None, blocked: pd.DataFrame | None = None, policy: str = "threshold") -> NightInputs:
    """ETF on model IDX (A 50 %, B 50 %) holding A 520 and B 480 shares at 100: drift +2 / -2 pp,
    inside its 5 pp band. Tonight's closes are those of the 2x2 history, so the shares are
    priced at those closes and the NAV is their value."""
    earlier, tonight = _price_history(20)
    close = tonight.set_index("security_id")["close_price"]
    nav = 100_000.0
    quantities = {"A": 0.52 * nav / close["A"], "B": 0.48 * nav / close["B"]}
    fund = {"fund_id": "ETF", "model_id": "IDX", "policy": policy, "frequency": "quarterly",
            "allow_fractional": True, "max_tracking_error": limit}
    return NightInputs(
        prices=tonight, positions=pd.DataFrame({"fund_id": "ETF", "security_id": list(quantities),
                                                "quantity": list(quantities.values())}),
        cash=pd.DataFrame({"fund_id": ["ETF"], "currency": ["USD"], "amount": [0.0]}),
        funds=funds_frame(fund), targets=pd.DataFrame(columns=["fund_id", "security_id", "target_weight"]),
        model_targets=pd.DataFrame({"model_id": "IDX", "security_id": ["A", "B"], "target_weight": [0.5, 0.5],
                                    "valid_from": pd.Timestamp("2013-01-02"), "effective_date": None}),
        index_levels=pd.DataFrame({"model_id": ["IDX"], "level": [1000.0]}), price_history=earlier, blocked=blocked)


def test_a_fund_over_its_max_tracking_error_rebalances_to_target_with_trigger_tracking():
    # Ex ante 0.467 % > 0.40 %: the fund, inside its bands, trades back to 50/50.
    night = decide_night(AS_OF, _etf_inputs(0.004))
    tracking = night.tracking.set_index("fund_id")
    assert tracking.loc["ETF", "ex_ante_tracking_error"] == pytest.approx(HAND_EX_ANTE, rel=1e-6)
    summary = night.summary.set_index("fund_id")
    assert summary.loc["ETF", "trigger"] == "tracking" and summary.loc["ETF", "status"] == "proposed"
    trades = night.trades.set_index("security_id")
    assert set(trades["reason"]) == {"tracking"}
    assert trades.loc["A", "side"] == "SELL" and trades.loc["A", "notional"] == pytest.approx(2000.0, rel=1e-9)
    assert trades.loc["B", "side"] == "BUY" and trades.loc["B", "notional"] == pytest.approx(2000.0, rel=1e-9)
    assert night.proposals.iloc[0]["trigger"] == "tracking"


def test_a_fund_within_its_max_tracking_error_or_blocked_does_not_trade():
    within = decide_night(AS_OF, _etf_inputs(0.005))     # 0.467 % <= 0.50 %
    assert within.summary.iloc[0]["status"] == "in_band" and within.trades.empty
    blocked = decide_night(AS_OF, _etf_inputs(0.004, blocked=pd.DataFrame(
        {"fund_id": ["ETF"], "blocked_reason": ["prices.csv row 2: broken"]})))
    assert blocked.summary.iloc[0]["status"] == "blocked" and blocked.trades.empty
    assert blocked.tracking.iloc[0]["ex_ante_tracking_error"] == pytest.approx(HAND_EX_ANTE, rel=1e-6)
    no_limit = decide_night(AS_OF, _etf_inputs(None))
    assert no_limit.summary.iloc[0]["status"] == "in_band"
    assert no_limit.tracking.iloc[0]["index_level"] == 1000.0   # a row all the same: its model has a level


# ------------------------------------------------------------------ compliance
def _compliance_night(regime: str, holdings: dict[str, tuple[float, float]], issuers: dict[str, str],
                      cash_target: float) -> tuple:
    """holdings: security -> (weight now, target weight), NAV 100,000 at 100 a share, the
    rest in cash; a 0.5 pp band, so every holding off target by a point breaches."""
    invested = sum(w for w, _ in holdings.values())
    targets = [{"fund_id": "F", "security_id": s, "target_weight": t} for s, (_, t) in holdings.items()]
    targets.append({"fund_id": "F", "security_id": "CASH", "target_weight": cash_target})
    inputs = NightInputs(
        prices=pd.DataFrame({"security_id": list(holdings), "close_price": 100.0, "currency": "USD"}),
        positions=pd.DataFrame({"fund_id": "F", "security_id": list(holdings),
                                "quantity": [w * 1000 for w, _ in holdings.values()]}),
        cash=pd.DataFrame({"fund_id": ["F"], "currency": ["USD"], "amount": [(1 - invested) * 100_000]}),
        funds=funds_frame({"fund_id": "F", "abs_band": 0.005, "compliance": regime}),
        targets=pd.DataFrame(targets),
        securities=pd.DataFrame({"security_id": list(holdings), "lot_size": 1.0, "asset_class": "equity",
                                 "tradable": True, "issuer": [issuers.get(s) for s in holdings]}))
    night = decide_night(AS_OF, inputs)
    # The holdings are judged too (proposal_id null, before = after = tonight's figure): the
    # same "before" as the proposal's rows. The tests below read the proposal's rows.
    on_holdings = night.compliance[night.compliance["proposal_id"].isna()].set_index("rule")
    judged = night.compliance[night.compliance["proposal_id"].notna()].set_index("rule")
    assert set(on_holdings.index) == set(judged.index)
    assert (on_holdings["before_value"] == on_holdings["after_value"]).all()
    assert (on_holdings["before_value"] == judged["before_value"].reindex(on_holdings.index)).all()
    assert (on_holdings["action"] == "none").all()
    return night, judged


def test_ric_a_proposal_lifting_one_issuer_from_24_to_26_percent_is_blocked():
    # Issuer X holds X1 14 % + X2 10 % = 24 %; X1's target is 16 %: after the trade X is 26 %.
    # The 5/50 rule passes both ways: X 24 % + Y 20 % = 44 % before, 26 % + 20 % = 46 % after.
    night, results = _compliance_night("ric", {"X1": (0.14, 0.16), "X2": (0.10, 0.10), "Y": (0.20, 0.20)},
                                       {"X1": "X", "X2": "X"}, cash_target=0.54)
    summary = night.summary.iloc[0]
    assert summary["status"] == "blocked" and night.proposals.empty and night.trades.empty
    reason = summary["blocked_reason"]
    assert "ric_single_issuer_25 would fail" in reason and "issuer X" in reason
    assert "26.0 %" in reason and "24.0 %" in reason and "25 %" in reason
    single = results.loc["ric_single_issuer_25"]
    assert single["before_value"] == pytest.approx(0.24) and single["after_value"] == pytest.approx(0.26)
    assert not single["passed"] and single["action"] == "blocked"
    assert results.loc["ric_5_50", "before_value"] == pytest.approx(0.44)
    assert results.loc["ric_5_50", "after_value"] == pytest.approx(0.46) and results.loc["ric_5_50", "passed"]


def test_ucits_5_10_40_a_proposal_that_passes():
    # A 9 -> 10 %, B 9 -> 10 %, C 8 %, D 4 %, E 4 %: largest 10 % (at most 10 %); above 5 %
    # together 10 + 10 + 8 = 28 % after (26 % before; at most 40 %).
    night, results = _compliance_night("ucits", {"A": (0.09, 0.10), "B": (0.09, 0.10), "C": (0.08, 0.08),
                                                 "D": (0.04, 0.04), "E": (0.04, 0.04)}, {}, cash_target=0.64)
    assert night.summary.iloc[0]["status"] == "proposed"
    assert results.loc["ucits_single_issuer_10", "after_value"] == pytest.approx(0.10)
    assert results.loc["ucits_5_10_40", "before_value"] == pytest.approx(0.26)
    assert results.loc["ucits_5_10_40", "after_value"] == pytest.approx(0.28)
    assert results["passed"].all() and set(results["action"]) == {"none"}
    assert night.proposals.iloc[0]["compliance_note"] is None


def test_ucits_5_10_40_a_proposal_that_fails_the_40_percent():
    # A, B, C, D at 9 % (36 % above 5 %), E 4 % -> 6 %: E crosses 5 % and the issuers above
    # 5 % hold 36 + 6 = 42 % after: over 40 %, passed before: blocked.
    night, results = _compliance_night("ucits", {"A": (0.09, 0.09), "B": (0.09, 0.09), "C": (0.09, 0.09),
                                                 "D": (0.09, 0.09), "E": (0.04, 0.06)}, {}, cash_target=0.58)
    assert night.summary.iloc[0]["status"] == "blocked"
    assert "ucits_5_10_40 would fail" in night.summary.iloc[0]["blocked_reason"]
    assert "42.0 %" in night.summary.iloc[0]["blocked_reason"]
    assert results.loc["ucits_5_10_40", "before_value"] == pytest.approx(0.36)
    assert results.loc["ucits_5_10_40", "after_value"] == pytest.approx(0.42)
    assert not results.loc["ucits_5_10_40", "passed"]


def test_ucits_a_fund_already_failing_gets_only_trades_that_do_not_make_it_worse():
    # A 11 % (over 10 %: failing before) with a target of 12 %; B 6 % -> 5 %, C 4 % -> 5 %.
    # Buying A would lift the failing issuer to 12 %: that buy is dropped. Selling B and buying
    # C stay: largest issuer 11 % before and after; above 5 % together 17 % -> 11 %.
    night, results = _compliance_night("ucits", {"A": (0.11, 0.12), "B": (0.06, 0.05), "C": (0.04, 0.05)}, {},
                                       cash_target=0.78)
    assert night.summary.iloc[0]["status"] == "proposed"
    trades = night.trades.set_index("security_id")
    assert set(trades.index) == {"B", "C"}
    assert trades.loc["B", "side"] == "SELL" and trades.loc["B", "quantity"] == pytest.approx(10)
    assert trades.loc["C", "side"] == "BUY" and trades.loc["C", "quantity"] == pytest.approx(10)
    single = results.loc["ucits_single_issuer_10"]
    assert single["before_value"] == pytest.approx(0.11) and single["after_value"] == pytest.approx(0.11)
    assert not single["passed"] and single["action"] == "trimmed"
    assert results.loc["ucits_5_10_40", "before_value"] == pytest.approx(0.17)
    assert results.loc["ucits_5_10_40", "after_value"] == pytest.approx(0.11)
    proposal = night.proposals.iloc[0]
    assert "buys of A dropped" in proposal["notes"] and "buys of A dropped" in proposal["compliance_note"]
    assert "ucits_single_issuer_10 fails" in proposal["compliance_note"]
    # Totals and id follow the trades that are left: 2 trades of 1,000 each, turnover 1 %.
    assert proposal["trade_count"] == 2 and proposal["turnover"] == pytest.approx(0.01)
    assert proposal["proposal_id"] == night.trades["proposal_id"].iloc[0] == night.summary.iloc[0]["proposal_id"]
    assert set(results["proposal_id"]) == {proposal["proposal_id"]}
    # Without the compliance setting, the same book buys A too (so the drop above is the rule's doing).
    assert "A" in set(_compliance_night("", {"A": (0.11, 0.12), "B": (0.06, 0.05), "C": (0.04, 0.05)}, {},
                                        cash_target=0.78)[0].trades["security_id"])
