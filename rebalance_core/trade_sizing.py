"""Sizing a holding's trade: where it goes (target, band edge, its class's destination),
how a flow spreads, whole lots, minimum trades and estimated costs.

The pieces ``propose`` (``rebalance_core.proposals``) composes, each a column operation or
a groupby over all funds' holdings; ``apply_presets`` fills the funds' policy presets and
``trade_costs`` is shared with the tax-loss harvest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rebalance_core.drift import security_classes
from rebalance_core.schema import (
    BAND_FRACTION,
    TO_TARGET_TRIGGERS,
    TRIGGER_CALENDAR,
    VANGUARD_DESTINATION,
    VANGUARD_TRIGGER,
)

COST_COLUMNS = ["commission_bps", "commission_per_share", "max_turnover", "max_cost_bps", "min_trade_pct_nav"]
# Market impact at 100 % of a day's volume, as a fraction of the notional (square-root law).
IMPACT_COEFFICIENT = 0.01
QTY_EPS = 1e-9


def apply_presets(funds: pd.DataFrame) -> pd.DataFrame:
    """Fill policy presets into the funds frame (today: Vanguard's 2 pp trigger band)."""
    funds = funds.copy()
    if "band_fraction" not in funds:
        funds["band_fraction"] = np.nan
    vanguard_without_band = (funds["rebalance_to"] == "vanguard") & funds["abs_band"].isna() & funds["rel_band"].isna()
    funds.loc[vanguard_without_band, "abs_band"] = VANGUARD_TRIGGER
    return funds


def attach_security_terms(rows: pd.DataFrame, securities: pd.DataFrame | None) -> pd.DataFrame:
    if securities is None or securities.empty:
        return rows.assign(lot_size=1.0, tradable=True, half_spread_bps=0.0, adv=np.nan)
    terms = securities.drop_duplicates("security_id").set_index("security_id")
    terms = terms.reindex(columns=["lot_size", "tradable", "half_spread_bps", "adv"])
    rows = rows.join(terms, on="security_id")
    rows["lot_size"] = rows["lot_size"].where(rows["lot_size"] > 0, 1.0).fillna(1.0)
    rows["tradable"] = rows["tradable"].fillna(True).astype(bool)
    rows["half_spread_bps"] = pd.to_numeric(rows["half_spread_bps"], errors="coerce").fillna(0.0)
    rows["adv"] = pd.to_numeric(rows["adv"], errors="coerce")
    return rows


def trade_costs(qty: pd.Series, unit_value: pd.Series, rows: pd.DataFrame) -> pd.Series:
    """Estimated cost of each trade in base currency (>= 0).

    commission: ``commission_bps`` of the notional plus ``commission_per_share`` × shares
    (fund terms); half spread: ``half_spread_bps`` of the notional (security terms); market
    impact, when the security's average daily volume ``adv`` is known:
    IMPACT_COEFFICIENT × sqrt(shares / adv) of the notional (the square-root law).
    """
    shares = qty.abs().astype("float64")
    notional = shares * unit_value.astype("float64")
    terms = rows[["commission_bps", "half_spread_bps", "adv", "commission_per_share"]].astype("float64")
    bps = terms["commission_bps"].fillna(0.0) + terms["half_spread_bps"].fillna(0.0)
    impact = (IMPACT_COEFFICIENT * np.sqrt(shares / terms["adv"].where(terms["adv"] > 0))).fillna(0.0)
    cost = notional * (bps / 1e4 + impact) + shares * terms["commission_per_share"].fillna(0.0)
    return cost.where(shares > 0, 0.0).fillna(0.0)


def destination_weight(rows: pd.DataFrame) -> pd.Series:
    """Weight each holding should end at (before lots, minimums and cash).

    ``target``: every holding to its target. ``band``/``halfway``/``band_fraction``: only the
    breaching holdings, to target ± fraction × band on the side they drifted to (Leland's
    band edge is 1, Daryanani's halfway 0.5). ``vanguard``: breaching holdings to target
    ± 1.75 pp.
    """
    current = rows["current_weight"]
    target = rows["target_weight"] * rows["target_scale"]
    tolerance = (rows["band_upper"] - rows["target_weight"]).fillna(0.0)
    fraction = rows["band_fraction"].fillna(rows["rebalance_to"].map(BAND_FRACTION)).fillna(1.0)
    offset = np.where(rows["rebalance_to"] == "vanguard", np.minimum(tolerance, VANGUARD_DESTINATION),
                      fraction * tolerance)
    toward_band = rows["target_weight"] + np.sign(rows["drift"]) * offset
    band_style = (((rows["rebalance_to"] != "target") | rows["band_fraction"].notna())
                  & ~rows["trigger"].isin(TO_TARGET_TRIGGERS))
    destination = np.where(band_style, np.where(rows["breached"], toward_band, current), target)
    destination = pd.Series(destination, index=rows.index)
    destination[rows["target_weight"] <= 0] = 0.0
    destination[~rows["tradable"]] = current[~rows["tradable"]]
    return destination


def class_trades(rows: pd.DataFrame, class_drift: pd.DataFrame, securities: pd.DataFrame | None) -> pd.Series:
    """Signed value each security of a class-level fund trades: its class moves from its
    weight to its destination (the class target, or toward its band edge for band-style
    funds; a class inside its band stays unless the date is a calendar one), and the class's
    trade is split over its tradable securities in proportion to their targets (a class
    with no target is sold)."""
    fund = rows["fund_id"]
    cls = security_classes(rows["security_id"], securities)
    key = [fund, cls]
    tradable = rows["tradable"] & rows["price"].notna()
    target = rows["target_weight"] * rows["target_scale"]
    class_target = target.groupby(key).transform("sum")
    class_raw_target = rows["target_weight"].groupby(key).transform("sum")
    class_weight = rows["current_weight"].groupby(key).transform("sum")
    bands = class_drift.set_index(["fund_id", "asset_class"])
    index = pd.MultiIndex.from_arrays([fund, cls])
    tolerance = pd.Series((bands["band_upper"] - bands["target_weight"]).reindex(index).to_numpy(),
                          index=rows.index).fillna(0.0)
    breached = pd.Series(bands["breached"].reindex(index).fillna(False).to_numpy(dtype=bool), index=rows.index)
    fraction = rows["band_fraction"].fillna(rows["rebalance_to"].map(BAND_FRACTION)).fillna(1.0)
    offset = np.where(rows["rebalance_to"] == "vanguard", np.minimum(tolerance, VANGUARD_DESTINATION),
                      fraction * tolerance)
    toward_band = class_raw_target + np.sign(class_weight - class_raw_target) * offset
    band_style = (rows["rebalance_to"] != "target") | rows["band_fraction"].notna()
    full = rows["trigger"] == TRIGGER_CALENDAR
    destination = np.where(band_style & ~full, toward_band, class_target)
    destination = np.where(breached | full, destination, class_weight)
    destination = np.where(class_raw_target <= 0, 0.0, destination)
    share_base = target.where(tradable, 0.0)
    share = share_base / share_base.groupby(key).transform("sum").replace(0.0, np.nan)
    value = (destination - class_weight) * rows["nav"] * share
    # A class with no target: each held security is sold whole.
    value = value.where(class_raw_target > 0, -rows["market_value"].where(tradable, 0.0))
    return value.fillna(0.0)


def flow_trades(rows: pd.DataFrame, policy: pd.DataFrame) -> pd.Series:
    """Signed value each holding trades to invest or raise its fund's flow (0 without a flow).

    Invest: the subscription, less what the cash reserve keeps, goes to the holdings
    furthest below target first (each up to its target), any rest pro rata to targets.
    Raise: what cash lacks to cover the buffer after a redemption comes from the holdings
    furthest above target first (each down to its target), any rest pro rata to value.
    """
    flow = rows["fund_id"].map(policy["flow"])
    if not (flow != 0).any():
        return pd.Series(0.0, index=rows.index)
    cash, nav = rows["fund_id"].map(policy["cash"]), rows["nav"]
    invest = np.where(flow > 0, np.clip(np.minimum(flow, cash - rows["reserve"] * nav), 0.0, None), 0.0)
    raise_ = np.where(flow < 0, np.clip(rows["cash_buffer"] * nav - cash, 0.0, None), 0.0)
    tradable = rows["tradable"] & rows["price"].notna()
    gap = ((rows["target_weight"] * rows["target_scale"] * nav) - rows["market_value"]).where(tradable, 0.0)
    buys = greedy_fill(rows["fund_id"], gap.clip(lower=0.0), pd.Series(invest, index=rows.index),
                        spill=(rows["target_weight"] * tradable))
    sells = greedy_fill(rows["fund_id"], (-gap).clip(lower=0.0), pd.Series(raise_, index=rows.index),
                         spill=rows["market_value"].where(tradable, 0.0))
    return (buys - sells).fillna(0.0)


def greedy_fill(fund: pd.Series, room: pd.Series, amount: pd.Series, spill: pd.Series) -> pd.Series:
    """Spread each fund's ``amount`` over its rows, largest ``room`` first; the rest by ``spill``."""
    order = pd.DataFrame({"fund": fund, "room": room}).sort_values(["fund", "room"], ascending=[True, False])
    cumulative = order.groupby("fund", sort=False)["room"].cumsum()
    before = (cumulative - order["room"]).reindex(room.index)
    filled = np.clip(amount - before, 0.0, room)
    leftover = (amount - room.groupby(fund).transform("sum")).clip(lower=0.0)
    share = spill / spill.groupby(fund).transform("sum").replace(0.0, np.nan)
    return filled + (leftover * share).fillna(0.0)


def round_to_lots(qty: pd.Series, rows: pd.DataFrame, sell_all: pd.Series) -> pd.Series:
    """Whole lots unless fractional: sells to the nearest lot (capped at the holding), buys down."""
    lot = rows["lot_size"]
    fractional = rows["allow_fractional"]
    sells = np.minimum(np.round(-qty / lot) * lot, rows["quantity"])
    buys = np.floor(qty / lot + QTY_EPS) * lot
    rounded = np.where(qty < 0, -sells, buys)
    rounded = np.where(fractional, qty, rounded)
    # Closing a position sells all of it, odd lot included.
    rounded = np.where(sell_all & (qty < 0), -rows["quantity"], rounded)
    return pd.Series(rounded, index=qty.index)


def round_toward_zero(qty: pd.Series, rows: pd.DataFrame) -> pd.Series:
    lots = np.trunc(qty / rows["lot_size"] + np.sign(qty) * QTY_EPS) * rows["lot_size"]
    return pd.Series(np.where(rows["allow_fractional"], qty, lots), index=qty.index)


def drop_small(qty: pd.Series, unit_value: pd.Series, minimum: pd.Series) -> pd.Series:
    notional = (qty * unit_value).abs()
    keep = (qty.abs() > QTY_EPS) & (notional >= minimum) & (notional > 0)
    return qty.where(keep, 0.0)
