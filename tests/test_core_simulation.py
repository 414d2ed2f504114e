"""The policy replay, hand-computed over three days."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from frames import funds_frame

from rebalance_core.simulation import simulate

DAYS = [dt.date(2014, 1, 2), dt.date(2014, 1, 3), dt.date(2014, 1, 6)]
PRICES = {DAYS[0]: (100.0, 100.0), DAYS[1]: (120.0, 100.0), DAYS[2]: (100.0, 100.0)}


def test_replay_counts_rebalances_turnover_and_tracking():
    funds = funds_frame(
        {"fund_id": "T", "policy": "threshold", "abs_band": 0.02, "allow_fractional": True},
        {"fund_id": "N", "policy": "calendar", "frequency": "annual", "abs_band": None},
    )
    targets = pd.DataFrame({"fund_id": ["T", "T", "N", "N"], "security_id": ["A", "B", "A", "B"],
                            "target_weight": 0.5})

    def load_day(as_of):
        a, b = PRICES[as_of]
        frames = {"prices": pd.DataFrame({"security_id": ["A", "B"], "close_price": [a, b], "currency": "USD"})}
        if as_of == DAYS[0]:
            frames.update(funds=funds, targets=targets)
        return frames

    positions = pd.DataFrame({"fund_id": ["T", "T", "N", "N"], "security_id": ["A", "B", "A", "B"],
                              "quantity": 100.0})
    cash = pd.DataFrame({"fund_id": ["T", "N"], "currency": "USD", "amount": 0.0})
    result = simulate(DAYS, load_day, positions, cash)
    s = result.summary.set_index("fund_id")

    # T: day 2, A at 120 is 54.5 % of 22,000 → back to 50/50: sell 8.33 A, buy 10 B (2,000 traded).
    # Day 3, A at 100: 91.67 × 100 + 110 × 100 = 20,166.67, exactly the on-target fund's value
    # (20,000 × 1.1 × (0.5 × 100/120 + 0.5)), so no tracking difference. That day B is
    # 54.5 % again: a second rebalance trades 916.67 each way (turnover 1,833.33 / 40,333.33).
    assert s.loc["T", "rebalances"] == 2
    assert s.loc["T", "turnover"] == pytest.approx(2_000 / (2 * 22_000) + 1_833.3333 / (2 * 20_166.6667))
    assert s.loc["T", "return"] == pytest.approx(20_166.6667 / 20_000 - 1, abs=1e-6)
    assert s.loc["T", "tracking_difference"] == pytest.approx(0.0, abs=1e-9)
    # N: the annual calendar date (2 January) finds it on target; it never trades after:
    # it ends at 20,000, 0.83 % behind the on-target fund.
    assert s.loc["N", "rebalances"] == 0
    assert s.loc["N", "tracking_difference"] == pytest.approx(-(20_166.6667 / 20_000 - 1), abs=1e-6)
    assert len(result.daily) == 6
