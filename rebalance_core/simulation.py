"""Policy what-if: replay a history of prices, executing every proposal as if approved.

For each date the engine runs on the simulated book (positions and cash carried from the
day before), its trades are executed at that day's close, costs are paid from cash and
sold tax lots are closed (bought shares open new lots). Per fund we count rebalances and
add up turnover, costs and realized gains; the *tracking difference* is the fund's
cumulative return less that of a costless fund held exactly on target every day.

Data is injected: ``load_day(date)`` returns that date's frames (prices, and any
reference files that changed), so the replay knows nothing of files or databases. The
loop is over dates; each day is vectorized across all funds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rebalance_core.drift import compute_drift, summarize_funds
from rebalance_core.proposals import propose, resolve_triggers
from rebalance_core.schema import CASH
from rebalance_core.tax_lots import realize_gains


@dataclass
class SimulationResult:
    summary: pd.DataFrame   # one row per fund
    daily: pd.DataFrame     # one row per fund and date: nav, target_nav, rebalanced, turnover, cost


def simulate(dates: list[dt.date], load_day: Callable[[dt.date], dict[str, pd.DataFrame]],
             positions: pd.DataFrame, cash: pd.DataFrame, tax_lots: pd.DataFrame | None = None) -> SimulationResult:
    """Replay ``dates`` from the book (positions, cash, tax lots) held at the first date's close."""
    positions = positions.groupby(["fund_id", "security_id"], as_index=False)["quantity"].sum()
    cash = cash.groupby("fund_id")["amount"].sum()
    lots = tax_lots.copy() if tax_lots is not None and len(tax_lots) else None
    reference: dict[str, pd.DataFrame] = {}
    previous_prices: pd.Series | None = None
    target_nav: pd.Series | None = None
    records = []
    for as_of in dates:
        frames = load_day(as_of)
        reference.update({k: v for k, v in frames.items() if k in ("funds", "targets", "securities")})
        funds, targets = reference["funds"], reference["targets"]
        prices = frames["prices"].drop_duplicates("security_id")
        price = prices.set_index("security_id")["close_price"]
        book_cash = pd.DataFrame({"fund_id": cash.index, "currency": None, "amount": cash.to_numpy()})
        drift = compute_drift(as_of, funds, targets, positions, prices, book_cash)
        summary = summarize_funds(drift)
        nav = summary.set_index("fund_id")["nav"]

        # The costless always-on-target fund: yesterday's NAV grown by the target mix's return.
        if previous_prices is None:
            target_nav = nav.copy()
        else:
            growth = (price / previous_prices.reindex(price.index)).fillna(1.0)
            security_targets = targets[targets["security_id"] != CASH]
            mix_return = (security_targets["target_weight"]
                          * security_targets["security_id"].map(growth).fillna(1.0)).groupby(
                security_targets["fund_id"]).sum()
            cash_weight = targets[targets["security_id"] == CASH].groupby("fund_id")["target_weight"].sum()
            mix_return = mix_return.add(cash_weight, fill_value=0.0)
            target_nav = target_nav * mix_return.reindex(target_nav.index).fillna(1.0)

        triggers = resolve_triggers(as_of, funds, summary)
        proposals, trades = propose(as_of, drift, summary, funds, triggers, securities=reference.get("securities"))
        gains = pd.Series(0.0, index=nav.index)
        if len(trades):
            if lots is not None:
                trades, used = realize_gains(as_of, trades, lots, funds)
                lots = _roll_lots(lots, used, trades, as_of)
                gains = trades.groupby("fund_id")["est_realized_gain"].sum(min_count=1).reindex(nav.index).fillna(0.0)
            signed = np.where(trades["side"] == "BUY", trades["quantity"], -trades["quantity"])
            executed = pd.DataFrame({"fund_id": trades["fund_id"], "security_id": trades["security_id"],
                                     "quantity": signed})
            positions = pd.concat([positions, executed]).groupby(["fund_id", "security_id"], as_index=False)[
                "quantity"].sum()
            positions = positions[positions["quantity"].abs() > 1e-9]
            spent = (pd.Series(np.where(trades["side"] == "BUY", trades["notional"], -trades["notional"]))
                     .groupby(trades["fund_id"].to_numpy()).sum())
            cost = trades.groupby("fund_id")["est_cost"].sum()
            cash = cash.sub(spent.reindex(cash.index).fillna(0.0)).sub(cost.reindex(cash.index).fillna(0.0))
        by_fund = proposals.set_index("fund_id") if len(proposals) else pd.DataFrame(
            columns=["turnover", "est_cost"])
        records.append(pd.DataFrame({
            "as_of_date": as_of,
            "fund_id": nav.index,
            "nav": nav.to_numpy(),
            "target_nav": target_nav.reindex(nav.index).to_numpy(),
            "rebalanced": nav.index.isin(by_fund.index),
            "turnover": by_fund["turnover"].reindex(nav.index).fillna(0.0).to_numpy(dtype="float64"),
            "cost": by_fund["est_cost"].reindex(nav.index).fillna(0.0).to_numpy(dtype="float64"),
            "realized_gain": gains.to_numpy(),
        }))
        previous_prices = price
    daily = pd.concat(records, ignore_index=True)
    return SimulationResult(_summarize(daily), daily)


def _roll_lots(lots: pd.DataFrame, used: pd.DataFrame, trades: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Close what was sold; open a lot for each buy at today's price."""
    key = ["fund_id", "security_id", "lot_id"]
    sold = used.groupby(key)["quantity"].sum().rename("sold")
    lots = lots.join(sold, on=key)
    lots["quantity"] = lots["quantity"] - lots["sold"].fillna(0.0)
    lots = lots.drop(columns="sold")
    buys = trades[trades["side"] == "BUY"]
    new = pd.DataFrame({"fund_id": buys["fund_id"], "security_id": buys["security_id"],
                        "lot_id": f"SIM-{as_of:%Y%m%d}", "quantity": buys["quantity"], "unit_cost": buys["price"],
                        "acquired_date": as_of})
    return pd.concat([lots[lots["quantity"] > 1e-9], new], ignore_index=True)


def _summarize(daily: pd.DataFrame) -> pd.DataFrame:
    by = daily.groupby("fund_id", sort=True)
    first, last = by.first(), by.last()
    out = pd.DataFrame({
        "days": by.size(),
        "rebalances": by["rebalanced"].sum().astype("int64"),
        "turnover": by["turnover"].sum(),
        "est_cost": by["cost"].sum(),
        "realized_gain": by["realized_gain"].sum(),
        "return": last["nav"] / first["nav"] - 1,
        "target_return": last["target_nav"] / first["target_nav"] - 1,
    })
    out["tracking_difference"] = out["return"] - out["target_return"]
    return out.reset_index()
