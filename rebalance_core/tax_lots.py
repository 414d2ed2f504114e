"""Tax lots: which lots a proposed sell closes, the gain it realizes, and wash sales.

Lot choice per fund (``funds.tax_lot_method``):
- ``hifo`` (default): highest unit cost first, which realizes the least gain;
- ``fifo``: oldest acquisition first;
- ``min_gain``: losses before gains (short-term losses first), then long-term gains
  before short-term ones, the smallest gain first: the least tax now.

A lot held more than one year realizes a long-term gain, otherwise short-term. A trade is
flagged ``wash_sale`` when a sell at a loss meets a purchase of the same security within 30
days: a lot bought in the 30 days before the sale that the sale itself does not close, or
(for a proposed buy) a loss sale of that security in the 30 days before, from the approved
history the caller passes in. A sale larger than the lots on file has an unknown gain (NaN).

Vectorized: lots are ranked and filled with one sort and one grouped cumulative sum.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from rebalance_core.schema import WASH_SALE_DAYS

LONG_TERM_DAYS = 365


def is_loss_sale(trades: pd.DataFrame) -> pd.Series:
    """A sale that realizes a loss (a wash sale if the security is bought within
    WASH_SALE_DAYS): the one definition of the night, the history read and the replay."""
    gain = pd.to_numeric(trades["est_realized_gain"], errors="coerce")
    return (trades["side"] == "SELL") & (gain < 0)


def recent_loss_sales(trades: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """fund_id, security_id of the loss sales among ``trades`` (with their ``as_of_date``) in the
    WASH_SALE_DAYS before ``as_of`` (``as_of`` itself excluded): what a buy tonight would wash."""
    day = pd.to_datetime(trades["as_of_date"]).dt.date
    window = (day >= as_of - dt.timedelta(days=WASH_SALE_DAYS)) & (day < as_of)
    rows = trades.loc[window & is_loss_sale(trades), ["fund_id", "security_id"]]
    return rows.drop_duplicates().reset_index(drop=True).astype(object)


LOT_COLUMNS = ["proposal_id", "fund_id", "security_id", "lot_id", "quantity", "unit_cost", "acquired_date",
               "realized_gain", "term"]


def realize_gains(
    as_of: dt.date,
    trades: pd.DataFrame,
    tax_lots: pd.DataFrame | None,
    funds: pd.DataFrame,
    fx_rate: pd.Series | None = None,
    recent_loss_sales: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trades with est_realized_gain (short, long, total) and wash_sale; and the lots used.

    ``fx_rate`` (indexed like ``trades``) converts the security's currency into the fund's
    base; gains of trades in funds without lots stay NaN (unknown, not zero).
    """
    trades = trades.copy()
    trades["est_realized_gain_short"] = np.nan
    trades["est_realized_gain_long"] = np.nan
    trades["est_realized_gain"] = np.nan
    trades["wash_sale"] = False
    empty_lots = pd.DataFrame({c: pd.Series(dtype="object") for c in LOT_COLUMNS})
    if trades.empty:
        return trades, empty_lots
    rate = fx_rate if fx_rate is not None else pd.Series(1.0, index=trades.index)
    trades["_rate"] = rate.reindex(trades.index).fillna(1.0)
    trades["_row"] = np.arange(len(trades))

    used = empty_lots
    if tax_lots is not None and len(tax_lots):
        # A trade may name its own lot choice (``lot_rule``: a harvest sells its qualifying,
        # highest-cost lots; a swap back sells every lot), else the fund's method applies.
        lot_rule = trades["lot_rule"] if "lot_rule" in trades else pd.Series(None, index=trades.index, dtype="object")
        sells = trades.loc[trades["side"] == "SELL", ["_row", "proposal_id", "fund_id", "security_id", "quantity",
                                                       "price", "_rate"]].assign(_lot_rule=lot_rule)
        lots = tax_lots[["fund_id", "security_id", "lot_id", "quantity", "unit_cost", "acquired_date"]].rename(
            columns={"quantity": "lot_quantity"})
        lots = lots.merge(sells.rename(columns={"quantity": "sold"}), on=["fund_id", "security_id"], how="inner")
        if len(lots):
            method = lots["fund_id"].map(_methods(funds)).fillna("hifo")
            method = method.where(lots["_lot_rule"].isna(), "hifo")
            gain_per_share = lots["price"] - lots["unit_cost"]
            acquired = pd.to_datetime(lots["acquired_date"])
            long_term = (pd.Timestamp(as_of) - acquired).dt.days > LONG_TERM_DAYS
            # min_gain: short-term losses, long-term losses, long-term gains, short-term gains;
            # the largest loss and the smallest gain first within each.
            category = np.select([(gain_per_share < 0) & ~long_term, gain_per_share < 0, long_term], [0, 1, 2],
                                 default=3)
            lots["_key"] = np.select(
                [method == "fifo", method == "min_gain"],
                [acquired.astype("int64").astype("float64"), category * 1e12 + gain_per_share],
                default=-lots["unit_cost"])
            lots = lots.sort_values(["_row", "_key", "lot_id"], kind="stable")
            before = lots.groupby("_row")["lot_quantity"].cumsum() - lots["lot_quantity"]
            lots["quantity"] = np.clip(lots["sold"] - before, 0.0, lots["lot_quantity"])
            lots = lots[lots["quantity"] > 0].copy()
            lots["realized_gain"] = lots["quantity"] * (lots["price"] - lots["unit_cost"]) * lots["_rate"]
            held_days = (pd.Timestamp(as_of) - pd.to_datetime(lots["acquired_date"])).dt.days
            lots["term"] = np.where(held_days > LONG_TERM_DAYS, "long", "short")
            by_trade = lots.pivot_table(index="_row", columns="term", values="realized_gain", aggfunc="sum")
            by_trade = by_trade.reindex(columns=["short", "long"]).fillna(0.0)
            matched = trades["_row"].isin(by_trade.index)
            trades.loc[matched, "est_realized_gain_short"] = trades.loc[matched, "_row"].map(by_trade["short"])
            trades.loc[matched, "est_realized_gain_long"] = trades.loc[matched, "_row"].map(by_trade["long"])
            trades.loc[matched, "est_realized_gain"] = (trades.loc[matched, "est_realized_gain_short"]
                                                        + trades.loc[matched, "est_realized_gain_long"])
            # Lots on file that do not cover the whole sale: the gain is unknown, not partial.
            covered = lots.groupby("_row")["quantity"].sum()
            short_of_lots = trades["_row"].map(covered).fillna(0.0) < trades["quantity"] - 1e-9
            selling = trades["side"] == "SELL"
            for column in ("est_realized_gain", "est_realized_gain_short", "est_realized_gain_long"):
                trades.loc[selling & short_of_lots, column] = np.nan
            # A loss sale with a purchase of the same security in the 30 days before it: a
            # recent lot that this sale does not close (its own lot is no replacement).
            closed = lots.groupby(["fund_id", "security_id", "lot_id"])["quantity"].sum().rename("closed")
            remaining = tax_lots.join(closed, on=["fund_id", "security_id", "lot_id"])
            remaining = remaining["quantity"] - remaining["closed"].fillna(0.0)
            age = (pd.Timestamp(as_of) - pd.to_datetime(tax_lots["acquired_date"])).dt.days
            recent_buy = age.between(0, WASH_SALE_DAYS) & (remaining > 1e-9)
            bought = tax_lots.loc[recent_buy, ["fund_id", "security_id"]].drop_duplicates()
            loss = is_loss_sale(trades)
            key = pd.MultiIndex.from_frame(trades[["fund_id", "security_id"]])
            trades["wash_sale"] = loss & key.isin(pd.MultiIndex.from_frame(bought))
            used = lots[LOT_COLUMNS]
    if recent_loss_sales is not None and len(recent_loss_sales):
        key = pd.MultiIndex.from_frame(trades[["fund_id", "security_id"]])
        sold_at_loss = pd.MultiIndex.from_frame(recent_loss_sales[["fund_id", "security_id"]].drop_duplicates())
        trades["wash_sale"] = trades["wash_sale"] | ((trades["side"] == "BUY") & key.isin(sold_at_loss))
    return trades.drop(columns=["_rate", "_row"]), used


def summarize_gains(proposals: pd.DataFrame, trades: pd.DataFrame) -> pd.DataFrame:
    """Proposal totals of realized gains (NaN when no trade's gain is known) and wash sales."""
    by = trades.groupby("proposal_id")
    totals = pd.DataFrame({
        "est_realized_gain": by["est_realized_gain"].sum(min_count=1),
        "est_realized_gain_short": by["est_realized_gain_short"].sum(min_count=1),
        "est_realized_gain_long": by["est_realized_gain_long"].sum(min_count=1),
        "wash_sale_trades": by["wash_sale"].sum().astype("int64"),
    })
    out = proposals.drop(columns=[c for c in totals.columns if c in proposals], errors="ignore")
    return out.join(totals, on="proposal_id")


def _methods(funds: pd.DataFrame) -> pd.Series:
    column = funds["tax_lot_method"] if "tax_lot_method" in funds else pd.Series(None, index=funds.index)
    return pd.Series(column.to_numpy(), index=funds["fund_id"].to_numpy()).dropna()
