"""Builders of small in-memory fund frames for the pure-core tests."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

import rebalance_core as core

AS_OF = dt.date(2014, 1, 3)  # a Friday, a trading day, not the first of any period

FUND_DEFAULTS = dict(name="fund", base_currency="USD", policy="threshold", frequency="daily", abs_band=0.05,
                     rel_band=np.nan, rebalance_to="target", min_trade_notional=0.0, cash_buffer=0.0,
                     allow_fractional=False)


def funds_frame(*funds: dict) -> pd.DataFrame:
    return pd.DataFrame([{**FUND_DEFAULTS, **f} for f in funds])


def book(fund_id: str, holdings: dict[str, tuple[float, float, float]], cash: float = 0.0, cash_target: float = 0.0):
    """holdings: security -> (quantity, price, target weight). Returns (targets, positions, prices, cash)."""
    targets = [{"fund_id": fund_id, "security_id": s, "target_weight": w} for s, (_, _, w) in holdings.items() if w]
    if cash_target:
        targets.append({"fund_id": fund_id, "security_id": "CASH", "target_weight": cash_target})
    positions = [{"fund_id": fund_id, "security_id": s, "quantity": float(q)} for s, (q, _, _) in holdings.items() if q]
    prices = [{"security_id": s, "close_price": float(p), "currency": "USD"} for s, (_, p, _) in holdings.items()]
    return (pd.DataFrame(targets), pd.DataFrame(positions, columns=["fund_id", "security_id", "quantity"]),
            pd.DataFrame(prices), pd.DataFrame([{"fund_id": fund_id, "currency": "USD", "amount": float(cash)}]))


def combine(*books):
    parts = list(zip(*books, strict=True))
    targets, positions, prices, cash = (pd.concat(p, ignore_index=True) for p in parts)
    return targets, positions, prices.drop_duplicates("security_id"), cash


def run_engine(funds: pd.DataFrame, targets, positions, prices, cash, as_of=AS_OF, securities=None, blocked=None):
    drift = core.compute_drift(as_of, funds, targets, positions, prices, cash)
    summary = core.summarize_funds(drift)
    triggers = core.resolve_triggers(as_of, funds, summary)
    proposals, trades = core.propose(as_of, drift, summary, funds, triggers, securities=securities, blocked=blocked)
    return drift, summary, triggers, proposals, trades
