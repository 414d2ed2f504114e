"""The rules a proposal obeys on each holding: restrictions.csv's (``no_buy``, ``no_sell``,
``exclude``) and those derived tonight (wash sales, holds of the tax plan's trades).

``propose`` (``rebalance_core.proposals``) flags each holding with its rules, freezes a
holding whose target asks for a move its rules forbid (the fund's other holdings share the
rest), clips every sized quantity so that no trade breaks a rule, and writes the notes a
reviewer reads. Vectorized over all funds' holdings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rebalance_core.models import isin_ids
from rebalance_core.restrictions import rule_pairs
from rebalance_core.schema import RULE_EXCLUDE, RULE_NO_BUY, RULE_NO_SELL, WEIGHT_EPS

# Rules propose() applies besides restrictions.csv's: derived tonight by the caller.
RULE_WASH_NO_BUY = "wash_no_buy"    # buying it would be a wash sale (a loss sale in the last 30 days)
RULE_WASH_NO_SELL = "wash_no_sell"  # selling it at a loss would be a wash sale (bought in the last 30 days)
RULE_HOLD = "hold"                  # a tax trade (harvest, swap back) moves it tonight: no other trade


def apply_rules(rows: pd.DataFrame, restrictions: pd.DataFrame | None,
                 restriction_moves: pd.DataFrame | None) -> pd.DataFrame:
    """Flags per holding from the fund's rules; a holding whose target asks for a move its
    rules forbid (or that a tax trade moves tonight) is frozen like a non-tradable one."""
    # Only the rows of funds that have a rule are looked at (a few of a large book).
    ruled = (isin_ids(rows["fund_id"], restrictions["fund_id"]) if restrictions is not None and len(restrictions)
             else np.zeros(len(rows), dtype=bool))
    keys = pd.MultiIndex.from_frame(rows.loc[ruled, ["fund_id", "security_id"]]) if ruled.any() else None

    def has(*rules) -> np.ndarray:
        out = np.zeros(len(rows), dtype=bool)
        if keys is not None:
            out[ruled] = np.logical_or.reduce([keys.isin(rule_pairs(restrictions, r)) for r in rules])
        return out

    rows = rows.assign(no_buy=has(RULE_NO_BUY), no_sell=has(RULE_NO_SELL), excluded=has(RULE_EXCLUDE),
                       wash_no_buy=has(RULE_WASH_NO_BUY), wash_no_sell=has(RULE_WASH_NO_SELL), hold=has(RULE_HOLD))
    holds_excluded = rows["fund_id"].isin(rows.loc[rows["excluded"] & (rows["quantity"] > 0), "fund_id"].unique())
    moved = np.zeros(len(rows), dtype=bool)
    if restriction_moves is not None and len(restriction_moves):
        moving = isin_ids(rows["fund_id"], restriction_moves["fund_id"])
        moved[moving] = pd.MultiIndex.from_frame(rows.loc[moving, ["fund_id", "security_id"]]).isin(
            pd.MultiIndex.from_frame(restriction_moves[["fund_id", "security_id"]]))
    rows["restriction_move"] = holds_excluded & (moved | rows["excluded"])
    wanted = rows["target_weight"] * rows["target_scale"] - rows["current_weight"]
    may_not_buy = rows["no_buy"] | rows["excluded"] | rows["wash_no_buy"]
    # An exclusion is a mandate: it is sold even when the sale washes a loss (flagged).
    rows["wash_no_sell"] = rows["wash_no_sell"] & ~rows["excluded"]
    may_not_sell = rows["no_sell"] | rows["wash_no_sell"]
    rows["listed_tradable"] = rows["tradable"]
    rows["frozen_by_rule"] = rows["tradable"] & ((may_not_buy & (wanted > WEIGHT_EPS))
                                                 | (may_not_sell & (wanted < -WEIGHT_EPS)) | rows["hold"])
    rows["tradable"] = rows["tradable"] & ~rows["frozen_by_rule"]
    return rows


def obey_rules(qty: pd.Series, rows: pd.DataFrame) -> pd.Series:
    """No trade breaks a rule, whatever sizing asked (flows spread pro rata included)."""
    may_not_buy = rows["no_buy"] | rows["excluded"] | rows["wash_no_buy"] | rows["hold"]
    may_not_sell = rows["no_sell"] | rows["wash_no_sell"] | rows["hold"]
    qty = qty.where(~may_not_buy, np.minimum(qty, 0.0))
    return qty.where(~may_not_sell, np.maximum(qty, 0.0))


def restriction_notes(rows: pd.DataFrame, qty: pd.Series) -> pd.Series:
    """Per fund, what restrictions.csv changed in its proposal (None: nothing)."""
    sold_excluded = rows["excluded"] & (rows["quantity"] > 0)
    kept = rows["frozen_by_rule"] & (rows["no_buy"] | rows["no_sell"] | rows["excluded"])
    noted = sold_excluded | kept
    if not noted.any():
        return pd.Series(dtype="object")
    r = rows[noted]
    unsold = sold_excluded[noted] & (qty[noted] >= 0)
    text = np.select(
        [sold_excluded[noted] & ~unsold, unsold, r["no_sell"], r["no_buy"] | r["excluded"]],
        ["exclude " + r["security_id"] + ": sold",
         "exclude " + r["security_id"] + ": held and cannot be sold now",
         "no_sell " + r["security_id"] + ": not sold (its target asks to)",
         "no_buy " + r["security_id"] + ": not bought (its target asks to)"], default="")
    return pd.Series(text, index=r.index).groupby(r["fund_id"]).agg("; ".join)


def wash_notes(rows: pd.DataFrame) -> pd.Series:
    """Per fund, the trades left out to avoid a wash sale."""
    noted = rows["frozen_by_rule"] & (rows["wash_no_buy"] | rows["wash_no_sell"]) & ~rows["hold"]
    if not noted.any():
        return pd.Series(dtype="object")
    r = rows[noted]
    text = np.where(r["wash_no_buy"], "not bought: " + r["security_id"] + " (loss sale in the last 30 days)",
                    "not sold at a loss: " + r["security_id"] + " (bought in the last 30 days)")
    return pd.Series(text, index=r.index).groupby(r["fund_id"]).agg("; ".join).radd("wash sale avoided, ")


def rescale_around_frozen(rows: pd.DataFrame, fund: pd.Series) -> pd.DataFrame:
    """Restrictions: non-tradable holdings stay as they are, and the tradable targets are
    rescaled to share what is left of the fund (after the frozen weight and the cash reserve)."""
    frozen = ~rows["tradable"]
    rows = rows.assign(restricted=frozen.groupby(fund).transform("any"))
    if not frozen.any():
        return rows
    frozen_weight = rows["current_weight"].where(frozen, 0.0).groupby(fund).transform("sum")
    tradable_target = (rows["target_weight"] * rows["target_scale"]).where(~frozen, 0.0).groupby(fund).transform("sum")
    room = (1 - rows["reserve"] - frozen_weight).clip(lower=0.0)
    factor = (room / tradable_target.where(tradable_target > 0)).fillna(0.0)
    rows["target_scale"] = rows["target_scale"].where(~rows["restricted"], rows["target_scale"] * factor)
    return rows
